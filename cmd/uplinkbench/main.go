// Command uplinkbench measures failover and forwarding of uplinkd and its
// peers (Open vSwitch, Linux bridge, a bare XDP redirect) on testbeds in
// network namespaces, and writes JSON, an HTML report and a markdown table.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/uplinkd/uplinkd/test/bench/harness"
	"github.com/uplinkd/uplinkd/test/bench/report"
)

func main() {
	var o harness.Options
	flag.StringVar(&o.Profile, "profile", "quick", "quick (<= 10 min) or full")
	systems := flag.String("systems", "", "comma-separated: uplinkd,ovs,bridge,tcfwd,xdpfwd (default: all)")
	scenarios := flag.String("scenario", "", "comma-separated: failover,forward,balance,upgrade,tcp,idle (default: all)")
	uplinks := flag.String("uplinks", "", "comma-separated uplink kinds for failover: veth,tap (default: both)")
	guests := flag.String("guests", "", "comma-separated guest counts (default 1,64,1024)")
	sizes := flag.String("frame-sizes", "", "comma-separated frame sizes with FCS (default 64,1500)")
	flag.IntVar(&o.Trials, "trials", 0, "failover trials per case (profile default)")
	flag.IntVar(&o.RatePPS, "rate", 0, "guest frames per second in failover trials every system carries (default 50000)")
	flag.IntVar(&o.HighRatePPS, "high-rate", 0, "uplinkd-only failover rate (default 1000000)")
	flag.IntVar(&o.SocketRounds, "tcp-rounds", 0, "tcp scenario: iperf3 runs per system and cell, systems taking turns (default 3, full 5)")
	flag.IntVar(&o.TCPFailoverTrials, "tcp-failover-trials", 0, "tcp scenario: TCP connections per system across a cut of the active uplink (default 20, full 50)")
	flag.IntVar(&o.Rounds, "rounds", 0, "forwarding rounds (median is reported; default 5)")
	flag.IntVar(&o.CPURatePPS, "cpu-rate", 0, "forward scenario: frames per second offered to every system and the baseline for CPU per frame (default 200000; negative: skip)")
	flag.IntVar(&o.CPURounds, "cpu-rounds", 0, "CPU-per-frame rounds per system, direction and size (median is reported; default 3, full 5)")
	flag.DurationVar(&o.CPURoundTime, "cpu-time", 0, "length of a CPU-per-frame round (default 2s, full 5s)")
	cpuSizes := flag.String("cpu-frame-sizes", "", "comma-separated frame sizes for CPU per frame (default 64, full 64,1500)")
	flag.DurationVar(&o.UplinkdPoll, "uplinkd-poll", 0, "uplinkd's carrier_poll_interval (default: uplinkd's own)")
	flag.StringVar(&o.Engine, "engine", "auto", "traffic engine: auto (live where the kernel allows live-frame test runs, else afpacket), live, afpacket")
	flag.StringVar(&o.BinDir, "bin", "bin", "directory with uplinkd")
	flag.StringVar(&o.UpgradeBin, "upgrade-bin", "", "upgrade scenario: directory with the uplinkd started over the running one (default: -bin, the same binary)")
	out := flag.String("out", "bench-results", "output directory for results.json and report.html")
	md := flag.String("markdown", "docs/benchmarks.md", "markdown table to write ('' to skip)")
	render := flag.String("render", "", "run nothing: write report.html (to -out) and the markdown again from this results.json")
	flag.Parse()
	if *render != "" {
		res, err := report.ReadJSON(*render)
		if err != nil {
			fatal(err)
		}
		writeReports(res, *out, *md)
		return
	}

	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, ",")
	}
	ints := func(s string) []int {
		var out []int
		for _, f := range split(s) {
			n, err := strconv.Atoi(f)
			if err != nil {
				fatal(fmt.Errorf("bad number %q", f))
			}
			out = append(out, n)
		}
		return out
	}
	o.Systems, o.Scenarios, o.Uplinks = split(*systems), split(*scenarios), split(*uplinks)
	o.Guests, o.FrameSizes, o.CPUFrameSizes = ints(*guests), ints(*sizes), ints(*cpuSizes)
	bin, err := filepath.Abs(o.BinDir)
	if err != nil {
		fatal(err)
	}
	o.BinDir = bin
	if o.UpgradeBin != "" {
		if o.UpgradeBin, err = filepath.Abs(o.UpgradeBin); err != nil {
			fatal(err)
		}
	}
	o.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))

	// Ctrl-C stops the run; every testbed is still removed.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := harness.Run(ctx, o)
	if res == nil {
		fatal(err)
	}
	if err != nil {
		o.Log.Warn("run interrupted; writing what was measured", "err", err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fatal(err)
	}
	if err := report.WriteJSON(filepath.Join(*out, "results.json"), res); err != nil {
		fatal(err)
	}
	fmt.Fprintf(os.Stderr, "uplinkbench: wrote %s/results.json\n", *out)
	writeReports(res, *out, *md)
}

// writeReports writes out/report.html and the markdown md ("": none) of
// res, and the markdown to stdout.
func writeReports(res *report.Result, out, md string) {
	if err := writeFile(filepath.Join(out, "report.html"), func(f *os.File) error { return report.WriteHTML(f, res) }); err != nil {
		fatal(err)
	}
	if md != "" {
		if err := writeFile(md, func(f *os.File) error { return report.WriteMarkdown(f, res) }); err != nil {
			fatal(err)
		}
	}
	if err := report.WriteMarkdown(os.Stdout, res); err != nil {
		fatal(err)
	}
	fmt.Fprintf(os.Stderr, "uplinkbench: wrote %s/report.html%s\n", out, map[bool]string{true: ", " + md, false: ""}[md != ""])
}

func writeFile(path string, write func(*os.File) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "uplinkbench:", err)
	os.Exit(1)
}
