package topo

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tunsetcarrier sets a tap's carrier, as a cable would.
const tunsetcarrier = unix.TUNSETCARRIER

// buildTaps creates up0..upN as taps in H. Their carrier is on while the
// fd is open and TUNSETCARRIER says so; frames sent into them are read
// from the fd (see TapReader).
func (t *Topo) buildTaps() error {
	return t.In(Host, func() error {
		for _, name := range t.Uplinks {
			f, err := openTap(name)
			if err != nil {
				return err
			}
			t.Taps = append(t.Taps, f)
		}
		return nil
	})
}

func openTap(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("create tap %s: %w", name, err)
	}
	// Non-blocking and handed to Go's poller, so reads honour deadlines.
	return os.NewFile(uintptr(fd), name), nil
}

func setTapCarrier(f *os.File, on bool) error {
	v := int32(0)
	if on {
		v = 1
	}
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ioErr error
	if err := raw.Control(func(fd uintptr) {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, tunsetcarrier, uintptr(unsafe.Pointer(&v)))
		if errno != 0 {
			ioErr = errno
		}
	}); err != nil {
		return err
	}
	if ioErr != nil {
		return fmt.Errorf("TUNSETCARRIER %s: %w", f.Name(), ioErr)
	}
	return nil
}
