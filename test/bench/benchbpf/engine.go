package benchbpf

import (
	"context"
	"errors"
	"fmt"
	"github.com/uplinkd/uplinkd/pkg/datapath/liveframes"
	"time"
)

// Engine names. EngineAuto is not an engine: ChooseEngine turns it into the
// fastest one the kernel allows.
const (
	EngineAuto     = "auto"
	EngineLive     = "live"     // Generator: bench_gen in live-frame test runs
	EngineAFPacket = "afpacket" // PacketSender: AF_PACKET from user space
)

// Engine sends stream frames out of an interface, so they arrive at its
// peer. Every engine puts the same bytes on the wire for the same sequence
// number (what bench_gen makes), so receivers cannot tell them apart.
type Engine interface {
	// Name is the engine's name, e.g. EngineLive.
	Name() string
	// Send transmits frames built from t out of the device ifindex,
	// resolved in the calling thread's network namespace (lock the
	// goroutine to its thread and enter the namespace first). rate <= 0
	// sends flat out, rate > 0 paces to that many frames per second. It
	// stops after duration (0: no limit), maxFrames frames (0: no limit)
	// or when ctx is done (not an error), and returns the frames sent in
	// this call; they carry the sequence numbers following the previous
	// call's (0 after the engine is made or Reset).
	Send(ctx context.Context, ifindex int, t Template, rate int, duration time.Duration, maxFrames uint64) (uint64, error)
	// Reset starts the sequence numbers at 0 again.
	Reset() error
	Close() error
}

var (
	_ Engine = (*Generator)(nil)
	_ Engine = (*PacketSender)(nil)
)

// Engines lists the engines this package has, fastest first.
func Engines() []string { return []string{EngineLive, EngineAFPacket} }

// ChooseEngine resolves name (EngineAuto or an engine) to the engine to use
// here and says why: auto takes live where the kernel allows live-frame
// test runs, else afpacket. Asking for live where the kernel refuses it is
// an error that says why.
func ChooseEngine(name string) (engine, reason string, err error) {
	live := liveframes.Available()
	switch name {
	case EngineAuto, "":
		if live == nil {
			return EngineLive, "auto: the kernel allows live-frame test runs", nil
		}
		return EngineAFPacket, fmt.Sprintf("auto: %v", live), nil
	case EngineLive:
		if live != nil {
			return "", "", fmt.Errorf("engine %s: %w", name, live)
		}
		return EngineLive, "asked for", nil
	case EngineAFPacket:
		return EngineAFPacket, "asked for", nil
	}
	return "", "", fmt.Errorf("unknown engine %q (%s, %s, %s)", name, EngineAuto, EngineLive, EngineAFPacket)
}

// NewEngine makes the engine named name (not EngineAuto: see ChooseEngine).
func NewEngine(name string) (Engine, error) {
	switch name {
	case EngineLive:
		if err := liveframes.Available(); err != nil {
			return nil, fmt.Errorf("engine %s: %w", name, err)
		}
		return NewGenerator()
	case EngineAFPacket:
		return NewPacketSender(), nil
	case EngineAuto:
		return nil, errors.New("engine auto: resolve it with ChooseEngine first")
	}
	return nil, fmt.Errorf("unknown engine %q", name)
}
