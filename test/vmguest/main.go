// Command vmguest runs inside the VM of test/e2e/vm_test.go: socket TCP and
// UDP both ways between the VM and a host upstream of the switch under test.
//
// scripts/test-kernels.sh vm-image puts it into an initramfs whose /init
// (cmd/qemu-init) runs it with stdout on the second serial port. Its
// settings come from the kernel command line (vmguest.KEY=VALUE), so one
// image serves every case. It prints lines the host parses:
//
//	@@vmguest log TEXT        progress, for the test's log
//	@@vmguest ready           eth0 is up and the servers listen
//	@@vmguest result JSON     a Result, the last line
//
// After ready, everything runs at once with bounded waits: a TCP server
// and a UDP receiver for what the host sends, a TCP client and a UDP
// sender towards the host.
package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

const marker = "@@vmguest"

// Config is read from vmguest.* kernel arguments.
type Config struct {
	Addr      string        // eth0's address, CIDR
	Peer      string        // the upstream host's address
	TCPPort   int           // this VM's TCP server (the host connects)
	UDPPort   int           // this VM's UDP receiver
	PeerTCP   int           // the host's TCP server
	PeerUDP   int           // the host's UDP receiver
	TCPBytes  int64         // bytes each TCP connection carries
	Datagrams int           // UDP datagrams each way
	UDPSize   int           // UDP payload bytes
	Wait      time.Duration // how long any one exchange may take
}

// Result is what the host asserts on.
type Result struct {
	Offloads map[string]string `json:"offloads"` // ethtool -k eth0
	// TCPRx: the connection the host opened; TCPTx: the one this VM opened.
	TCPRx Transfer `json:"tcp_rx"`
	TCPTx Transfer `json:"tcp_tx"`
	// UDPRx counts intact datagrams from the host (distinct sequence numbers).
	UDPRx    int    `json:"udp_rx"`
	UDPBad   int    `json:"udp_bad"` // datagrams whose payload was not what was sent
	UDPTx    int    `json:"udp_tx"`
	UDPTxErr string `json:"udp_tx_err,omitempty"`
	// Counters from /proc/net/snmp and /proc/net/netstat after the run.
	Counters map[string]int64 `json:"counters"`
	Error    string           `json:"error,omitempty"` // setup failed
}

// Transfer is one TCP connection's outcome.
type Transfer struct {
	Bytes   int64   `json:"bytes"`
	SHA256  string  `json:"sha256"`
	Seconds float64 `json:"seconds"` // from accept or connect to the end
	Err     string  `json:"err,omitempty"`
}

var outMu sync.Mutex

func emit(kind, text string) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Printf("%s %s %s\n", marker, kind, text)
}

func logf(format string, args ...any) { emit("log", fmt.Sprintf(format, args...)) }

func main() {
	var res Result
	if err := run(&res); err != nil {
		res.Error = err.Error()
	}
	raw, _ := json.Marshal(res)
	emit("result", string(raw))
}

func run(res *Result) error {
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return fmt.Errorf("read kernel arguments: %w", err)
	}
	cfg, err := parseConfig(string(cmdline))
	if err != nil {
		return err
	}
	if err := setupEth0(cfg.Addr); err != nil {
		return err
	}
	res.Offloads = offloads("eth0")

	tcpLn, err := net.Listen("tcp4", fmt.Sprintf(":%d", cfg.TCPPort))
	if err != nil {
		return fmt.Errorf("listen tcp: %w", err)
	}
	defer tcpLn.Close()
	udpConn, err := net.ListenUDP("udp4", &net.UDPAddr{Port: cfg.UDPPort})
	if err != nil {
		return fmt.Errorf("listen udp: %w", err)
	}
	defer udpConn.Close()
	// Emulation reads slowly: room for every datagram of a burst.
	_ = setRcvBufForce(udpConn, 8<<20)
	emit("ready", "")

	var wg sync.WaitGroup
	wg.Go(func() { res.TCPRx = tcpServe(tcpLn, cfg.Wait) })
	wg.Go(func() { res.UDPRx, res.UDPBad = udpReceive(udpConn, cfg) })
	wg.Go(func() {
		res.TCPTx = tcpSend(net.JoinHostPort(cfg.Peer, strconv.Itoa(cfg.PeerTCP)), cfg.TCPBytes, cfg.Wait)
	})
	wg.Go(func() {
		var err error
		res.UDPTx, err = udpSend(net.JoinHostPort(cfg.Peer, strconv.Itoa(cfg.PeerUDP)), cfg)
		if err != nil {
			res.UDPTxErr = err.Error()
		}
	})
	wg.Wait()
	res.Counters = counters()
	return nil
}

func parseConfig(cmdline string) (Config, error) {
	cfg := Config{TCPPort: 5201, UDPPort: 5202, PeerTCP: 5301, PeerUDP: 5302,
		TCPBytes: 8 << 20, Datagrams: 500, UDPSize: 1000, Wait: 20 * time.Second}
	for _, f := range strings.Fields(cmdline) {
		key, val, ok := strings.Cut(strings.TrimPrefix(f, "vmguest."), "=")
		if !ok || !strings.HasPrefix(f, "vmguest.") {
			continue
		}
		var err error
		switch key {
		case "addr":
			cfg.Addr = val
		case "peer":
			cfg.Peer = val
		case "tcp_port":
			cfg.TCPPort, err = strconv.Atoi(val)
		case "udp_port":
			cfg.UDPPort, err = strconv.Atoi(val)
		case "peer_tcp":
			cfg.PeerTCP, err = strconv.Atoi(val)
		case "peer_udp":
			cfg.PeerUDP, err = strconv.Atoi(val)
		case "tcp_bytes":
			cfg.TCPBytes, err = strconv.ParseInt(val, 10, 64)
		case "datagrams":
			cfg.Datagrams, err = strconv.Atoi(val)
		case "udp_size":
			cfg.UDPSize, err = strconv.Atoi(val)
		case "wait":
			cfg.Wait, err = time.ParseDuration(val)
		default:
			err = fmt.Errorf("unknown")
		}
		if err != nil {
			return cfg, fmt.Errorf("kernel argument %s: %w", f, err)
		}
	}
	if cfg.Addr == "" || cfg.Peer == "" {
		return cfg, fmt.Errorf("kernel arguments vmguest.addr and vmguest.peer are required")
	}
	if cfg.UDPSize < 8 {
		return cfg, fmt.Errorf("vmguest.udp_size %d: below the 8-byte sequence number", cfg.UDPSize)
	}
	return cfg, nil
}

// setupEth0 waits for virtio-net's eth0 and gives it the address.
func setupEth0(addr string) error {
	for i := 0; ; i++ {
		if _, err := os.Stat("/sys/class/net/eth0"); err == nil {
			break
		}
		if i == 100 {
			return fmt.Errorf("no eth0 after 10 s (virtio_net not loaded?)")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, args := range [][]string{
		{"addr", "add", addr, "dev", "eth0"},
		{"link", "set", "eth0", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	logf("eth0 %s up", addr)
	return nil
}

// offloadFeatures are the ethtool -k features the result reports.
var offloadFeatures = map[string]bool{
	"rx-checksumming": true, "tx-checksumming": true, "scatter-gather": true,
	"tcp-segmentation-offload": true, "generic-segmentation-offload": true,
	"generic-receive-offload": true, "rx-gro-hw": true,
}

// offloads is ethtool -k's on/off (without "[fixed]") for offloadFeatures.
func offloads(dev string) map[string]string {
	out, err := exec.Command("ethtool", "-k", dev).CombinedOutput()
	if err != nil {
		logf("ethtool -k %s: %v: %s", dev, err, out)
		return nil
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if ok && offloadFeatures[k] {
			m[k] = strings.Fields(v)[0]
		}
	}
	return m
}

func setRcvBufForce(c *net.UDPConn, n int) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
	}); err != nil {
		return err
	}
	return serr
}

// tcpServe accepts one connection and reads it to its end.
func tcpServe(ln net.Listener, wait time.Duration) Transfer {
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(wait))
	c, err := ln.Accept()
	if err != nil {
		return Transfer{Err: fmt.Sprintf("accept: %v", err)}
	}
	defer c.Close()
	start := time.Now()
	_ = c.SetDeadline(start.Add(wait))
	h := sha256.New()
	n, err := io.Copy(h, c)
	tr := Transfer{Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil)), Seconds: time.Since(start).Seconds()}
	if err != nil {
		tr.Err = fmt.Sprintf("read: %v", err)
	}
	logf("tcp rx: %d bytes, err %v", n, err)
	return tr
}

// tcpSend connects, sends n pseudo-random bytes and waits for the peer to
// close (it has read everything).
func tcpSend(addr string, n int64, wait time.Duration) Transfer {
	start := time.Now()
	c, err := net.DialTimeout("tcp4", addr, wait/2)
	if err != nil {
		return Transfer{Err: fmt.Sprintf("connect: %v", err)}
	}
	defer c.Close()
	_ = c.SetDeadline(start.Add(wait))
	h := sha256.New()
	src := io.LimitReader(rand.NewChaCha8(seed()), n)
	sent, err := io.Copy(io.MultiWriter(c, h), src)
	tr := Transfer{Bytes: sent, SHA256: hex.EncodeToString(h.Sum(nil))}
	if err == nil {
		err = c.(*net.TCPConn).CloseWrite()
	}
	if err == nil {
		_, err = io.Copy(io.Discard, c)
	}
	tr.Seconds = time.Since(start).Seconds()
	if err != nil {
		tr.Err = fmt.Sprintf("send: %v", err)
	}
	logf("tcp tx: %d bytes, err %v", sent, err)
	return tr
}

func seed() (s [32]byte) {
	binary.LittleEndian.PutUint64(s[:], uint64(time.Now().UnixNano()))
	return s
}

// udpPayload is datagram seq: the sequence number, then bytes derived from it.
func udpPayload(buf []byte, seq uint64) {
	binary.BigEndian.PutUint64(buf, seq)
	for i := 8; i < len(buf); i++ {
		buf[i] = byte(seq*31 + uint64(i))
	}
}

// udpReceive counts intact datagrams until all arrived, none came for
// 3 s after the first, or the wait ends.
func udpReceive(c *net.UDPConn, cfg Config) (got, bad int) {
	seen := map[uint64]bool{}
	buf := make([]byte, 65536)
	want := make([]byte, cfg.UDPSize)
	end := time.Now().Add(cfg.Wait)
	for len(seen) < cfg.Datagrams {
		deadline := end
		if idle := time.Now().Add(3 * time.Second); len(seen) > 0 && idle.Before(end) {
			deadline = idle
		}
		_ = c.SetReadDeadline(deadline)
		n, err := c.Read(buf)
		if err != nil {
			break
		}
		if n != cfg.UDPSize {
			bad++
			continue
		}
		seq := binary.BigEndian.Uint64(buf)
		udpPayload(want, seq)
		if string(buf[:n]) != string(want) {
			bad++
			continue
		}
		seen[seq] = true
	}
	logf("udp rx: %d of %d, %d bad", len(seen), cfg.Datagrams, bad)
	return len(seen), bad
}

// udpSend sends the datagrams paced at one a millisecond, which neither
// side's queues need to absorb.
func udpSend(addr string, cfg Config) (int, error) {
	c, err := net.Dial("udp4", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	buf := make([]byte, cfg.UDPSize)
	sent, errs := 0, 0
	var lastErr error
	for seq := range cfg.Datagrams {
		udpPayload(buf, uint64(seq))
		if _, err := c.Write(buf); err != nil {
			// The first datagram may fail while ARP resolves: count, go on.
			errs++
			lastErr = err
		} else {
			sent++
		}
		time.Sleep(time.Millisecond)
	}
	logf("udp tx: %d sent, %d errors", sent, errs)
	if errs > 0 {
		return sent, fmt.Errorf("%d sends failed, last: %w", errs, lastErr)
	}
	return sent, nil
}

// counters are the Tcp, Udp and IpExt counters of /proc/net/snmp and
// /proc/net/netstat that tell errors and volume, named PROTO.FIELD (e.g.
// Udp.InCsumErrors).
func counters() map[string]int64 {
	m := map[string]int64{}
	for _, file := range []string{"/proc/net/snmp", "/proc/net/netstat"} {
		raw, err := os.ReadFile(file)
		if err != nil {
			logf("%v", err)
			continue
		}
		maps.Copy(m, parseSNMP(string(raw)))
	}
	maps.DeleteFunc(m, func(k string, _ int64) bool {
		for _, part := range []string{"Err", "Csum", "Retrans", "Segs", "Datagrams"} {
			if strings.Contains(k, part) {
				return false
			}
		}
		return true
	})
	return m
}

// parseSNMP reads the pairs of "Proto: names" / "Proto: values" lines.
func parseSNMP(text string) map[string]int64 {
	keep := map[string]bool{"Ip": true, "Tcp": true, "Udp": true, "IpExt": true}
	m := map[string]int64{}
	lines := strings.Split(text, "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || len(names) != len(values) || names[0] != values[0] {
			continue
		}
		proto := strings.TrimSuffix(names[0], ":")
		if !keep[proto] {
			continue
		}
		for j := 1; j < len(names); j++ {
			if v, err := strconv.ParseInt(values[j], 10, 64); err == nil {
				m[proto+"."+names[j]] = v
			}
		}
	}
	return m
}
