package benchbpf

import "testing"

// TestSlotsMatchObject: the receiver's slot count and default bitmap size
// are those compiled into bpf/bench/bench.c (BENCH_SLOTS, BENCH_SEEN_WORDS),
// read from its map sizes. Needs no privileges: it only parses the object.
func TestSlotsMatchObject(t *testing.T) {
	spec, err := loadBpfBench()
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.Maps[bpfBenchMapRxStats].MaxEntries; got != Slots {
		t.Errorf("rx_stats has %d entries (BENCH_SLOTS), Slots is %d", got, Slots)
	}
	if got, want := uint64(spec.Maps[bpfBenchMapRxSeen].MaxEntries), uint64(Slots*DefaultSeqsPerSlot/64); got != want {
		t.Errorf("rx_seen has %d words (BENCH_SLOTS * BENCH_SEEN_WORDS), Go's default is %d", got, want)
	}
}
