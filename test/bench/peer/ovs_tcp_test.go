package peer

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netns"

	"github.com/uplinkd/uplinkd/test/testenv"
)

// TestOVSTCPWithDefaultOffloads checks that OVS carries TCP between stacks
// that send with the veths' default offloads (checksum offload, TSO), in
// both directions: without userspace TSO the netdev datapath forwards
// such frames with their checksums unfinished and no connection is made.
func TestOVSTCPWithDefaultOffloads(t *testing.T) {
	o := &OVS{NoPin: true}
	tb, _, _ := startOVS(t, o, false)
	if !o.UserspaceTSO() {
		t.Errorf("ovs-vswitchd did not log %q", ovsTSOEnabledLog)
	}
	if note := o.OffloadNote(); !strings.Contains(note, ovsUserspaceTSO+"=true") {
		t.Errorf("OffloadNote = %q, want it to name %s=true", note, ovsUserspaceTSO)
	}
	g, u := nsByName(t, tb.G), nsByName(t, tb.U)
	// The point is the defaults: the sender's stack leaves checksums and
	// segmentation to the device.
	requireTxOffloads(t, g, "eth0")
	requireTxOffloads(t, u, "br0")
	tb.pingEventually(t)

	const size = 16 << 20 // many 64 KiB TSO frames
	if err := tcpTransfer(u, upstreamIP, g, size); err != nil {
		t.Errorf("G -> U: %v", err)
	}
	if err := tcpTransfer(g, guestIP, u, size); err != nil {
		t.Errorf("U -> G: %v", err)
	}
	if err := o.Stop(); err != nil {
		t.Fatal(err)
	}
	if o.UserspaceTSO() || o.OffloadNote() != "" {
		t.Errorf("after Stop: UserspaceTSO %v, OffloadNote %q; want false, empty", o.UserspaceTSO(), o.OffloadNote())
	}
}

func nsByName(t *testing.T, name string) netns.NsHandle {
	t.Helper()
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("netns %s: %v", name, err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// requireTxOffloads fails t unless ifname in ns has tx checksum offload
// and TSO on.
func requireTxOffloads(t *testing.T, ns netns.NsHandle, ifname string) {
	t.Helper()
	err := testenv.Do(ns, func() error {
		et, err := ethtool.NewEthtool()
		if err != nil {
			return err
		}
		defer et.Close()
		f, err := et.Features(ifname)
		if err != nil {
			return err
		}
		if !f["tx-checksum-ip-generic"] || !f["tx-tcp-segmentation"] {
			return fmt.Errorf("tx checksum %v, TSO %v; want both on", f["tx-checksum-ip-generic"], f["tx-tcp-segmentation"])
		}
		return nil
	})
	if err != nil {
		t.Fatalf("offloads of %s: %v", ifname, err)
	}
}

// tcpTransfer sends size bytes over one TCP connection from a socket in
// from to a listener on addr in to, and checks that all of them arrived;
// 20 s at most.
func tcpTransfer(to netns.NsHandle, addr string, from netns.NsHandle, size int) error {
	deadline := time.Now().Add(20 * time.Second)
	var ln net.Listener
	if err := testenv.Do(to, func() (err error) {
		ln, err = net.Listen("tcp4", net.JoinHostPort(addr, "0"))
		return err
	}); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	_ = ln.(*net.TCPListener).SetDeadline(deadline)
	type result struct {
		n   int64
		err error
	}
	got := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- result{err: fmt.Errorf("accept: %w", err)}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(deadline)
		n, err := io.Copy(io.Discard, c)
		got <- result{n, err}
	}()
	var c net.Conn
	if err := testenv.Do(from, func() (err error) {
		d := net.Dialer{Deadline: deadline}
		c, err = d.Dial("tcp4", ln.Addr().String())
		return err
	}); err != nil {
		ln.Close() // ends Accept
		<-got
		return fmt.Errorf("dial: %w", err)
	}
	_ = c.SetDeadline(deadline)
	sent, werr := c.Write(make([]byte, size))
	cerr := c.Close()
	r := <-got
	if err := errors.Join(werr, cerr, r.err); err != nil {
		return fmt.Errorf("sent %d, received %d: %w", sent, r.n, err)
	}
	if r.n != int64(size) {
		return fmt.Errorf("sent %d, received %d", sent, r.n)
	}
	return nil
}
