package stats

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

const all = ^uint64(0)

func TestBitmapGaps(t *testing.T) {
	tests := []struct {
		name    string
		words   []uint64
		n       uint64
		missing uint64
		runs    []Run
		longest Run
		fewRuns []Run // MissingRuns with limit 2
	}{
		{
			name: "two in the middle", words: []uint64{0b11_1111_0011}, n: 10,
			missing: 2, runs: []Run{{2, 2}}, longest: Run{2, 2}, fewRuns: []Run{{2, 2}},
		},
		{
			name: "n not a multiple of 64", words: []uint64{all, 0b101}, n: 70,
			// seq 64 and 66 arrived; 65 and 67..69 did not.
			missing: 4, runs: []Run{{65, 1}, {67, 3}}, longest: Run{67, 3}, fewRuns: []Run{{65, 1}, {67, 3}},
		},
		{
			name: "a bit beyond n is ignored", words: []uint64{0b1000}, n: 3,
			missing: 3, runs: []Run{{0, 3}}, longest: Run{0, 3}, fewRuns: []Run{{0, 3}},
		},
		{
			name: "bits in a word beyond n are ignored", words: []uint64{all, all, all}, n: 64,
			missing: 0, runs: nil, longest: Run{0, 0}, fewRuns: nil,
		},
		{
			name: "all received", words: []uint64{all, all}, n: 128,
			missing: 0, runs: nil, longest: Run{0, 0}, fewRuns: nil,
		},
		{
			name: "none received, zero words", words: []uint64{0, 0}, n: 100,
			missing: 100, runs: []Run{{0, 100}}, longest: Run{0, 100}, fewRuns: []Run{{0, 100}},
		},
		{
			name: "none received, nil bitmap", words: nil, n: 100,
			missing: 100, runs: []Run{{0, 100}}, longest: Run{0, 100}, fewRuns: []Run{{0, 100}},
		},
		{
			name: "bitmap shorter than n", words: []uint64{all, all}, n: 130,
			missing: 2, runs: []Run{{128, 2}}, longest: Run{128, 2}, fewRuns: []Run{{128, 2}},
		},
		{
			name: "run across a word boundary", words: []uint64{all >> 4, all &^ 0xf}, n: 128,
			// seq 60..63 clear in word 0, seq 64..67 clear in word 1.
			missing: 8, runs: []Run{{60, 8}}, longest: Run{60, 8}, fewRuns: []Run{{60, 8}},
		},
		{
			name: "tie goes to the earliest run", words: []uint64{0b00_1100_1100}, n: 10,
			missing: 6, runs: []Run{{0, 2}, {4, 2}, {8, 2}}, longest: Run{0, 2}, fewRuns: []Run{{0, 2}, {4, 2}},
		},
		{
			name: "every other frame", words: []uint64{0x5555_5555_5555_5555}, n: 8,
			missing: 4, runs: []Run{{1, 1}, {3, 1}, {5, 1}, {7, 1}}, longest: Run{1, 1}, fewRuns: []Run{{1, 1}, {3, 1}},
		},
		{
			name: "first and last only", words: []uint64{1, 1 << 63}, n: 128,
			missing: 126, runs: []Run{{1, 126}}, longest: Run{1, 126}, fewRuns: []Run{{1, 126}},
		},
		{
			name: "nothing sent", words: []uint64{0}, n: 0,
			missing: 0, runs: nil, longest: Run{0, 0}, fewRuns: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := slices.Clone(tt.words)
			if got := Missing(tt.words, tt.n); got != tt.missing {
				t.Errorf("Missing = %d, want %d", got, tt.missing)
			}
			if got := Received(tt.words, tt.n); got != tt.n-tt.missing {
				t.Errorf("Received = %d, want %d", got, tt.n-tt.missing)
			}
			if got := MissingRuns(tt.words, tt.n, 0); !reflect.DeepEqual(got, tt.runs) {
				t.Errorf("MissingRuns(limit 0) = %v, want %v", got, tt.runs)
			}
			if got := MissingRuns(tt.words, tt.n, 2); !reflect.DeepEqual(got, tt.fewRuns) {
				t.Errorf("MissingRuns(limit 2) = %v, want %v", got, tt.fewRuns)
			}
			start, length := LongestMissingRun(tt.words, tt.n)
			if (Run{start, length}) != tt.longest {
				t.Errorf("LongestMissingRun = (%d, %d), want %v", start, length, tt.longest)
			}
			if !slices.Equal(before, tt.words) {
				t.Errorf("bitmap modified: %x -> %x", before, tt.words)
			}
		})
	}
}

func TestSetAndWordsFor(t *testing.T) {
	for _, tt := range []struct {
		n    uint64
		want int
	}{{0, 0}, {1, 1}, {64, 1}, {65, 2}, {64 << 20, 1 << 20}} {
		if got := WordsFor(tt.n); got != tt.want {
			t.Errorf("WordsFor(%d) = %d, want %d", tt.n, got, tt.want)
		}
	}
	words := make([]uint64, 2)
	for _, s := range []uint64{0, 5, 63, 64, 127, 128 /* beyond: ignored */} {
		Set(words, s)
	}
	if want := []uint64{1 | 1<<5 | 1<<63, 1 | 1<<63}; !slices.Equal(words, want) {
		t.Errorf("Set: words = %x, want %x", words, want)
	}
}

func TestSetOperations(t *testing.T) {
	tests := []struct {
		name             string
		a, b             []uint64
		union, intersect []uint64
	}{
		{"equal length", []uint64{0b1100, 1}, []uint64{0b1010, 3}, []uint64{0b1110, 3}, []uint64{0b1000, 1}},
		{"longer a", []uint64{0b1100, 1}, []uint64{0b1010}, []uint64{0b1110, 1}, []uint64{0b1000}},
		{"longer b", []uint64{0b1010}, []uint64{0b1100, 1}, []uint64{0b1110, 1}, []uint64{0b1000}},
		{"disjoint", []uint64{0b01}, []uint64{0b10}, []uint64{0b11}, []uint64{0}},
		{"one empty", nil, []uint64{7}, []uint64{7}, []uint64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a0, b0 := slices.Clone(tt.a), slices.Clone(tt.b)
			if got := Union(tt.a, tt.b); !slices.Equal(got, tt.union) {
				t.Errorf("Union = %b, want %b", got, tt.union)
			}
			if got := Intersect(tt.a, tt.b); !slices.Equal(got, tt.intersect) {
				t.Errorf("Intersect = %b, want %b", got, tt.intersect)
			}
			if !slices.Equal(a0, tt.a) || !slices.Equal(b0, tt.b) {
				t.Error("inputs modified")
			}
		})
	}
	if got := PopCount([]uint64{all, 0b101, 0}); got != 66 {
		t.Errorf("PopCount = %d, want 66", got)
	}
}

// naiveRuns is the bit-by-bit definition the fast functions must agree with.
func naiveRuns(words []uint64, n uint64) (missing uint64, runs []Run) {
	for s := uint64(0); s < n; s++ {
		got := s/64 < uint64(len(words)) && words[s/64]&(1<<(s%64)) != 0
		if got {
			continue
		}
		missing++
		if k := len(runs); k > 0 && runs[k-1].Start+runs[k-1].Len == s {
			runs[k-1].Len++
		} else {
			runs = append(runs, Run{s, 1})
		}
	}
	return missing, runs
}

// TestBitmapAgainstNaive checks random bitmaps (random loss density, bits set
// beyond n, bitmaps shorter and longer than n) against the definition.
func TestBitmapAgainstNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		n := rng.Uint64N(700)
		words := make([]uint64, rng.IntN(13))
		lossEvery := 1 + rng.IntN(6)
		for w := range words {
			for b := range 64 {
				if rng.IntN(lossEvery) != 0 || i%7 == 0 {
					words[w] |= 1 << b
				}
			}
			if i%5 == 0 {
				words[w] = ^words[w] // long runs of loss
			}
		}
		if i%3 == 0 { // alternate runs of random length, many crossing words
			clear(words)
			for s, got := uint64(0), i%2 == 0; s < uint64(len(words))*64; got = !got {
				l := 1 + rng.Uint64N(150)
				for j := s; got && j < s+l && j < uint64(len(words))*64; j++ {
					Set(words, j)
				}
				s += l
			}
		}
		wantMissing, wantRuns := naiveRuns(words, n)
		if got := Missing(words, n); got != wantMissing {
			t.Fatalf("case %d n=%d: Missing = %d, want %d", i, n, got, wantMissing)
		}
		if got := MissingRuns(words, n, 0); !reflect.DeepEqual(got, wantRuns) {
			t.Fatalf("case %d n=%d: MissingRuns = %v, want %v", i, n, got, wantRuns)
		}
		var longest Run
		for _, r := range wantRuns {
			if r.Len > longest.Len {
				longest = r
			}
		}
		if s, l := LongestMissingRun(words, n); (Run{s, l}) != longest {
			t.Fatalf("case %d n=%d: LongestMissingRun = (%d, %d), want %v", i, n, s, l, longest)
		}
	}
}

// lossyBitmap is 64 Mi sequence numbers with sparse random loss plus a few
// failover-sized bursts, the shape a real trial produces.
func lossyBitmap(n uint64) []uint64 {
	rng := rand.New(rand.NewPCG(3, 4))
	words := make([]uint64, WordsFor(n))
	for i := range words {
		words[i] = all
	}
	for range n / 1000 {
		s := rng.Uint64N(n)
		words[s/64] &^= 1 << (s % 64)
	}
	for _, start := range []uint64{1 << 20, 30 << 20, 50 << 20} {
		for s := start; s < start+5000; s++ {
			words[s/64] &^= 1 << (s % 64)
		}
	}
	return words
}

// TestBitmapSpeed holds the harness to its budget: 64 Mi sequence numbers,
// every figure, well under a second (also on the worst case for runs, every
// other frame lost).
func TestBitmapSpeed(t *testing.T) {
	const n = 64 << 20
	limit := 500 * time.Millisecond
	if raceEnabled {
		limit *= 20
	}
	lossy := lossyBitmap(n)
	alternating := make([]uint64, WordsFor(n))
	for i := range alternating {
		alternating[i] = 0x5555_5555_5555_5555
	}
	for _, tc := range []struct {
		name  string
		words []uint64
	}{{"lossy", lossy}, {"every other frame", alternating}} {
		t.Run(tc.name, func(t *testing.T) {
			begin := time.Now()
			missing := Missing(tc.words, n)
			_, length := LongestMissingRun(tc.words, n)
			runs := MissingRuns(tc.words, n, 1000)
			elapsed := time.Since(begin)
			if missing == 0 || length == 0 || len(runs) == 0 {
				t.Fatalf("no loss found: missing %d, longest %d, runs %d", missing, length, len(runs))
			}
			t.Logf("%s: missing %d, longest run %d, %v", tc.name, missing, length, elapsed)
			if elapsed > limit {
				t.Errorf("64 Mi sequence numbers took %v, budget %v", elapsed, limit)
			}
		})
	}
}

func BenchmarkMissing64Mi(b *testing.B) {
	words := lossyBitmap(64 << 20)
	for b.Loop() {
		Missing(words, 64<<20)
	}
}

func BenchmarkLongestMissingRun64Mi(b *testing.B) {
	words := lossyBitmap(64 << 20)
	for b.Loop() {
		LongestMissingRun(words, 64<<20)
	}
}
