package harness

import (
	"errors"
	"os"
	"sync"
	"time"

	"github.com/uplinkd/uplinkd/test/bench/benchbpf"
	"github.com/uplinkd/uplinkd/test/bench/stats"
)

// slotStats is what a receiver saw on one interface during a trial.
type slotStats struct {
	Count, Dups uint64
	Beyond      uint64 // sequence numbers past the bitmap: it is too small
	First, Last time.Time
	FirstRARP   time.Time
	RARPs       uint64
}

// recorder is a receiver: the XDP one on veths, a reader on tap fds.
type recorder interface {
	stats(slot int) (slotStats, error)
	seen(slot int, n uint64) ([]uint64, error)
	reset() error
}

// maxTapSeq bounds the sequence numbers a tap reader records.
const maxTapSeq = 1 << 24

// tapRecorder reads what the switch sends into tap uplinks. Taps have no
// peer device to attach XDP to: their far end is this process.
type tapRecorder struct {
	mu    sync.Mutex
	slots []tapSlot
	stop  chan struct{}
	wg    sync.WaitGroup
}

type tapSlot struct {
	words []uint64
	st    slotStats
}

func newTapRecorder(taps []*os.File) *tapRecorder {
	r := &tapRecorder{slots: make([]tapSlot, len(taps)), stop: make(chan struct{})}
	for i := range r.slots {
		r.slots[i].words = make([]uint64, stats.WordsFor(maxTapSeq))
	}
	for i, f := range taps {
		r.wg.Add(1)
		go r.read(i, f)
	}
	return r
}

func (r *tapRecorder) read(slot int, f *os.File) {
	defer r.wg.Done()
	buf := make([]byte, 2048)
	for {
		select {
		case <-r.stop:
			return
		default:
		}
		_ = f.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := f.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			time.Sleep(time.Millisecond) // carrier off: reads fail until it returns
			continue
		}
		r.record(slot, buf[:n], time.Now())
	}
}

func (r *tapRecorder) record(slot int, f []byte, at time.Time) {
	kind, _, seq32 := benchbpf.Parse(f)
	if kind == benchbpf.NotOurs {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &r.slots[slot]
	if kind == benchbpf.RARP {
		if s.st.RARPs == 0 {
			s.st.FirstRARP = at
		}
		s.st.RARPs++
		return
	}
	seq := uint64(seq32)
	if seq >= maxTapSeq {
		s.st.Beyond++
		return
	}
	if s.words[seq/64]&(1<<(seq%64)) != 0 {
		s.st.Dups++
	}
	stats.Set(s.words, seq)
	if s.st.Count == 0 {
		s.st.First = at
	}
	s.st.Count++
	s.st.Last = at
}

func (r *tapRecorder) stats(slot int) (slotStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.slots[slot].st, nil
}

func (r *tapRecorder) seen(slot int, n uint64) ([]uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := stats.WordsFor(min(n, maxTapSeq))
	return append([]uint64(nil), r.slots[slot].words[:w]...), nil
}

func (r *tapRecorder) reset() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.slots {
		clear(r.slots[i].words)
		r.slots[i].st = slotStats{}
	}
	return nil
}

func (r *tapRecorder) close() {
	close(r.stop)
	r.wg.Wait()
}
