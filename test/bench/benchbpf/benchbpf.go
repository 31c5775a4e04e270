// Package benchbpf loads the benchmark's BPF tools (bpf/bench/bench.c): an
// in-kernel packet generator, an XDP receiver that records sequence numbers,
// and a bare devmap-redirect forwarder that bounds what any XDP switch can
// do. Its traffic engines (Engine) send the same frames: the in-kernel
// generator where the kernel allows live-frame test runs, else AF_PACKET
// from user space. Every system under test is measured with the same
// engine and receiver.
//
// Interface indexes are resolved in the network namespace of the calling
// thread: lock the goroutine to its OS thread and enter the namespace first.
package benchbpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
)

// Stream frames (bpf/bench/bench.h): an Ethernet header with EtherType, then
// Magic (u32), the stream id (u8) and the sequence number (u32), all big
// endian, then zeros.
const (
	EtherType = 0x88b5     // IEEE local experimental
	Magic     = 0x75706c6b // "uplk"
	// SeqOffset is where the sequence number sits in an untagged frame.
	SeqOffset    = 14 + 5
	MinFrameSize = 60   // without FCS
	MaxFrameSize = 1514 // without FCS
)

// Slots is the number of receiver slots (BENCH_SLOTS; TestSlotsMatchObject
// checks the two agree). Not uplink slots: streams the receiver tells apart.
const Slots = 8

// Bitmap sizing. A slot records one stream; every slot has its own region
// of the shared bitmap. The default, 16 Mi sequence numbers per slot (2 MiB,
// 16 MiB for all 8 slots, 128 Mi sequence numbers in total), holds a paced
// failover trial at 1 Mpps for 16 s, or a flat-out run (~4 Mpps into a
// veth with bench_rx on a 2-vCPU VM) for 4 s. Longer runs need
// NewReceiverSize; frames past the bitmap are still counted
// (SlotStats.Beyond).
const (
	DefaultSeqsPerSlot = 16 << 20
	MaxSeqsPerSlot     = 1 << 30 // 128 MiB per slot, 1 GiB in all
)

// Template describes the frames an Engine sends.
type Template struct {
	Dst, Src net.HardwareAddr
	// Sources is how many guest MACs the frames cycle through: frame seq
	// carries Src with seq % Sources added to its low 24 bits. 0 or 1 keeps
	// Src.
	Sources int
	Size    int // frame length without FCS, MinFrameSize..MaxFrameSize
	Stream  uint8
}

// Frame is the first frame of the stream (sequence number 0).
func (t Template) Frame() ([]byte, error) {
	if len(t.Dst) != 6 || len(t.Src) != 6 {
		return nil, fmt.Errorf("template: want 6-byte MAC addresses, have dst %q src %q", t.Dst, t.Src)
	}
	if t.Size < MinFrameSize || t.Size > MaxFrameSize {
		return nil, fmt.Errorf("template: frame size %d out of %d..%d", t.Size, MinFrameSize, MaxFrameSize)
	}
	if t.Sources < 0 || t.Sources > 1<<24 {
		return nil, fmt.Errorf("template: %d sources out of 0..%d", t.Sources, 1<<24)
	}
	f := make([]byte, t.Size)
	copy(f[0:6], t.Dst)
	copy(f[6:12], t.Src)
	binary.BigEndian.PutUint16(f[12:], EtherType)
	binary.BigEndian.PutUint32(f[14:], Magic)
	f[18] = t.Stream
	return f, nil
}

// xdpMd mirrors struct xdp_md, the context of an XDP test run: the kernel
// wants DataEnd = len(frame) and an ingress device that exists in the
// caller's namespace.
type xdpMd struct {
	Data, DataEnd, DataMeta                     uint32
	IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// XDP actions.
const (
	xdpAborted = iota
	xdpDrop
	xdpPass
	xdpTx
	xdpRedirect
)

// loadSpec is the embedded object; every tool loads only its own program
// and maps from it.
func loadSpec() (*ebpf.CollectionSpec, error) {
	spec, err := loadBpfBench()
	if err != nil {
		return nil, fmt.Errorf("load bench BPF spec: %w", err)
	}
	return spec, nil
}

func loadErr(what string, err error) error {
	var verr *ebpf.VerifierError
	if errors.As(err, &verr) {
		return fmt.Errorf("load %s: %+v", what, verr)
	}
	return fmt.Errorf("load %s: %w", what, err)
}
