package benchbpf

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// NoLiveFramesEnv, set to 1, makes LiveFrames report live test runs as
// refused on any kernel, so the fallbacks can be exercised where the
// kernel allows them too.
const NoLiveFramesEnv = "UPLINKD_NO_LIVE_FRAMES"

// ErrLiveFramesRefused wraps every reason LiveFrames gives.
var ErrLiveFramesRefused = errors.New("live-frame test runs (BPF_F_TEST_XDP_LIVE_FRAMES) are not available")

var liveOnce = sync.OnceValue(probeLiveFrames)

// LiveFrames reports whether this kernel lets a test run send its frames
// for real (BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES): nil if it
// does, an error wrapping ErrLiveFramesRefused that says why if not. Some
// kernels refuse it even to root (EPERM). It asks the kernel once per
// process.
func LiveFrames() error { return liveOnce() }

func probeLiveFrames() error {
	if os.Getenv(NoLiveFramesEnv) == "1" {
		return fmt.Errorf("%w: %s=1", ErrLiveFramesRefused, NoLiveFramesEnv)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.XDP,
		License:      "GPL",
		Instructions: asm.Instructions{asm.LoadImm(asm.R0, 1 /* XDP_DROP */, asm.DWord), asm.Return()},
	})
	if err != nil {
		return fmt.Errorf("%w: load a probe program: %v", ErrLiveFramesRefused, err)
	}
	defer prog.Close()
	frame := make([]byte, MinFrameSize)
	// Ingress on loopback (ifindex 1 in every namespace); the program
	// drops the frame, so nothing is sent anywhere.
	_, err = prog.Run(&ebpf.RunOptions{
		Data:    frame,
		Context: xdpMd{DataEnd: uint32(len(frame)), IngressIfindex: 1},
		Repeat:  1,
		Flags:   unix.BPF_F_TEST_XDP_LIVE_FRAMES,
	})
	if err != nil {
		return fmt.Errorf("%w: the kernel refuses them: %v", ErrLiveFramesRefused, err)
	}
	return nil
}
