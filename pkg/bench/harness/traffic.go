package harness

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"time"

	"github.com/vishvananda/netns"

	"github.com/uplinkd/uplinkd/pkg/bench/topo"
	"github.com/uplinkd/uplinkd/pkg/datapath/benchbpf"
)

// xdpRecorder adapts the XDP receivers. The receiver tells interfaces
// apart by ifindex, which is only unique within a namespace, so each
// namespace gets its own receiver; a harness slot names a receiver and a
// slot in it.
type xdpRecorder struct {
	slots map[int]rxSlot
	all   []*benchbpf.Receiver
}

type rxSlot struct {
	rx   *benchbpf.Receiver
	slot int
}

func (x *xdpRecorder) get(slot int) (rxSlot, error) {
	s, ok := x.slots[slot]
	if !ok {
		return s, fmt.Errorf("no receiver in slot %d", slot)
	}
	return s, nil
}

func (x *xdpRecorder) stats(slot int) (slotStats, error) {
	r, err := x.get(slot)
	if err != nil {
		return slotStats{}, err
	}
	s, err := r.rx.Stats(r.slot)
	if err != nil {
		return slotStats{}, err
	}
	return slotStats{Count: s.Count, Dups: s.Dups, Beyond: s.Beyond, First: s.First, Last: s.Last, FirstRARP: s.FirstRARP, RARPs: s.RARPs}, nil
}

func (x *xdpRecorder) seen(slot int, n uint64) ([]uint64, error) {
	r, err := x.get(slot)
	if err != nil {
		return nil, err
	}
	return r.rx.Seen(r.slot, n)
}

func (x *xdpRecorder) reset() error {
	for _, rx := range x.all {
		if err := rx.Reset(); err != nil {
			return err
		}
	}
	return nil
}

// stream is one generator run: what it sent and when it started.
type stream struct {
	sent    uint64
	started time.Time
	err     error
	done    chan struct{}
}

// send runs gen from inside role's namespace on ifname, on its own
// locked thread, and returns at once.
func send(ctx context.Context, tp *topo.Topo, gen *benchbpf.Generator, role, ifname string, tmpl benchbpf.Template, rate int, d time.Duration, max uint64) *stream {
	s := &stream{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := netns.Set(tp.NS(role)); err != nil {
			s.err = err
			return
		}
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			s.err = fmt.Errorf("%s in %s: %w", ifname, role, err)
			return
		}
		s.started = time.Now()
		s.sent, s.err = gen.Send(ctx, ifi.Index, tmpl, rate, d, max)
	}()
	return s
}

func (s *stream) wait() error {
	<-s.done
	return s.err
}

// guestTemplate is the sending guest's stream: to an upstream host, from
// `guests` MACs that cycle so the switch learns that many guests.
func guestTemplate(tp *topo.Topo, guests, size int) benchbpf.Template {
	return benchbpf.Template{Dst: upstreamMAC(tp), Src: tp.MAC[topo.Guest], Sources: guests, Size: size - 4, Stream: 1}
}

// upstreamMAC is where guest traffic goes: the upstream host S (veth), or
// any unicast address the switch does not know (tap).
func upstreamMAC(tp *topo.Topo) net.HardwareAddr {
	if m := tp.MAC[topo.Sender]; m != nil {
		return m
	}
	return net.HardwareAddr{0x02, 0x75, 0x70, 0, 0, 1}
}
