package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/uplinkd/uplinkd/test/bench/benchbpf"
	"github.com/uplinkd/uplinkd/test/bench/report"
	"github.com/uplinkd/uplinkd/test/bench/stats"
	"github.com/uplinkd/uplinkd/test/bench/topo"
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

// stream is one engine run: what it sent, when it started and ended.
type stream struct {
	sent              uint64
	started, finished time.Time
	err               error
	done              chan struct{}
}

// achieved is the rate a stream paced at rate kept: rate, or what the
// engine managed where it fell more than 2% short (an engine slower than
// the rate asked for; the report marks such rates). Send times of
// sequence numbers come from it.
func (s *stream) achieved(rate int) float64 {
	r := float64(rate)
	if d := s.finished.Sub(s.started).Seconds(); d > 0 && s.sent > 0 {
		if a := float64(s.sent) / d; a < 0.98*r {
			return a
		}
	}
	return r
}

// send runs gen from inside role's namespace on ifname, on its own
// locked thread, and returns at once.
func send(ctx context.Context, tp *topo.Topo, gen benchbpf.Engine, role, ifname string, tmpl benchbpf.Template, rate int, d time.Duration, max uint64) *stream {
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
		s.finished = time.Now()
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

// engineCeiling measures the engine alone: flat out into a veth (a queue
// per CPU, as the testbeds' links) whose peer runs the bare XDP receiver,
// no switch in between, median of Rounds per frame size. A forwarding
// figure close to it says more about the engine than the system.
func (h *harness) engineCeiling(ctx context.Context) ([]report.EngineCeiling, error) {
	type result struct {
		c   []report.EngineCeiling
		err error
	}
	done := make(chan result, 1)
	go func() {
		// Never unlocked: the thread ends with the goroutine, and the
		// namespace, with everything in it, with the thread.
		runtime.LockOSThread()
		c, err := h.engineCeilingHere(ctx)
		done <- result{c, err}
	}()
	r := <-done
	return r.c, r.err
}

// engineCeilingHere moves the calling thread into a new network namespace.
func (h *harness) engineCeilingHere(ctx context.Context) ([]report.EngineCeiling, error) {
	o := h.opts
	ns, err := netns.New()
	if err != nil {
		return nil, fmt.Errorf("engine ceiling: new namespace: %w", err)
	}
	defer ns.Close()
	queues := runtime.NumCPU()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "ulkbc0", NumTxQueues: queues, NumRxQueues: queues},
		PeerName: "ulkbc1", PeerNumTxQueues: uint32(queues), PeerNumRxQueues: uint32(queues)}
	if err := netlink.LinkAdd(v); err != nil {
		return nil, fmt.Errorf("engine ceiling: add veth: %w", err)
	}
	idx := map[string]int{}
	for _, name := range []string{"ulkbc0", "ulkbc1"} {
		l, err := netlink.LinkByName(name)
		if err == nil {
			err = netlink.LinkSetUp(l)
		}
		if err != nil {
			return nil, fmt.Errorf("engine ceiling: %s: %w", name, err)
		}
		idx[name] = l.Attrs().Index
	}
	rx, err := benchbpf.NewReceiver()
	if err != nil {
		return nil, err
	}
	defer rx.Close()
	if _, err := rx.Attach(idx["ulkbc1"], 0); err != nil {
		return nil, err
	}
	eng, err := benchbpf.NewEngine(h.engine)
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	if err := waitOperUp(ctx, "ulkbc0", "ulkbc1"); err != nil {
		return nil, err
	}

	rounds := max(o.Rounds, 3)
	src, dst := net.HardwareAddr{0x02, 0x75, 0x70, 0, 0, 2}, net.HardwareAddr{0x02, 0x75, 0x70, 0, 0, 3}
	var out []report.EngineCeiling
	for _, size := range o.FrameSizes {
		var mpps []float64
		for range rounds {
			if ctx.Err() != nil {
				return out, ctx.Err()
			}
			if err := errors.Join(rx.Reset(), eng.Reset()); err != nil {
				return out, err
			}
			tmpl := benchbpf.Template{Dst: dst, Src: src, Sources: 1, Size: size - 4, Stream: 5}
			if _, err := eng.Send(ctx, idx["ulkbc0"], tmpl, 0, o.RoundTime, 0); err != nil {
				return out, fmt.Errorf("engine ceiling, %d B: %w", size, err)
			}
			time.Sleep(30 * time.Millisecond) // the last frames are delivered by NAPI
			st, err := rx.Stats(0)
			if err != nil {
				return out, err
			}
			if span := st.Last.Sub(st.First); st.Count > 1 && span > 0 {
				mpps = append(mpps, float64(st.Count-1)/span.Seconds()/1e6)
			}
		}
		c := report.EngineCeiling{FrameSize: size, Rounds: len(mpps), Mpps: stats.Summarize(mpps).P50}
		out = append(out, c)
		o.Log.Info("engine ceiling", "engine", h.engine, "size", size, "mpps", fmt.Sprintf("%.3f", c.Mpps))
	}
	return out, nil
}

// waitOperUp waits until every named link in the calling thread's
// namespace is up: a veth drops what is sent before its peer is.
func waitOperUp(ctx context.Context, names ...string) error {
	deadline := time.Now().Add(5 * time.Second)
	for _, n := range names {
		for {
			l, err := netlink.LinkByName(n)
			if err != nil {
				return err
			}
			if l.Attrs().OperState == netlink.OperUp {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("%s not up (operstate %s)", n, l.Attrs().OperState)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}
