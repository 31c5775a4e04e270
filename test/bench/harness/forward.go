package harness

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/test/bench/benchbpf"
	"github.com/uplinkd/uplinkd/test/bench/report"
	"github.com/uplinkd/uplinkd/test/bench/topo"
)

// Receiver slots.
const (
	slotRecvOnly = 3 // the receive-only guest's eth0
	slotGuest    = 4 // the sending guest's eth0 (uplink -> guest rounds)
)

// forwardRounds measures the rate a system forwards flat-out traffic in
// both directions, median of Rounds.
func (h *harness) forwardRounds(ctx context.Context, b *bed) ([]report.ForwardRound, error) {
	o := h.opts
	if err := h.warmUp(ctx, b, 1); err != nil {
		return nil, err
	}
	var out []report.ForwardRound
	for _, dir := range []string{"guest-to-uplink", "uplink-to-guest"} {
		for _, size := range o.FrameSizes {
			for round := 1; round <= o.Rounds; round++ {
				if err := b.resetCounters(); err != nil {
					return nil, err
				}
				cpu := readCPU()
				s, slot := forwardStream(ctx, b, dir, size, 0, o.RoundTime)
				if err := s.wait(); err != nil {
					return nil, fmt.Errorf("%s round %d: %w", dir, round, err)
				}
				time.Sleep(30 * time.Millisecond)
				st, err := b.rec.stats(slot)
				if err != nil {
					return nil, err
				}
				r := report.ForwardRound{System: b.sys.Name(), Direction: dir, FrameSize: size, Round: round,
					Sent: s.sent, Received: st.Count, CPUBusy: cpu.busy()}
				if span := st.Last.Sub(st.First); st.Count > 1 && span > 0 {
					pps := float64(st.Count-1) / span.Seconds()
					r.Mpps = pps / 1e6
					r.Gbps = pps * float64(size+20) * 8 / 1e9 // with preamble and gap, as on a wire
				}
				out = append(out, r)
				h.opts.Log.Info("forwarding round", "system", r.System, "direction", dir, "size", size,
					"round", round, "mpps", fmt.Sprintf("%.3f", r.Mpps), "sent", r.Sent, "received", r.Received)
			}
		}
	}
	return out, nil
}

// forwardStream starts a stream of size-byte frames in direction dir
// (report.GuestToUplink or report.UplinkToGuest) at rate (0: flat out)
// for d, and says in which receiver slot it arrives.
func forwardStream(ctx context.Context, b *bed, dir string, size, rate int, d time.Duration) (s *stream, slot int) {
	if dir == report.GuestToUplink {
		return send(ctx, b.tp, b.gen, topo.Guest, "eth0", guestTemplate(b.tp, 1, size), rate, d, 0), 0
	}
	tmpl := benchbpf.Template{Dst: b.tp.MAC[topo.Guest], Src: b.tp.MAC[topo.Sender], Sources: 1, Size: size - 4, Stream: 4}
	return send(ctx, b.tp, b.gen, topo.Upstream, b.tp.Peers[0], tmpl, rate, d, 0), slotGuest
}

// cpuRounds offers the system on b (or the baseline) the same paced rate
// in both directions and takes the machine's CPU time over each round
// from /proc/stat, to be divided by the frames delivered: the cost of a
// frame at a load every system carries, where flat-out rates say as much
// about the engine as about the system.
func (h *harness) cpuRounds(ctx context.Context, b *bed) ([]report.CPURound, error) {
	o := h.opts
	var out []report.CPURound
	for _, dir := range []string{report.GuestToUplink, report.UplinkToGuest} {
		for _, size := range o.CPUFrameSizes {
			for round := 1; round <= o.CPURounds; round++ {
				if ctx.Err() != nil {
					return out, ctx.Err()
				}
				if err := b.resetCounters(); err != nil {
					return out, err
				}
				time.Sleep(100 * time.Millisecond) // what came before (the last round's drain, the reset) is done
				before, err := readCPUTicks()
				if err != nil {
					return out, err
				}
				softBefore, err := ksoftirqdNs()
				if err != nil {
					return out, err
				}
				proc0 := processCPUNs()
				start := time.Now()
				s, slot := forwardStream(ctx, b, dir, size, o.CPURatePPS, o.CPURoundTime)
				if err := s.wait(); err != nil {
					return out, fmt.Errorf("cpu %s round %d: %w", dir, round, err)
				}
				time.Sleep(30 * time.Millisecond) // the last frames are delivered by NAPI
				after, err := readCPUTicks()
				if err != nil {
					return out, err
				}
				softAfter, err := ksoftirqdNs()
				if err != nil {
					return out, err
				}
				elapsed := time.Since(start)
				var senderNs uint64
				if proc1 := processCPUNs(); proc0 > 0 && proc1 > proc0 {
					senderNs = proc1 - proc0
				}
				r := report.CPURound{System: b.sys.Name(), Direction: dir, FrameSize: size, Round: round, RatePPS: o.CPURatePPS,
					Seconds: elapsed.Seconds(), Sent: s.sent, CPUs: runtime.NumCPU(), UserHZ: userHZ, Ticks: after.since(before),
					SenderNs: senderNs, KsoftirqdNs: softAfter - min(softBefore, softAfter)}
				if r.System == report.SystemBaseline {
					r.Delivered = s.sent // each is dropped on arrival at the host end
				} else {
					st, err := b.rec.stats(slot)
					if err != nil {
						return out, err
					}
					r.Delivered = st.Count
				}
				out = append(out, r)
				h.opts.Log.Info("cpu round", "system", r.System, "direction", dir, "size", size, "round", round,
					"pps", o.CPURatePPS, "sent", r.Sent, "delivered", r.Delivered, "kernel_ticks", r.Ticks.Kernel(),
					"user_ticks", r.Ticks.User, "kernel_ns_per_frame", fmt.Sprintf("%.0f", r.KernelNsPerFrame()),
					"sender_path_ns_per_frame", fmt.Sprintf("%.0f", r.SenderPathNsPerFrame()))
			}
		}
	}
	return out, nil
}

// hello sends one plain frame (not a stream frame, so receivers let it
// through) from a guest: the switch learns the guest, and the upstream
// bridge learns it behind the active uplink.
func hello(tp *topo.Topo, role string, dst []byte) error {
	return tp.In(role, func() error {
		idx, err := ifindexHere("eth0")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: idx}); err != nil {
			return err
		}
		f := make([]byte, 60)
		copy(f, dst)
		copy(f[6:], tp.MAC[role])
		binary.BigEndian.PutUint16(f[12:], 0x88b6) // local experimental 2
		return unix.Send(fd, f, 0)
	})
}
