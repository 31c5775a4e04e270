package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/test/bench/report"
)

const (
	// udpPayload fits a 1500-byte MTU with IPv4 and UDP headers.
	udpPayload = 1400
	// udpDrain is how long the receiver keeps reading after the last send.
	udpDrain = 300 * time.Millisecond
	// udpRcvBuf keeps the receiving socket from falling behind a burst.
	udpRcvBuf = 8 << 20
)

// udp sends datagrams at mbps (of payload) for length from one end's
// socket to the other's, and counts what the receiving socket got and
// what the receiving stack dropped for bad checksums. Its own sockets, not
// iperf3: iperf3's control channel is TCP, so it could not measure UDP
// through a system that breaks TCP.
func (b *socketBed) udp(ctx context.Context, dir string, mbps int, length time.Duration) report.UDPRun {
	run := report.UDPRun{System: b.sys.Name(), Direction: dir, RateMbps: mbps, PayloadBytes: udpPayload}
	if err := b.udpOnce(ctx, &run, length); err != nil {
		run.Error = err.Error()
	}
	if run.Sent > run.Received {
		run.Lost = run.Sent - run.Received
	}
	return run
}

func (b *socketBed) udpOnce(ctx context.Context, run *report.UDPRun, length time.Duration) error {
	sender, receiver, addr := ends("", run.Direction)
	var rx *net.UDPConn
	err := b.tp.In(receiver, func() error {
		var err error
		rx, err = net.ListenUDP("udp4", udpAddr(addr, udpPort))
		return err
	})
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer rx.Close()
	if err := forceRcvBuf(rx, udpRcvBuf); err != nil {
		return err
	}
	var tx *net.UDPConn
	err = b.tp.In(sender, func() error {
		var err error
		tx, err = net.DialUDP("udp4", nil, udpAddr(addr, udpPort))
		return err
	})
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer tx.Close()

	// Each datagram starts with this run's tag, so strays from an
	// earlier run are not counted.
	tag := make([]byte, 16)
	_, _ = rand.Read(tag)
	payload := make([]byte, udpPayload)
	copy(payload, tag)

	before, err := b.snmp(receiver)
	if err != nil {
		return err
	}
	var received atomic.Uint64
	done := make(chan error, 1)
	go func() { done <- countUDP(rx, tag, &received) }()

	sent, sendErr := paceUDP(ctx, tx, payload, run.RateMbps, length)
	run.Sent = sent
	time.Sleep(udpDrain)
	_ = rx.SetReadDeadline(time.Now()) // ends countUDP
	recvErr := <-done
	run.Received = received.Load()
	after, err := b.snmp(receiver)
	if err != nil {
		return err
	}
	run.UDPInCsumErrors = after.delta(before, "Udp", "InCsumErrors")
	run.UDPRcvbufErrors = after.delta(before, "Udp", "RcvbufErrors")
	return errors.Join(sendErr, recvErr)
}

// paceUDP sends payload at mbps for length, catching up every
// millisecond, and returns how many datagrams the socket took. An ICMP
// error that comes back (a refused port) is neither a send nor a failure.
func paceUDP(ctx context.Context, tx *net.UDPConn, payload []byte, mbps int, length time.Duration) (uint64, error) {
	perSec := float64(mbps) * 1e6 / 8 / float64(len(payload))
	start := time.Now()
	var sent, due uint64
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		elapsed := time.Since(start)
		if elapsed >= length {
			return sent, nil
		}
		for due = uint64(elapsed.Seconds() * perSec); sent < due; {
			if _, err := tx.Write(payload); err != nil {
				if errors.Is(err, syscall.ECONNREFUSED) {
					continue // a reported ICMP error consumed this send; send again
				}
				if errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.EAGAIN) {
					break // the queue is full: try again next tick
				}
				return sent, fmt.Errorf("send: %w", err)
			}
			sent++
		}
		select {
		case <-ctx.Done():
			return sent, ctx.Err()
		case <-tick.C:
		}
	}
}

// countUDP counts the datagrams with this run's tag until the read
// deadline passes.
func countUDP(rx *net.UDPConn, tag []byte, received *atomic.Uint64) error {
	buf := make([]byte, 2048)
	for {
		n, err := rx.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		if n >= len(tag) && bytes.Equal(buf[:len(tag)], tag) {
			received.Add(1)
		}
	}
}

// forceRcvBuf sets SO_RCVBUFFORCE (root may exceed rmem_max).
func forceRcvBuf(c *net.UDPConn, size int) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("SO_RCVBUFFORCE: %w", serr)
	}
	return nil
}
