package report

import (
	"encoding/xml"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var started = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// synthetic is a run shaped like a real one: uplinkd and Open vSwitch fail
// over on veth and tap at 50 kpps, uplinkd also at 1 Mpps, with 1, 64 and
// 1024 guests and second failures; four systems forward; one peer did not
// run a scenario.
func synthetic() *Result {
	rng := rand.New(rand.NewPCG(7, 8))
	r := &Result{
		Version: "v0.3.0-12-gabcdef", Profile: ProfileQuick, Command: "make bench",
		Started: started, Finished: started.Add(9*time.Minute + 12*time.Second),
		Env: Env{Kernel: "6.18.0-uplinkd", Hostname: "bench-vm", GoVersion: "go1.26.8", CPUModel: "AMD EPYC",
			CPUs: 2, MemoryBytes: 4 << 30,
			Versions: map[string]string{"uplinkd": "v0.3.0", "ovs": "3.1.0", "iproute2": "ip utility, iproute2-6.1.0"}},
	}
	add := func(system, uplink string, guests, rate int, second bool, trials int, baseIntr float64) {
		for i := 1; i <= trials; i++ {
			intr := baseIntr * (0.7 + 0.6*rng.Float64())
			if rng.IntN(12) == 0 {
				intr *= 4 // the odd slow trial
			}
			lost := uint64(intr * float64(rate) / 1e9)
			t := FailoverTrial{System: system, Uplink: uplink, Guests: guests, RatePPS: rate, Trial: i,
				SecondFailure: second, Sent: uint64(rate) * 2, Lost: lost, LostNearCut: lost,
				InterruptionNs: int64(intr), CutToSwitchNs: -1, CutToAnnounceNs: -1, CutToReceiveOnlyNs: -1,
				CPUBusy: 0.3 + 0.5*rng.Float64()}
			if system == SystemUplinkd {
				t.CutToSwitchNs = int64(intr * 0.6)
				t.CutToAnnounceNs = int64(intr*0.8) + int64(guests)*2500
				t.CutToReceiveOnlyNs = t.CutToAnnounceNs + 20_000
			} else {
				t.CutToAnnounceNs = int64(intr) + 300_000
				t.CutToReceiveOnlyNs = t.CutToAnnounceNs + 50_000
			}
			if i == 3 {
				t.CPUBusy = 0.97
				t.Note = "ovs-vswitchd | revalidator busy"
			}
			r.Failover = append(r.Failover, t)
		}
	}
	for _, up := range []string{UplinkVeth, UplinkTap} {
		base := 40_000.0
		if up == UplinkTap {
			base = 90_000
		}
		for _, g := range []int{1, 64, 1024} {
			add(SystemUplinkd, up, g, 50_000, false, 10, base)
		}
		add(SystemUplinkd, up, 1, 50_000, true, 5, base*1.2)
		add(SystemOVS, up, 1, 50_000, false, 10, 2_800_000)
	}
	add(SystemUplinkd, UplinkVeth, 1, 1_000_000, false, 10, 40_000)
	r.Failover[0].Lost, r.Failover[1].Lost = 0, 0 // a perfect failover or two

	peak := map[string]float64{SystemUplinkd: 9.1, SystemOVS: 0.31, SystemLinuxBridge: 1.45, SystemXDPRedirect: 11.8}
	for _, sys := range []string{SystemUplinkd, SystemOVS, SystemLinuxBridge, SystemXDPRedirect} {
		for _, dir := range []string{GuestToUplink, UplinkToGuest} {
			for _, size := range []int{64, 1500} {
				for round := 1; round <= 5; round++ {
					mpps := peak[sys] * (0.93 + 0.1*rng.Float64())
					if size == 1500 {
						mpps = min(mpps, 0.8*(0.95+0.05*rng.Float64()))
					}
					r.Forwarding = append(r.Forwarding, ForwardRound{System: sys, Direction: dir, FrameSize: size,
						Round: round, Mpps: mpps, Gbps: mpps * float64(size) * 8 / 1000,
						Sent: 10_000_000, Received: uint64(mpps * 2e6), CPUBusy: 0.99})
				}
			}
		}
	}
	r.NotRun = []NotRun{{System: SystemOVS, Scenario: "failover tap, second failure",
		Reason: "ovs-vswitchd: bond <bond0> did not switch within 5 s & was restarted"}}
	return r
}

// xmlCheck parses doc strictly and returns the text of every element named
// name and the number of elements of each name.
func xmlCheck(t *testing.T, doc string) (counts map[string]int, texts []string) {
	t.Helper()
	counts = map[string]int{}
	d := xml.NewDecoder(strings.NewReader(doc))
	var stack []string
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, excerpt(doc, d.InputOffset()))
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			counts[tok.Name.Local]++
			stack = append(stack, tok.Name.Local)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 && strings.TrimSpace(string(tok)) != "" {
				texts = append(texts, string(tok))
			}
		}
	}
	return counts, texts
}

func excerpt(s string, at int64) string {
	lo, hi := max(0, int(at)-200), min(len(s), int(at)+200)
	return s[lo:hi]
}

// markdownOf is WriteMarkdown's output for r; it fails t on an error.
func markdownOf(t *testing.T, r *Result) string {
	t.Helper()
	var b strings.Builder
	if err := WriteMarkdown(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// htmlOf is WriteHTML's output for r; it fails t on an error.
func htmlOf(t *testing.T, r *Result) string {
	t.Helper()
	var b strings.Builder
	if err := WriteHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// wantAll fails t for each of wants that doc (what: "markdown", "HTML") lacks.
func wantAll(t *testing.T, what, doc string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(doc, want) {
			t.Errorf("%s lacks %q", what, want)
		}
	}
}

func TestOutputsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	r := synthetic()
	jsonPath := filepath.Join(dir, "results.json")
	if err := WriteJSON(jsonPath, r); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	want := *r
	want.Format = FormatVersion
	if !reflect.DeepEqual(back, &want) {
		t.Errorf("read back differs:\n got %+v\nwant %+v", back, &want)
	}
	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	wantAll(t, "JSON", string(raw), `"format": "uplinkd-bench/1"`, `"not_run"`, `"cut_to_receive_only_ns"`,
		`"memory_bytes"`, `"second_failure": true`, `"frame_size": 1500`, `"rate_pps": 1000000`)
	if matches, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(matches) > 0 {
		t.Errorf("temporary files left behind: %v", matches)
	}

	mdText := markdownOf(t, back)
	wantAll(t, "markdown", mdText,
		"# Benchmarks", "2025-03-04 05:06 UTC", "took 9m12s", "kernel 6.18.0-uplinkd", "2 CPUs (AMD EPYC)",
		"```sh\nmake bench\n```", "## Failover", "## Forwarding", "## Not run",
		"| uplinkd | veth | 1 Mpps | cut | 1 | 10 |", "| Open vSwitch | tap | 50 kpps | cut | 1 | 10 |",
		"the frames Open vSwitch loses", "the rate of Linux bridge", "the rate of XDP redirect (bare)",
		"- **Open vSwitch**, failover tap, second failure: ovs-vswitchd: bond &lt;bond0> did not switch",
	)
	cells := -1 // every line of a markdown table has as many cells as its header
	for i, line := range strings.Split(mdText, "\n") {
		if !strings.HasPrefix(line, "|") {
			cells = -1
			continue
		}
		n := strings.Count(strings.ReplaceAll(line, `\|`, ""), "|")
		if cells < 0 {
			cells = n
		} else if n != cells {
			t.Errorf("markdown line %d has %d pipes, its header %d: %q", i+1, n, cells, line)
		}
	}

	html := htmlOf(t, back)
	counts, texts := xmlCheck(t, html)
	// 2 loads × (loss + interruption) + forwarding + 2 uplink kinds vs guests.
	if counts["svg"] != 7 {
		t.Errorf("%d SVG plots, want 7", counts["svg"])
	}
	wantAll(t, "HTML", strings.Join(texts, "\n"),
		"uplinkd · veth", "uplinkd · tap · 2nd failure", "Open vSwitch · tap", // CDF legends
		"Frames lost per failover at 50 kpps", "Interruption per failover at 1 Mpps",
		"frames lost — log scale", "Linux bridge", "XDP redirect (bare)", "guest → uplink", "1500 B frames",
		"cut → announce", "uplinkd on tap: time after the cut vs guests", "1,024",
		"ovs-vswitchd: bond <bond0> did not switch within 5 s & was restarted", // escaped, then parsed back
		"make bench", "6.18.0-uplinkd", "iproute2-6.1.0", "Every failover trial (100)", "Every forwarding round (80)",
	)
	for _, bad := range []string{"NaN", "Inf", "<script", "src=", `href="http`, "@import", "url("} {
		if strings.Contains(html, bad) {
			t.Errorf("HTML contains %q", bad)
		}
	}
	if n := strings.Count(html, `class="noisy"`); n == 0 {
		t.Error("no trial is flagged as run under CPU contention")
	}
	writeSample(t, "bench-sample.html", []byte(html))
	writeSample(t, "bench-sample.md", []byte(mdText))
}

// writeSample keeps a rendered page for a person to look at when
// UPLINKD_BENCH_SAMPLE_DIR is set.
func writeSample(t *testing.T, name string, data []byte) {
	if dir := os.Getenv("UPLINKD_BENCH_SAMPLE_DIR"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestUplinkdAlone(t *testing.T) {
	r := synthetic()
	var keep []FailoverTrial
	for _, tr := range r.Failover {
		if tr.System == SystemUplinkd && tr.Uplink == UplinkVeth && tr.Guests == 1 && !tr.SecondFailure {
			keep = append(keep, tr)
		}
	}
	r.Failover = keep
	r.Forwarding = r.Forwarding[:5] // uplinkd, guest → uplink, 64 B
	r.NotRun = append(r.NotRun, NotRun{System: SystemLinuxBridge, Scenario: "forwarding", Reason: "no bridge module"})
	page := htmlOf(t, r)
	writeSample(t, "bench-alone.html", []byte(page))
	counts, texts := xmlCheck(t, page)
	text := strings.Join(texts, "\n")
	if counts["svg"] != 6 { // loss and interruption at two loads, forwarding, one uplink kind vs guests
		t.Errorf("%d plots, want 6", counts["svg"])
	}
	wantAll(t, "HTML", text, "uplinkd p99 interruption at 1 Mpps", "uplinkd forwarding rate", "2 not run", "no bridge module")
	if strings.Contains(text, "Open vSwitch · veth") {
		t.Error("a system without trials got a line")
	}
}

func TestEmptyResult(t *testing.T) {
	r := &Result{}
	md, page := markdownOf(t, r), htmlOf(t, r)
	writeSample(t, "bench-empty.html", []byte(page))
	counts, texts := xmlCheck(t, page)
	if counts["svg"] == 0 || !strings.Contains(strings.Join(texts, " "), "no data in this run") {
		t.Errorf("empty result: %d plots, want placeholders saying there is no data", counts["svg"])
	}
	if strings.Contains(page, "NaN") || strings.Contains(md, "NaN") {
		t.Error("empty result renders NaN")
	}
	wantAll(t, "empty markdown", md, "No data in this run.", "Everything ran.", "No setting was measured for both")
}

func TestWriteJSONRefusesWhatJSONCannotHold(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name   string
		mutate func(*Result)
		want   string
	}{
		{"NaN CPU share", func(r *Result) { r.Failover[4].CPUBusy = math.NaN() }, "failover[4] (uplinkd veth trial 5) cpu_busy is NaN"},
		{"infinite rate", func(r *Result) { r.Forwarding[0].Mpps = math.Inf(1) }, "mpps is +Inf"},
		{"foreign format", func(r *Result) { r.Format = "something/2" }, `format "something/2"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := synthetic()
			tt.mutate(r)
			path := filepath.Join(dir, "r.json")
			err := WriteJSON(path, r)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("WriteJSON error = %v, want it to mention %q", err, tt.want)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a file was written anyway: %v", err)
			}
		})
	}
}

func TestReadJSONErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "nope.json"), "no such file"},
		{"garbage", write("garbage.json", "{not json"), "invalid character"},
		{"no format", write("old.json", `{"version":"v1"}`), `format "", want "uplinkd-bench/1"`},
		{"newer format", write("new.json", `{"format":"uplinkd-bench/2"}`), `format "uplinkd-bench/2"`},
	}
	for _, tt := range tests {
		if _, err := ReadJSON(tt.path); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: ReadJSON error = %v, want it to mention %q", tt.name, err, tt.want)
		}
	}
	p := write("extra.json", `{"format":"uplinkd-bench/1","profile":"full","added_later":{"x":1}}`)
	if r, err := ReadJSON(p); err != nil || r.Profile != "full" {
		t.Errorf("a file with an unknown field: %v, %+v", err, r)
	}
}
