// Package stats is the arithmetic of the benchmark harness: percentiles and
// CDFs of per-trial figures, and gap counting on the receiver's sequence
// bitmaps. It is pure Go (no syscalls, no clock) so every figure the harness
// reports can be checked on synthetic records.
//
// Percentile method: nearest rank. Percentile(xs, p) is the smallest value x
// of xs such that at least p% of xs are <= x, i.e. the value of rank
// ceil(p/100*N) in ascending order (rank 1 for p = 0). It always returns a
// value that was measured (a trial that lost 12 frames, never a made-up
// 11.4), and with fewer than 100 samples the p99 is the maximum, which is the
// honest answer for small trial counts.
package stats

import (
	"math"
	"slices"
	"time"
)

// Summary describes a sample. N counts the values that were used (NaN
// values are dropped); every other field is NaN when N is 0.
type Summary struct {
	N    int
	P50  float64
	P99  float64
	Max  float64
	Min  float64
	Mean float64
}

// Point is one point of a CDF: a fraction Y of the sample is <= X.
type Point struct {
	X, Y float64
}

// finiteSorted returns the non-NaN values of xs in ascending order, in a new
// slice so callers' data is never reordered.
func finiteSorted(xs []float64) []float64 {
	out := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}

// sortedPercentile is the nearest-rank percentile of an ascending, NaN-free
// slice.
func sortedPercentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 || math.IsNaN(p) || p < 0 || p > 100 {
		return math.NaN()
	}
	// p*N before /100 keeps integer p exact (p/100*N gives 7.000000000000001
	// for p=7, N=100, which would round up to rank 8); the tolerance absorbs
	// the same error for fractional p (99.9% of 1000).
	r := p * float64(len(sorted)) / 100
	rank := int(math.Ceil(r))
	if float64(rank)-r > 1-1e-9 {
		rank--
	}
	if rank < 1 {
		rank = 1
	}
	if rank > len(sorted) {
		rank = len(sorted) // guards against rounding up past N
	}
	return sorted[rank-1]
}

// Percentile is the nearest-rank p-th percentile (p in [0, 100]) of the
// non-NaN values of xs; see the package comment. It is NaN for an empty
// sample or p outside [0, 100]. xs is not modified.
func Percentile(xs []float64, p float64) float64 {
	return sortedPercentile(finiteSorted(xs), p)
}

// Median is Percentile(xs, 50): for an even count it is the lower of the two
// middle values, so it is always a measured value and equals Summary.P50.
func Median(xs []float64) float64 {
	return Percentile(xs, 50)
}

// Summarize computes the Summary of the non-NaN values of xs.
func Summarize(xs []float64) Summary {
	s := finiteSorted(xs)
	if len(s) == 0 {
		nan := math.NaN()
		return Summary{P50: nan, P99: nan, Max: nan, Min: nan, Mean: nan}
	}
	var sum float64
	for _, x := range s {
		sum += x
	}
	return Summary{
		N:    len(s),
		P50:  sortedPercentile(s, 50),
		P99:  sortedPercentile(s, 99),
		Max:  s[len(s)-1],
		Min:  s[0],
		Mean: sum / float64(len(s)),
	}
}

// CDF is the empirical cumulative distribution of the non-NaN values of xs:
// one point per distinct value, ascending in X, with Y the fraction of values
// <= X, so Y is in (0, 1] and the last point has Y = 1. Empty input gives nil.
func CDF(xs []float64) []Point {
	s := finiteSorted(xs)
	if len(s) == 0 {
		return nil
	}
	n := float64(len(s))
	out := make([]Point, 0, len(s))
	for i, x := range s {
		if i+1 < len(s) && s[i+1] == x {
			continue // a repeated value is one step of the CDF
		}
		out = append(out, Point{X: x, Y: float64(i+1) / n})
	}
	return out
}

// Rate is count per second over d; NaN when d is not positive.
func Rate(count uint64, d time.Duration) float64 {
	if d <= 0 {
		return math.NaN()
	}
	return float64(count) / d.Seconds()
}

// Ratio is a/b, NaN (never ±Inf, never a panic) when b is 0 or either side
// is NaN or infinite.
func Ratio(a, b float64) float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) || math.IsInf(a, 0) || math.IsInf(b, 0) {
		return math.NaN()
	}
	return a / b
}
