package stats

import (
	"math"
	"reflect"
	"slices"
	"testing"
	"time"
)

// same treats two NaNs as equal.
func same(a, b float64) bool {
	return a == b || (math.IsNaN(a) && math.IsNaN(b))
}

func seq(from, to int) []float64 {
	var out []float64
	for i := from; i <= to; i++ {
		out = append(out, float64(i))
	}
	return out
}

func TestPercentile(t *testing.T) {
	nan := math.NaN()
	wiki := []float64{40, 15, 50, 35, 20} // nearest-rank example, unsorted on purpose
	tests := []struct {
		name string
		xs   []float64
		p    float64
		want float64
	}{
		{"p0 is the minimum", wiki, 0, 15},
		{"p5 rank 1", wiki, 5, 15},
		{"p30 rank 2", wiki, 30, 20},
		{"p40 rank 2 exactly", wiki, 40, 20},
		{"p50 rank 3", wiki, 50, 35},
		{"p99 rank 5", wiki, 99, 50},
		{"p100 is the maximum", wiki, 100, 50},
		{"one element p0", []float64{7}, 0, 7},
		{"one element p50", []float64{7}, 50, 7},
		{"one element p99", []float64{7}, 99, 7},
		{"one element p100", []float64{7}, 100, 7},
		{"even count median is the lower middle", []float64{4, 1, 3, 2}, 50, 2},
		{"p25 of 4 is rank 1", []float64{4, 1, 3, 2}, 25, 1},
		{"p26 of 4 is rank 2", []float64{4, 1, 3, 2}, 26, 2},
		{"p99 of 1..200 is rank 198", seq(1, 200), 99, 198},
		{"p50 of 1..200 is rank 100", seq(1, 200), 50, 100},
		{"p7 of 1..100 is rank 7, not 8", seq(1, 100), 7, 7},
		{"p57 of 1..100 is rank 57", seq(1, 100), 57, 57},
		{"p99.9 of 1..1000 is rank 999", seq(1, 1000), 99.9, 999},
		{"p99 of 1..99 is the maximum", seq(1, 99), 99, 99},
		{"NaN values are dropped", []float64{nan, 3, nan, 1}, 100, 3},
		{"duplicates", []float64{5, 5, 5, 9}, 75, 5},
		{"negative values", []float64{-3, -1, -2}, 50, -2},
		{"empty", nil, 50, nan},
		{"only NaN", []float64{nan}, 50, nan},
		{"p below 0", wiki, -1, nan},
		{"p above 100", wiki, 100.5, nan},
		{"p NaN", wiki, nan, nan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := slices.Clone(tt.xs)
			if got := Percentile(tt.xs, tt.p); !same(got, tt.want) {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tt.xs, tt.p, got, tt.want)
			}
			if !slices.EqualFunc(before, tt.xs, same) {
				t.Errorf("Percentile reordered its input: %v -> %v", before, tt.xs)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		xs   []float64
		want float64
	}{
		{[]float64{9.1, 8.7, 9.4, 2.0, 9.0}, 9.0}, // five forwarding rounds, one bad
		{[]float64{1, 2}, 1},
		{[]float64{3}, 3},
		{nil, math.NaN()},
	}
	for _, tt := range tests {
		if got := Median(tt.xs); !same(got, tt.want) {
			t.Errorf("Median(%v) = %v, want %v", tt.xs, got, tt.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name string
		xs   []float64
		want Summary
	}{
		{"five", []float64{4, 1, 3, 2, 10}, Summary{N: 5, P50: 3, P99: 10, Max: 10, Min: 1, Mean: 4}},
		{"one", []float64{2.5}, Summary{N: 1, P50: 2.5, P99: 2.5, Max: 2.5, Min: 2.5, Mean: 2.5}},
		{"NaN dropped", []float64{nan, 2, 4}, Summary{N: 2, P50: 2, P99: 4, Max: 4, Min: 2, Mean: 3}},
		{"empty", nil, Summary{N: 0, P50: nan, P99: nan, Max: nan, Min: nan, Mean: nan}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Summarize(tt.xs)
			if got.N != tt.want.N || !same(got.P50, tt.want.P50) || !same(got.P99, tt.want.P99) ||
				!same(got.Max, tt.want.Max) || !same(got.Min, tt.want.Min) || !same(got.Mean, tt.want.Mean) {
				t.Errorf("Summarize(%v) = %+v, want %+v", tt.xs, got, tt.want)
			}
		})
	}
}

func TestCDF(t *testing.T) {
	tests := []struct {
		name string
		xs   []float64
		want []Point
	}{
		{"distinct", []float64{3, 1, 2, 4}, []Point{{1, .25}, {2, .5}, {3, .75}, {4, 1}}},
		{"repeats are one step", []float64{2, 1, 2, 3}, []Point{{1, .25}, {2, .75}, {3, 1}}},
		{"all equal", []float64{0, 0, 0}, []Point{{0, 1}}},
		{"NaN dropped", []float64{math.NaN(), 5}, []Point{{5, 1}}},
		{"empty", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CDF(tt.xs)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("CDF(%v) = %v, want %v", tt.xs, got, tt.want)
			}
			for i, p := range got {
				if p.Y <= 0 || p.Y > 1 || (i > 0 && (p.X <= got[i-1].X || p.Y <= got[i-1].Y)) {
					t.Errorf("point %d %+v breaks the CDF invariants", i, p)
				}
			}
		})
	}
}

func TestRate(t *testing.T) {
	tests := []struct {
		count uint64
		d     time.Duration
		want  float64
	}{
		{1000, 2 * time.Second, 500},
		{1, time.Millisecond, 1000},
		{5_000_000, 500 * time.Millisecond, 10_000_000},
		{0, time.Second, 0},
		{7, 0, math.NaN()},
		{7, -time.Second, math.NaN()},
	}
	for _, tt := range tests {
		if got := Rate(tt.count, tt.d); !same(got, tt.want) {
			t.Errorf("Rate(%d, %v) = %v, want %v", tt.count, tt.d, got, tt.want)
		}
	}
}

func TestRatio(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	tests := []struct {
		a, b, want float64
	}{
		{1, 2, 0.5},
		{6.1, 1, 6.1},
		{0, 5, 0},
		{-3, 2, -1.5},
		{1, 0, nan},
		{0, 0, nan},
		{nan, 1, nan},
		{1, nan, nan},
		{inf, 1, nan},
		{1, inf, nan},
	}
	for _, tt := range tests {
		if got := Ratio(tt.a, tt.b); !same(got, tt.want) {
			t.Errorf("Ratio(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
