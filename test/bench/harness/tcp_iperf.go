package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/uplinkd/uplinkd/test/bench/report"
)

// iperfConnectTimeout bounds iperf3's connect: a path that drops the
// handshake yields its error in seconds, not the kernel's minutes.
const iperfConnectTimeout = 2 * time.Second

// iperfResult is the part of iperf3's -J output the benchmark reads.
type iperfResult struct {
	Error string `json:"error"`
	End   struct {
		SumSent struct {
			Seconds       float64 `json:"seconds"`
			BitsPerSecond float64 `json:"bits_per_second"`
			Retransmits   int64   `json:"retransmits"`
		} `json:"sum_sent"`
		SumReceived struct {
			Seconds       float64 `json:"seconds"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
}

// parseIperf reads iperf3's JSON into a run: throughput as received,
// the sender's retransmits, iperf3's own error.
func parseIperf(out []byte, run *report.TCPBulkRun) error {
	var r iperfResult
	if err := json.Unmarshal(out, &r); err != nil {
		return fmt.Errorf("iperf3 -J output: %w", err)
	}
	run.Seconds = r.End.SumReceived.Seconds
	run.Gbps = r.End.SumReceived.BitsPerSecond / 1e9
	run.Retransmits = r.End.SumSent.Retransmits
	if r.Error != "" {
		return fmt.Errorf("iperf3: %s", r.Error)
	}
	return nil
}

// iperf runs one iperf3 TCP test between an endpoint (the guest, or the
// host on its host port) and the upstream host: the server in the
// receiving namespace, the client (which sends) in the other. A broken
// path ends in an error within seconds: the connect times out, or the
// whole run is killed at its deadline.
func (b *socketBed) iperf(ctx context.Context, endpoint, dir string, streams int, length time.Duration) report.TCPBulkRun {
	run := report.TCPBulkRun{System: b.sys.Name(), Endpoint: endpoint, Direction: dir, Streams: streams}
	sender, receiver, addr := ends(endpoint, dir)
	before, err := b.snmp(receiver)
	if err != nil {
		run.Error = err.Error()
		return run
	}
	err = b.iperfOnce(ctx, &run, sender, receiver, addr, streams, length)
	run.Error = errString(err)
	if after, err := b.snmp(receiver); err == nil {
		run.TCPInCsumErrors = after.delta(before, "Tcp", "InCsumErrors")
	}
	return run
}

func (b *socketBed) iperfOnce(ctx context.Context, run *report.TCPBulkRun, sender, receiver, addr string, streams int, length time.Duration) error {
	port := strconv.Itoa(iperfPort)
	server := exec.Command("ip", "netns", "exec", b.tp.NSName(receiver), "iperf3", "-s", "-1", "-B", addr, "-p", port)
	var serverOut bytes.Buffer
	server.Stdout, server.Stderr = &serverOut, &serverOut
	if err := server.Start(); err != nil {
		return fmt.Errorf("start iperf3 server: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = server.Wait(); close(exited) }()
	// Only the server started here is killed, by its PID (ip netns exec
	// execs iperf3 in place).
	defer func() {
		_ = server.Process.Kill()
		<-exited
	}()
	if err := b.waitListening(ctx, receiver, iperfPort, exited); err != nil {
		return fmt.Errorf("iperf3 server: %w: %s", err, strings.TrimSpace(serverOut.String()))
	}

	deadline := length + iperfConnectTimeout + 5*time.Second
	cctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	client := exec.CommandContext(cctx, "ip", "netns", "exec", b.tp.NSName(sender), "iperf3", "-c", addr, "-p", port,
		"-t", strconv.Itoa(int(length.Seconds())), "-P", strconv.Itoa(streams), "-J",
		"--connect-timeout", strconv.Itoa(int(iperfConnectTimeout.Milliseconds())))
	client.WaitDelay = time.Second
	out, err := client.Output()
	if cctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("iperf3 client killed after %s without a result", deadline)
	}
	if perr := parseIperf(out, run); perr != nil {
		if err != nil {
			return fmt.Errorf("%w (%v)", perr, err)
		}
		return perr
	}
	return err
}

// waitListening waits until a TCP socket listens on port in the role's
// namespace, or the server exits.
func (b *socketBed) waitListening(ctx context.Context, role string, port int, exited <-chan struct{}) error {
	want := fmt.Sprintf(":%04X ", port)
	for range 150 {
		var listening bool
		err := b.tp.In(role, func() error {
			// /proc/net is the process's namespace; /proc/thread-self/net
			// this thread's.
			data, err := os.ReadFile("/proc/thread-self/net/tcp")
			if err != nil {
				return err
			}
			for _, line := range strings.Split(string(data), "\n") {
				f := strings.Fields(line)
				if len(f) > 3 && strings.HasSuffix(f[1]+" ", want) && f[3] == "0A" { // 0A: LISTEN
					listening = true
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if listening {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("exited before listening")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("not listening on port %d after 3 s", port)
}

// snmpCounters are /proc/net/snmp's counters by protocol and name.
type snmpCounters map[string]map[string]uint64

// delta is how much a counter grew since before.
func (s snmpCounters) delta(before snmpCounters, proto, name string) uint64 {
	a, b := s[proto][name], before[proto][name]
	if a < b {
		return 0
	}
	return a - b
}

// parseSNMP reads /proc/net/snmp: per protocol a line of names and a line
// of values, both starting with "Proto:".
func parseSNMP(data []byte) (snmpCounters, error) {
	out := snmpCounters{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	var names []string
	var proto string
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		p := strings.TrimSuffix(f[0], ":")
		if names == nil || p != proto {
			proto, names = p, f[1:]
			continue
		}
		if len(f)-1 != len(names) {
			return nil, fmt.Errorf("snmp: %s: %d values for %d names", proto, len(f)-1, len(names))
		}
		m := map[string]uint64{}
		for i, v := range f[1:] {
			// Some counters (Tcp MaxConn) are signed; they do not matter here.
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("snmp: %s %s: %w", proto, names[i], err)
			}
			m[names[i]] = uint64(max(n, 0))
		}
		out[proto], names = m, nil
	}
	return out, sc.Err()
}

// snmp reads the counters of a role's namespace.
func (b *socketBed) snmp(role string) (snmpCounters, error) {
	var data []byte
	err := b.tp.In(role, func() error {
		var err error
		data, err = os.ReadFile("/proc/thread-self/net/snmp")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("snmp of %s: %w", role, err)
	}
	return parseSNMP(data)
}
