// Package liveframes says whether this kernel lets a BPF test run send its
// frames for real (BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES). Some
// kernels refuse it even to root; tests and the benchmark then send real
// frames another way. A leaf package, so every test can ask it.
package liveframes

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// DisableEnv, set to 1, makes Available report live test runs as
// refused on any kernel, so the fallbacks can be exercised where the
// kernel allows them too.
const DisableEnv = "UPLINKD_NO_LIVE_FRAMES"

// ErrRefused wraps every reason Available gives.
var ErrRefused = errors.New("live-frame test runs (BPF_F_TEST_XDP_LIVE_FRAMES) are not available")

var once = sync.OnceValue(probe)

// Available reports whether this kernel lets a test run send its frames
// for real (BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES): nil if it
// does, an error wrapping ErrRefused that says why if not. Some
// kernels refuse it even to root (EPERM). It asks the kernel once per
// process.
func Available() error { return once() }

func probe() error {
	if os.Getenv(DisableEnv) == "1" {
		return fmt.Errorf("%w: %s=1", ErrRefused, DisableEnv)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.XDP,
		License:      "GPL",
		Instructions: asm.Instructions{asm.LoadImm(asm.R0, 1 /* XDP_DROP */, asm.DWord), asm.Return()},
	})
	if err != nil {
		return fmt.Errorf("%w: load a probe program: %v", ErrRefused, err)
	}
	defer prog.Close()
	frame := make([]byte, 60)
	// Ingress on loopback (ifindex 1 in every namespace); the program
	// drops the frame, so nothing is sent anywhere.
	_, err = prog.Run(&ebpf.RunOptions{
		Data:    frame,
		Context: xdpMd{DataEnd: uint32(len(frame)), IngressIfindex: 1},
		Repeat:  1,
		Flags:   unix.BPF_F_TEST_XDP_LIVE_FRAMES,
	})
	if err != nil {
		return fmt.Errorf("%w: the kernel refuses them: %v", ErrRefused, err)
	}
	return nil
}

// xdpMd mirrors struct xdp_md for the test run's context.
type xdpMd struct {
	Data, DataEnd, DataMeta                     uint32
	IngressIfindex, RxQueueIndex, EgressIfindex uint32
}
