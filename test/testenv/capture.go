package testenv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Htons is v in network byte order, as AF_PACKET takes a protocol.
func Htons(v uint16) uint16 {
	return binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, v))
}

// PacketSocket opens a raw AF_PACKET socket in the calling thread's
// namespace, bound to ifindex for protocol proto (host order; 0 receives
// nothing, for a socket that only sends; ETH_P_ALL sees both directions).
func PacketSocket(ifindex int, proto uint16) (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(Htons(proto)))
	if err != nil {
		return -1, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: Htons(proto), Ifindex: ifindex}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind AF_PACKET socket to ifindex %d: %w", ifindex, err)
	}
	return fd, nil
}

// CaptureOptions shape a Capture.
type CaptureOptions struct {
	// Proto is the protocol received (host order); 0 is ETH_P_ALL.
	Proto uint16
	// Timeout bounds each wait of Next; 0 makes Next never wait.
	Timeout time.Duration
	// RcvBuf, if not 0, is the receive buffer in bytes (SO_RCVBUFFORCE,
	// past the sysctl limit).
	RcvBuf int
}

// Capture receives the frames that arrive at one interface, with any VLAN
// tag the receiving device moved into metadata put back in place.
type Capture struct {
	fd int
}

// OpenCapture opens a Capture on ifindex in the calling thread's namespace;
// it is closed at cleanup. The socket stays in that namespace whichever
// thread reads it.
func OpenCapture(t testing.TB, ifindex int, opts CaptureOptions) *Capture {
	t.Helper()
	proto := opts.Proto
	if proto == 0 {
		proto = unix.ETH_P_ALL
	}
	fd, err := PacketSocket(ifindex, proto)
	if err != nil {
		t.Fatalf("capture: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	// The receiving veth moves a VLAN tag into metadata; ask for it back.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		t.Fatalf("capture: PACKET_AUXDATA: %v", err)
	}
	if opts.RcvBuf > 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, opts.RcvBuf); err != nil {
			t.Fatalf("capture: SO_RCVBUFFORCE: %v", err)
		}
	}
	if opts.Timeout > 0 {
		tv := unix.NsecToTimeval(opts.Timeout.Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			t.Fatalf("capture: SO_RCVTIMEO: %v", err)
		}
	} else if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatalf("capture: non-blocking: %v", err)
	}
	return &Capture{fd: fd}
}

// FD is the socket, for options and statistics (PACKET_STATISTICS) a
// test wants beyond these.
func (c *Capture) FD() int { return c.fd }

// maxSkipped bounds how many frames the interface sent (seen by an
// ETH_P_ALL socket) Next passes over in one call.
const maxSkipped = 10000

// Next returns the next frame received (not sent) at the interface, or
// nil once none has come within the timeout.
func (c *Capture) Next() ([]byte, error) {
	buf := make([]byte, 2048)
	oob := make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.TpacketAuxdata{}))))
	for range maxSkipped {
		n, oobn, _, from, err := unix.Recvmsg(c.fd, buf, oob, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("capture: recvmsg: %w", err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		return withTag(buf[:n], oob[:oobn])
	}
	return nil, nil
}

// withTag is a copy of frame (never nil) with the VLAN tag of its
// PACKET_AUXDATA, if any, back after the MAC addresses.
func withTag(frame, oob []byte) ([]byte, error) {
	f := append(make([]byte, 0, len(frame)+4), frame...)
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("capture: parse control messages: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA ||
			len(m.Data) < int(unsafe.Sizeof(unix.TpacketAuxdata{})) {
			continue
		}
		aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
		if aux.Status&unix.TP_STATUS_VLAN_VALID == 0 || len(f) < 12 {
			continue
		}
		tpid := uint16(unix.ETH_P_8021Q)
		if aux.Status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
			tpid = aux.Vlan_tpid
		}
		tag := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, tpid), aux.Vlan_tci)
		f = append(f[:12:12], append(tag, f[12:]...)...)
	}
	return f, nil
}
