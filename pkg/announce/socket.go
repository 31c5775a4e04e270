//go:build linux

package announce

import (
	"encoding/binary"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sendTimeout bounds one Send: a stuck device must not hold an announcement
// (or its cancellation) forever.
const sendTimeout = time.Second

// Socket sends complete Ethernet frames out of one interface through an
// AF_PACKET socket. It is created with protocol 0, so the kernel never queues
// received traffic on it.
//
// The socket belongs to the network namespace of the OS thread that called
// OpenSocket, whichever goroutine later uses it.
type Socket struct {
	ifindex int
	file    *os.File // owns the fd; integrates with the runtime poller
	raw     syscall.RawConn
}

// OpenSocket opens a send-only AF_PACKET socket bound to ifindex in the
// calling thread's network namespace.
func OpenSocket(ifindex int) (*Socket, error) {
	if ifindex <= 0 {
		return nil, fmt.Errorf("open AF_PACKET socket: invalid ifindex %d", ifindex)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open AF_PACKET socket: %w", err)
	}
	// Binding with protocol 0 checks the interface exists (ENODEV otherwise)
	// without registering a receive hook.
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifindex}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind AF_PACKET socket to ifindex %d: %w", ifindex, err)
	}
	file := os.NewFile(uintptr(fd), fmt.Sprintf("packet:%d", ifindex))
	raw, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("AF_PACKET socket on ifindex %d: %w", ifindex, err)
	}
	return &Socket{ifindex: ifindex, file: file, raw: raw}, nil
}

// Ifindex is the interface the socket sends on.
func (s *Socket) Ifindex() int { return s.ifindex }

// Send transmits one complete Ethernet frame (no FCS) as is.
func (s *Socket) Send(frame []byte) error {
	if len(frame) < 14 {
		return fmt.Errorf("send on ifindex %d: frame of %d bytes has no Ethernet header", s.ifindex, len(frame))
	}
	// sll_protocol becomes skb->protocol and must be in network byte order:
	// reading the wire bytes natively gives exactly that.
	addr := &unix.SockaddrLinklayer{
		Ifindex:  s.ifindex,
		Protocol: binary.NativeEndian.Uint16(frame[12:14]),
	}
	if err := s.file.SetWriteDeadline(time.Now().Add(sendTimeout)); err != nil {
		return fmt.Errorf("send on ifindex %d: %w", s.ifindex, err)
	}
	var sendErr error
	err := s.raw.Write(func(fd uintptr) bool {
		sendErr = unix.Sendto(int(fd), frame, 0, addr)
		return sendErr != unix.EAGAIN // EAGAIN: socket buffer full, wait for the poller
	})
	if err == nil {
		err = sendErr
	}
	if err != nil {
		return fmt.Errorf("send on ifindex %d: %w", s.ifindex, err)
	}
	return nil
}

// Close releases the socket. A Send blocked in another goroutine returns an
// error.
func (s *Socket) Close() error {
	if err := s.file.Close(); err != nil {
		return fmt.Errorf("close AF_PACKET socket on ifindex %d: %w", s.ifindex, err)
	}
	return nil
}
