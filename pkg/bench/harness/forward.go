package harness

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/pkg/bench/report"
	"github.com/uplinkd/uplinkd/pkg/bench/topo"
	"github.com/uplinkd/uplinkd/pkg/datapath/benchbpf"
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
				var (
					s    *stream
					slot int
				)
				cpu := readCPU()
				if dir == "guest-to-uplink" {
					s = send(ctx, b.tp, b.gen, topo.Guest, "eth0", guestTemplate(b.tp, 1, size), 0, o.RoundTime, 0)
					slot = 0
				} else {
					tmpl := benchbpf.Template{Dst: b.tp.MAC[topo.Guest], Src: b.tp.MAC[topo.Sender], Sources: 1, Size: size - 4, Stream: 4}
					s = send(ctx, b.tp, b.gen, topo.Upstream, b.tp.Peers[0], tmpl, 0, o.RoundTime, 0)
					slot = slotGuest
				}
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
