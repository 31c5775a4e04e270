package report

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// dash stands for a figure that is unknown or does not apply.
const dash = "–"

// systemNames are the labels people know the peers by.
var systemNames = map[string]string{
	SystemUplinkd:     "uplinkd",
	SystemOVS:         "Open vSwitch",
	SystemLinuxBridge: "Linux bridge",
	SystemXDPRedirect: "XDP redirect (bare)",
	SystemTCRedirect:  "tc redirect (bare)",
	SystemBaseline:    "baseline (no switch)",
	SystemDirect:      "no switch (guest on the upstream bridge)",
}

func systemName(s string) string {
	if n, ok := systemNames[s]; ok {
		return n
	}
	return s
}

func directionName(d string) string {
	switch d {
	case GuestToUplink:
		return "guest → uplink"
	case UplinkToGuest:
		return "uplink → guest"
	}
	return d
}

// trimFloat formats v with at most decimals decimals and no trailing zeros.
func trimFloat(v float64, decimals int) string {
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s
}

// sig3 formats v (>= 0) with about three significant digits.
func sig3(v float64) string {
	switch {
	case v < 10:
		return trimFloat(v, 2)
	case v < 100:
		return trimFloat(v, 1)
	}
	return trimFloat(v, 0)
}

// fmtNs formats a duration in nanoseconds in the unit that suits it.
func fmtNs(ns float64) string {
	switch a := math.Abs(ns); {
	case math.IsNaN(ns) || math.IsInf(ns, 0):
		return dash
	case a == 0:
		return "0"
	case a < 1e3:
		return trimFloat(ns, 0) + " ns"
	case a < 1e6:
		return sig3(ns/1e3) + " µs"
	case a < 1e9:
		return sig3(ns/1e6) + " ms"
	}
	return sig3(ns/1e9) + " s"
}

// fmtCount formats a count with thousands separators.
func fmtCount(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return dash
	}
	if v != math.Trunc(v) {
		return sig3(v)
	}
	s := strconv.FormatFloat(math.Abs(v), 'f', 0, 64)
	var b strings.Builder
	if v < 0 {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func fmtMpps(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return dash
	}
	if v >= 10 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func fmtPercent(share float64) string {
	if math.IsNaN(share) || math.IsInf(share, 0) {
		return dash
	}
	return trimFloat(share*100, 0) + "%"
}

// fmtRate formats an offered load; 0 is "as fast as possible".
func fmtRate(pps int) string {
	switch {
	case pps <= 0:
		return "max rate"
	case pps < 1000:
		return fmt.Sprintf("%d pps", pps)
	case pps < 1_000_000:
		return trimFloat(float64(pps)/1e3, 1) + " kpps"
	}
	return trimFloat(float64(pps)/1e6, 2) + " Mpps"
}

// fmtRatio formats a ratio with two significant digits below 1 (0.02×,
// 0.0041×) and one decimal above (6.1×).
func fmtRatio(r float64) string {
	switch {
	case math.IsNaN(r) || math.IsInf(r, 0):
		return dash
	case r == 0:
		return "0×"
	case r >= 10:
		return trimFloat(r, 0) + "×"
	case r >= 1:
		return trimFloat(r, 1) + "×"
	}
	decimals := int(math.Ceil(-math.Log10(r))) + 1
	return strconv.FormatFloat(r, 'f', decimals, 64) + "×"
}

func fmtBytes(b uint64) string {
	if b == 0 {
		return dash
	}
	const gib = 1 << 30
	if b >= gib {
		return trimFloat(float64(b)/gib, 1) + " GiB"
	}
	return trimFloat(float64(b)/(1<<20), 0) + " MiB"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
