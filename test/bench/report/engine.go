package report

import (
	"fmt"
	"strings"
)

// Engine is the traffic engine that sent every stream of the run (see
// benchbpf: "live" test runs of bench_gen, or "afpacket" from user space)
// and its own ceiling.
type Engine struct {
	Name   string `json:"name"`
	Reason string `json:"reason"` // why this engine: auto's choice, or asked for
	// Ceiling is what the engine alone delivers flat out into a veth whose
	// peer runs the bare XDP receiver (no switch), median of the rounds,
	// per frame size.
	Ceiling []EngineCeiling `json:"ceiling"`
}

// EngineCeiling is the engine's ceiling at one frame size.
type EngineCeiling struct {
	FrameSize int     `json:"frame_size"` // with the 4-byte FCS, as ForwardRound
	Rounds    int     `json:"rounds"`
	Mpps      float64 `json:"mpps"` // median
}

// engineLimitedShare: a figure at or above this share of the engine's
// ceiling may be the engine's limit rather than the system's.
const engineLimitedShare = 0.9

// engineMark follows a figure the engine may have limited.
const engineMark = " †"

// ceilingMpps is the engine's ceiling at size, if measured.
func (e *Engine) ceilingMpps(size int) (float64, bool) {
	if e == nil {
		return 0, false
	}
	for _, c := range e.Ceiling {
		if c.FrameSize == size && c.Mpps > 0 {
			return c.Mpps, true
		}
	}
	return 0, false
}

// limited says whether mpps at size is within engineLimitedShare of the
// ceiling.
func (e *Engine) limited(size int, mpps float64) bool {
	c, ok := e.ceilingMpps(size)
	return ok && mpps >= engineLimitedShare*c
}

// markForwardLimits marks the median rate of every forwarding row the
// engine may have limited.
func markForwardLimits(t *textTable, rows []ForwardRow, e *Engine) {
	for i, r := range rows {
		if i < len(t.Rows) && e.limited(r.FrameSize, r.Mpps.P50) {
			t.Rows[i][4] += engineMark
		}
	}
}

// markFailoverLimits marks the rate of every failover row whose offered
// rate (64-byte frames) is within reach of the engine's ceiling: the
// engine may not have delivered it.
func markFailoverLimits(t *textTable, rows []FailoverRow, e *Engine) {
	for i, r := range rows {
		if i < len(t.Rows) && r.RatePPS > 0 && e.limited(64, float64(r.RatePPS)/1e6) {
			t.Rows[i][2] += engineMark
		}
	}
}

// engineNotes says which engine sent the traffic, its ceiling, what the
// mark means, and whether the engine kept the bare XDP redirect below
// 2 Mpps.
func engineNotes(r *Result, ts TableSet) []string {
	e := r.Engine
	if e == nil {
		return nil
	}
	var ceil []string
	for _, c := range e.Ceiling {
		ceil = append(ceil, fmt.Sprintf("%s Mpps at %d B", fmtMpps(c.Mpps), c.FrameSize))
	}
	notes := []string{fmt.Sprintf("Traffic engine: %s (%s). Its own ceiling, flat out into a bare XDP receiver with no switch (median): %s.",
		e.Name, e.Reason, orDash(strings.Join(ceil, ", ")))}
	marked := false
	for _, f := range ts.Forwarding {
		marked = marked || e.limited(f.FrameSize, f.Mpps.P50)
	}
	for _, f := range ts.Failover {
		marked = marked || (f.RatePPS > 0 && e.limited(64, float64(f.RatePPS)/1e6))
	}
	if marked {
		notes = append(notes, fmt.Sprintf("%s: at %s or more of the engine's ceiling; the engine, not the system, may be the limit.",
			strings.TrimSpace(engineMark), fmtPercent(engineLimitedShare)))
	}
	if c, ok := e.ceilingMpps(64); ok && c < 2 {
		xdp := dash
		for _, f := range ts.Forwarding {
			if f.System == SystemXDPRedirect && f.Direction == GuestToUplink && f.FrameSize == 64 {
				xdp = fmtMpps(f.Mpps.P50) + " Mpps"
			}
		}
		notes = append(notes, fmt.Sprintf("The bare XDP redirect (%s) cannot reach 2 Mpps with 64-byte frames here (measured: %s) because the %s engine's ceiling is lower: %s Mpps.",
			SystemXDPRedirect, xdp, e.Name, fmtMpps(c)))
	}
	return notes
}
