package stats

import "math/bits"

// Sequence bitmaps record which sequence numbers arrived: bit i of word w
// stands for sequence number 64*w+i. Sequence numbers at or beyond len*64
// count as not received, and bits for sequence numbers >= n (the number that
// were sent) are ignored by every function that takes n, so a receiver that
// saw a stray frame from a later trial does not hide a loss.
//
// All functions work a word at a time with math/bits: 64 Mi sequence numbers
// (1 Mi words) take a few milliseconds.

const all64 = ^uint64(0)

// Run is a range of consecutive missing sequence numbers [Start, Start+Len).
type Run struct {
	Start, Len uint64
}

// WordsFor is the number of words a bitmap of n sequence numbers needs.
func WordsFor(n uint64) int {
	return int((n + 63) / 64)
}

// Set marks seq as received; it is ignored when seq is beyond the bitmap.
func Set(words []uint64, seq uint64) {
	if w := seq / 64; w < uint64(len(words)) {
		words[w] |= 1 << (seq % 64)
	}
}

// Received counts the sequence numbers < n whose bit is set.
func Received(words []uint64, n uint64) uint64 {
	full := n / 64
	if full > uint64(len(words)) {
		full = uint64(len(words))
	}
	var c uint64
	for _, w := range words[:full] {
		c += uint64(bits.OnesCount64(w))
	}
	if rem := n % 64; rem != 0 && n/64 < uint64(len(words)) {
		c += uint64(bits.OnesCount64(words[n/64] & (1<<rem - 1)))
	}
	return c
}

// Missing counts the sequence numbers < n whose bit is clear.
func Missing(words []uint64, n uint64) uint64 {
	return n - Received(words, n)
}

// PopCount counts every set bit of words.
func PopCount(words []uint64) uint64 {
	var c uint64
	for _, w := range words {
		c += uint64(bits.OnesCount64(w))
	}
	return c
}

// Union is a new bitmap of the sequence numbers received in a or b (e.g. on
// either uplink); it is as long as the longer of the two.
func Union(a, b []uint64) []uint64 {
	if len(a) < len(b) {
		a, b = b, a
	}
	out := make([]uint64, len(a))
	copy(out, a)
	for i, w := range b {
		out[i] |= w
	}
	return out
}

// Intersect is a new bitmap of the sequence numbers received in both a and b
// (e.g. frames duplicated onto two uplinks); it is as long as the shorter.
func Intersect(a, b []uint64) []uint64 {
	if len(a) > len(b) {
		a, b = b, a
	}
	out := make([]uint64, len(a))
	for i, w := range a {
		out[i] = w & b[i]
	}
	return out
}

// nextSet is the first sequence number in [from, n) whose bit is set, or n.
func nextSet(words []uint64, n, from uint64) uint64 {
	for from < n {
		w := from / 64
		if w >= uint64(len(words)) {
			return n
		}
		if v := words[w] >> (from % 64); v != 0 {
			return min(from+uint64(bits.TrailingZeros64(v)), n)
		}
		from = (w + 1) * 64
	}
	return n
}

// nextClear is the first sequence number in [from, n) whose bit is clear, or
// n.
func nextClear(words []uint64, n, from uint64) uint64 {
	for from < n {
		w := from / 64
		if w >= uint64(len(words)) {
			return from
		}
		if v := ^words[w] >> (from % 64); v != 0 {
			return min(from+uint64(bits.TrailingZeros64(v)), n)
		}
		from = (w + 1) * 64
	}
	return n
}

// eachMissingRun calls f for every run of missing sequence numbers below n,
// in ascending order, until f returns false.
func eachMissingRun(words []uint64, n uint64, f func(Run) bool) {
	for pos := uint64(0); pos < n; {
		start := nextClear(words, n, pos)
		if start >= n {
			return
		}
		end := nextSet(words, n, start)
		if !f(Run{Start: start, Len: end - start}) {
			return
		}
		pos = end
	}
}

// LongestMissingRun is the longest run of missing sequence numbers below n
// (the earliest one on a tie); length is 0 when nothing is missing.
//
// It works a word at a time rather than run by run, so its cost does not grow
// with the number of runs (every other frame lost is 32 Mi runs in 64 Mi).
func LongestMissingRun(words []uint64, n uint64) (start, length uint64) {
	var best, cur Run // cur is the run still open at the end of the previous word
	closeCur := func() {
		if cur.Len > best.Len {
			best = cur
		}
		cur = Run{}
	}
	for w := range uint64(WordsFor(n)) {
		valid := uint64(64)
		if rem := n - 64*w; rem < 64 {
			valid = rem
		}
		mask := all64
		if valid < 64 {
			mask = 1<<valid - 1
		}
		var got uint64
		if w < uint64(len(words)) {
			got = words[w]
		}
		lost := ^got & mask
		if lost == mask { // the whole word is missing: the open run goes on
			if cur.Len == 0 {
				cur.Start = 64 * w
			}
			cur.Len += valid
			continue
		}
		// The run at the bottom of the word continues the open one.
		if low := uint64(bits.TrailingZeros64(^lost)); low > 0 {
			if cur.Len == 0 {
				cur.Start = 64 * w
			}
			cur.Len += low
		}
		closeCur()
		// The run at the top of the word stays open into the next word.
		high := uint64(bits.LeadingZeros64(^(lost << (64 - valid))))
		inner := lost &^ (1<<bits.TrailingZeros64(^lost) - 1) // drop the bottom run
		if high > 0 {
			inner &^= (1<<high - 1) << (valid - high) // and the top run
		}
		// Runs wholly inside the word, longest first found: after k rounds of
		// x &= x>>1 a bit is still set only where k+1 missing bits start.
		if inner != 0 && uint64(bits.OnesCount64(inner)) > best.Len {
			var k uint64
			last := inner
			for x := inner; x != 0; x &= x >> 1 {
				last = x
				k++
			}
			if k > best.Len {
				best = Run{Start: 64*w + uint64(bits.TrailingZeros64(last)), Len: k}
			}
		}
		if high > 0 {
			cur = Run{Start: 64*w + valid - high, Len: high}
		}
	}
	closeCur()
	return best.Start, best.Len
}

// MissingRuns lists the runs of missing sequence numbers below n in
// ascending order, at most limit of them (all of them when limit <= 0; mind
// that a pathological trial can have n/2 runs, so pass a limit for display).
func MissingRuns(words []uint64, n uint64, limit int) []Run {
	var out []Run
	eachMissingRun(words, n, func(r Run) bool {
		out = append(out, r)
		return limit <= 0 || len(out) < limit
	})
	return out
}
