package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/uplinkd/uplinkd/test/testenv"
)

// The VM's side of the exchange (test/vmguest) and the upstream host's.
const (
	vmTap        = "ulkh6tap0" // the VM's guest port in H
	vmBridge     = "ulkh6br0"  // the control's Linux bridge in H
	vmMAC        = "52:54:00:6b:68:36"
	vmAddr       = "10.77.0.50"
	upstreamAddr = "10.77.0.1" // br0 in U (the lab's gateway)
	vmTCPPort    = 5201        // the VM's TCP server
	vmUDPPort    = 5202        // the VM's UDP receiver
	upTCPPort    = 5301        // the upstream host's TCP server
	upUDPPort    = 5302        // the upstream host's UDP receiver
	vmTCPBytes   = 8 << 20     // per connection: enough for GSO frames
	vmDatagrams  = 500         // per direction
	vmUDPSize    = 1000
	// vmWait bounds each exchange in the VM and on the host.
	vmWait = 20 * time.Second
)

// vmResult is test/vmguest's Result.
type vmResult struct {
	Offloads map[string]string `json:"offloads"`
	TCPRx    vmTransfer        `json:"tcp_rx"`
	TCPTx    vmTransfer        `json:"tcp_tx"`
	UDPRx    int               `json:"udp_rx"`
	UDPBad   int               `json:"udp_bad"`
	UDPTx    int               `json:"udp_tx"`
	UDPTxErr string            `json:"udp_tx_err"`
	Counters map[string]int64  `json:"counters"`
	Error    string            `json:"error"`
}

type vmTransfer struct {
	Bytes   int64   `json:"bytes"`
	SHA256  string  `json:"sha256"`
	Seconds float64 `json:"seconds"`
	Err     string  `json:"err"`
}

// TestVMTraffic boots a real VM: QEMU (software emulation) with virtio-net
// on a tap that is a guest port, Debian 12's 6.1 cloud kernel, the VM's
// default offloads (vnet_hdr, checksum offload and GSO on). TCP and UDP go
// both ways between the VM and the upstream host in U. The bridge cases
// are the control: a Linux bridge in H in place of uplinkd, same VM, same
// tap. The image comes from scripts/test-kernels.sh vm-image.
func TestVMTraffic(t *testing.T) {
	requireRoot(t)
	img := vmImage(t)
	for _, sw := range []string{"bridge", "uplinkd"} {
		for _, vhost := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/vhost=%s", sw, vmOnOff(vhost)), func(t *testing.T) {
				if vhost {
					if _, err := os.Stat("/dev/vhost-net"); err != nil {
						t.Skipf("vhost on needs /dev/vhost-net (module vhost_net): %v", err)
					}
				}
				runVMCase(t, img, sw, vhost)
			})
		}
	}
}

func vmOnOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// vmImage builds the kernel and initramfs once for the test's cases.
func vmImage(t *testing.T) string {
	t.Helper()
	if k := os.Getenv("UPLINKD_TEST_KERNEL"); k != "" {
		t.Skipf("runs on the host only: this is the test-kernels VM (%s), which has no qemu to nest", k)
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 is not installed (scripts/deps.sh installs qemu-system-x86)")
	}
	dir := t.TempDir()
	start := time.Now()
	out, err := exec.Command("../../scripts/test-kernels.sh", "vm-image", dir).CombinedOutput()
	if err != nil {
		// Without the network or a Debian package source there is no kernel.
		if bytes.Contains(out, []byte("cannot resolve")) || bytes.Contains(out, []byte("apt-get download")) {
			t.Skipf("Debian's kernel package cannot be had: %s", out)
		}
		t.Fatalf("scripts/test-kernels.sh vm-image: %v\n%s", err, out)
	}
	kernel, _ := os.ReadFile(filepath.Join(dir, "kernel"))
	t.Logf("VM image: kernel %s, built in %s", strings.TrimSpace(string(kernel)), time.Since(start).Round(time.Millisecond))
	return dir
}

func runVMCase(t *testing.T, img, sw string, vhost bool) {
	l := newLab(t, labOptions{guestPorts: "[vnet0, vnet1, " + vmTap + "]"})
	// A tap as libvirt makes it: persistent, one queue, virtio-net headers.
	if out, err := exec.Command("ip", "-n", l.nsName("H"), "tuntap", "add", "dev", vmTap, "mode", "tap", "vnet_hdr").CombinedOutput(); err != nil {
		t.Fatalf("ip tuntap add: %v: %s", err, out)
	}
	l.in("H", func() { l.setUp(vmTap) })
	switch sw {
	case "uplinkd":
		l.startDaemon()
	case "bridge":
		l.in("H", func() {
			l.check(netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: vmBridge}}))
			br, err := netlink.LinkByName(vmBridge)
			l.check(err)
			for _, port := range []string{vmTap, "up0"} {
				p, err := netlink.LinkByName(port)
				l.check(err)
				l.check(netlink.LinkSetMaster(p, br))
			}
			l.check(netlink.LinkSetUp(br))
		})
	default:
		t.Fatalf("unknown switch %q", sw)
	}

	up := vmStartUpstream(t, l)
	vm := vmStart(t, l.nsName("H"), img, vhost)
	ready, err := vm.waitLine("ready", 90*time.Second)
	if err != nil {
		t.Fatalf("the VM did not come up: %v\n%s", err, vm.tails())
	}
	t.Logf("VM ready %s after qemu started", ready.Sub(vm.started).Round(time.Millisecond))
	// qemu sets the tap's offloads from what the VM's driver negotiated.
	tapOffloads := vmTapOffloads(l.nsName("H"))

	// Upstream → VM, while the VM sends its own.
	var wg sync.WaitGroup
	var hostTx vmTransfer
	var hostUDPSent int
	var hostUDPErr error
	wg.Go(func() { hostTx = vmHostTCPSend(l.ns["U"], net.JoinHostPort(vmAddr, strconv.Itoa(vmTCPPort))) })
	wg.Go(func() {
		hostUDPSent, hostUDPErr = vmHostUDPSend(l.ns["U"], net.JoinHostPort(vmAddr, strconv.Itoa(vmUDPPort)))
	})

	var res vmResult
	line, err := vm.result(2*vmWait + 10*time.Second)
	if err == nil {
		err = json.Unmarshal([]byte(line), &res)
	}
	wg.Wait()
	hostRx, hostUDPRx, hostUDPBad := up.finish()
	hostCounters := l.vmSNMP("U")
	vm.stop()
	t.Logf("VM done %s after qemu started", time.Since(vm.started).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("no result from the VM: %v\n%s", err, vm.tails())
	}
	if res.Error != "" {
		t.Fatalf("the VM's agent: %s\n%s", res.Error, vm.tails())
	}

	t.Logf("VM offloads: tx %s, tso %s, gso %s, rx %s; tap in H: %s", res.Offloads["tx-checksumming"],
		res.Offloads["tcp-segmentation-offload"], res.Offloads["generic-segmentation-offload"],
		res.Offloads["rx-checksumming"], tapOffloads)
	for _, f := range []string{"tx-checksumming", "tcp-segmentation-offload", "generic-segmentation-offload"} {
		if res.Offloads[f] != "on" {
			t.Errorf("the VM's eth0 has %s %q: the test wants virtio-net's default offloads (on)", f, res.Offloads[f])
		}
	}
	t.Logf("FIGURES vm %s vhost=%s: upstream→VM TCP %s, VM→upstream TCP %s (retransmitted segments: VM %d, upstream %d); UDP upstream→VM %d/%d, VM→upstream %d/%d",
		sw, vmOnOff(vhost), vmMbits(hostTx), vmMbits(res.TCPTx), res.Counters["Tcp.RetransSegs"], hostCounters["Tcp.RetransSegs"],
		res.UDPRx, vmDatagrams, hostUDPRx, vmDatagrams)

	vmCheckTransfer(t, "upstream → VM", hostTx, res.TCPRx)
	vmCheckTransfer(t, "VM → upstream", res.TCPTx, hostRx)
	// Paced UDP on a quiet path arrives whole; 1% covers a stall of the
	// emulated CPU (the receivers' buffers hold every datagram).
	minUDP := vmDatagrams * 99 / 100
	if hostUDPErr != nil || res.UDPRx < minUDP || res.UDPBad > 0 {
		t.Errorf("UDP upstream → VM: %d of %d sent arrived intact (want ≥ %d), %d corrupt; send error: %v",
			res.UDPRx, hostUDPSent, minUDP, res.UDPBad, hostUDPErr)
	}
	if res.UDPTxErr != "" || hostUDPRx < minUDP || hostUDPBad > 0 {
		t.Errorf("UDP VM → upstream: %d of %d sent arrived intact (want ≥ %d), %d corrupt; send error: %s",
			hostUDPRx, res.UDPTx, minUDP, hostUDPBad, vmErrText(res.UDPTxErr))
	}
	for _, side := range []struct {
		name string
		c    map[string]int64
	}{{"the VM", res.Counters}, {"the upstream host", hostCounters}} {
		for _, k := range []string{"Udp.InCsumErrors", "Tcp.InCsumErrors", "IpExt.InCsumErrors"} {
			v, ok := side.c[k]
			if !ok {
				t.Errorf("%s: no counter %s", side.name, k)
			} else if v != 0 {
				t.Errorf("%s counted %s = %d: checksums broken on the way", side.name, k, v)
			}
		}
	}
	if t.Failed() {
		t.Logf("the VM's console:\n%s", vm.tails())
		if sw == "uplinkd" {
			t.Logf("uplinkd's log (tail):\n%s", vmTail(l.d.logs.String(), 30))
		}
	}
}

// vmCheckTransfer compares what one end sent with what the other received.
func vmCheckTransfer(t *testing.T, dir string, sent, got vmTransfer) {
	t.Helper()
	switch {
	case sent.Err != "" || got.Err != "":
		t.Errorf("TCP %s: sender: %d bytes, %s; receiver: %d bytes, %s", dir, sent.Bytes, vmErrText(sent.Err), got.Bytes, vmErrText(got.Err))
	case sent.Bytes != vmTCPBytes || got.Bytes != sent.Bytes:
		t.Errorf("TCP %s: sent %d bytes, received %d, want %d", dir, sent.Bytes, got.Bytes, vmTCPBytes)
	case got.SHA256 != sent.SHA256:
		t.Errorf("TCP %s: the %d bytes received are not those sent (sha256 %s, sent %s)", dir, got.Bytes, got.SHA256, sent.SHA256)
	}
}

func vmErrText(s string) string {
	if s == "" {
		return "no error"
	}
	return s
}

func vmMbits(tr vmTransfer) string {
	if tr.Err != "" || tr.Seconds <= 0 {
		return "failed"
	}
	return fmt.Sprintf("%.0f Mbit/s", float64(tr.Bytes)*8/tr.Seconds/1e6)
}

func vmTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// vmTapOffloads is the tap's tx/tso/gso in ethtool -k (set by qemu from
// what the VM's driver negotiated).
func vmTapOffloads(ns string) string {
	out, err := exec.Command("ip", "netns", "exec", ns, "ethtool", "-k", vmTap).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("ethtool: %v", err)
	}
	var parts []string
	for line := range strings.SplitSeq(string(out), "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ": ")
		switch k {
		case "tx-checksumming", "rx-checksumming", "tcp-segmentation-offload", "generic-segmentation-offload":
			parts = append(parts, k+" "+strings.Fields(v)[0])
		}
	}
	return strings.Join(parts, ", ")
}

// snmp reads the role's Ip, Tcp, Udp and IpExt counters. thread-self: a
// thread's namespace, where /proc/self/net is the process leader's.
func (l *lab) vmSNMP(role string) map[string]int64 {
	m := map[string]int64{}
	l.in(role, func() {
		for _, f := range []string{"/proc/thread-self/net/snmp", "/proc/thread-self/net/netstat"} {
			raw, err := os.ReadFile(f)
			l.check(err)
			for k, v := range vmParseSNMP(string(raw)) {
				m[k] = v
			}
		}
	})
	return m
}

// vmParseSNMP reads the pairs of "Proto: names" / "Proto: values" lines.
func vmParseSNMP(text string) map[string]int64 {
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

// --- the VM -------------------------------------------------------------------

// qemuVM is one qemu the test started (in H), killed by its PID at the end.
type qemuVM struct {
	t       *testing.T
	cmd     *exec.Cmd
	done    chan struct{}
	dir     string // console.log (ttyS0), results.log (ttyS1), qemu.log
	started time.Time
}

func vmStart(t *testing.T, ns, img string, vhost bool) *qemuVM {
	t.Helper()
	dir := t.TempDir()
	args := []string{
		"console=ttyS0", "loglevel=5", "panic=-1",
		"vmguest.addr=" + vmAddr + "/24", "vmguest.peer=" + upstreamAddr,
		fmt.Sprintf("vmguest.tcp_port=%d", vmTCPPort), fmt.Sprintf("vmguest.udp_port=%d", vmUDPPort),
		fmt.Sprintf("vmguest.peer_tcp=%d", upTCPPort), fmt.Sprintf("vmguest.peer_udp=%d", upUDPPort),
		fmt.Sprintf("vmguest.tcp_bytes=%d", vmTCPBytes), fmt.Sprintf("vmguest.datagrams=%d", vmDatagrams),
		fmt.Sprintf("vmguest.udp_size=%d", vmUDPSize), "vmguest.wait=" + vmWait.String(),
	}
	qemu := []string{"netns", "exec", ns, "qemu-system-x86_64",
		"-accel", "tcg", "-cpu", "max", "-m", "512M", "-smp", "1",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-kernel", filepath.Join(img, "vmlinuz"), "-initrd", filepath.Join(img, "initrd.cpio"),
		"-append", strings.Join(args, " "),
		"-serial", "file:" + filepath.Join(dir, "console.log"),
		"-serial", "file:" + filepath.Join(dir, "results.log"),
		// vnet_hdr=on: fail rather than run without virtio-net headers.
		"-netdev", fmt.Sprintf("tap,id=n0,ifname=%s,script=no,downscript=no,vnet_hdr=on,vhost=%s", vmTap, vmOnOff(vhost)),
		"-device", "virtio-net-pci,netdev=n0,mac=" + vmMAC,
	}
	log, err := os.Create(filepath.Join(dir, "qemu.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command("ip", qemu...) // ip netns exec execs qemu: the PID is qemu's
	cmd.Stdout, cmd.Stderr = log, log
	vm := &qemuVM{t: t, cmd: cmd, done: make(chan struct{}), dir: dir, started: time.Now()}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start qemu: %v", err)
	}
	go func() { _ = cmd.Wait(); close(vm.done) }()
	t.Cleanup(vm.stop)
	return vm
}

// stop kills qemu by its PID unless the VM powered itself off.
func (vm *qemuVM) stop() {
	select {
	case <-vm.done:
		return
	case <-time.After(5 * time.Second): // the agent is done: poweroff is near
	}
	_ = vm.cmd.Process.Kill()
	<-vm.done
}

// waitLine waits for "@@vmguest KIND ..." on the results port and returns
// when it was seen.
func (vm *qemuVM) waitLine(kind string, d time.Duration) (time.Time, error) {
	_, err := vm.find(kind, d)
	return time.Now(), err
}

// result waits for the agent's result line and returns its JSON.
func (vm *qemuVM) result(d time.Duration) (string, error) { return vm.find("result", d) }

func (vm *qemuVM) find(kind string, d time.Duration) (string, error) {
	prefix := "@@vmguest " + kind
	deadline := time.Now().Add(d)
	for {
		raw, _ := os.ReadFile(filepath.Join(vm.dir, "results.log"))
		// Only whole lines: the serial port writes the result byte by byte.
		raw = raw[:bytes.LastIndexByte(raw, '\n')+1]
		sc := bufio.NewScanner(bytes.NewReader(raw))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				return strings.TrimSpace(rest), nil
			}
		}
		select {
		case <-vm.done:
			return "", fmt.Errorf("qemu exited before %q", prefix)
		default:
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no %q in %s", prefix, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tails is the end of the VM's console, results port and qemu's output.
func (vm *qemuVM) tails() string {
	var b strings.Builder
	for _, f := range []string{"qemu.log", "console.log", "results.log"} {
		raw, _ := os.ReadFile(filepath.Join(vm.dir, f))
		lines := strings.Split(vmTail(string(raw), 25), "\n")
		for i, line := range lines {
			if len(line) > 300 { // the result, reported on its own
				lines[i] = line[:300] + "..."
			}
		}
		fmt.Fprintf(&b, "--- %s (tail)\n%s\n", f, strings.Join(lines, "\n"))
	}
	return b.String()
}

// --- the upstream host (ns U) ---------------------------------------------------

// vmUpstream is the host's TCP server and UDP receiver on br0 in U.
type vmUpstream struct {
	tcp    net.Listener
	udp    *net.UDPConn
	wg     sync.WaitGroup
	rx     vmTransfer
	udpRx  int
	udpBad int
}

func vmStartUpstream(t *testing.T, l *lab) *vmUpstream {
	t.Helper()
	u := &vmUpstream{}
	l.in("U", func() {
		var err error
		u.tcp, err = net.Listen("tcp4", net.JoinHostPort(upstreamAddr, strconv.Itoa(upTCPPort)))
		l.check(err)
		u.udp, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(upstreamAddr), Port: upUDPPort})
		l.check(err)
	})
	t.Cleanup(func() { u.tcp.Close(); u.udp.Close() })
	_ = u.udp.SetReadBuffer(8 << 20)
	u.wg.Go(func() {
		_ = u.tcp.(*net.TCPListener).SetDeadline(time.Now().Add(90*time.Second + vmWait))
		c, err := u.tcp.Accept()
		if err != nil {
			u.rx.Err = fmt.Sprintf("accept: %v", err)
			return
		}
		u.rx = vmReadAll(c)
	})
	u.wg.Go(func() { u.udpRx, u.udpBad = vmReceiveDatagrams(u.udp) })
	return u
}

// finish stops the receivers (the VM has reported: what it sent is here)
// and returns what they got.
func (u *vmUpstream) finish() (vmTransfer, int, int) {
	time.Sleep(500 * time.Millisecond) // datagrams still in flight
	_ = u.tcp.Close()
	_ = u.udp.SetReadDeadline(time.Now())
	u.wg.Wait()
	return u.rx, u.udpRx, u.udpBad
}

func vmReadAll(c net.Conn) vmTransfer {
	defer c.Close()
	start := time.Now()
	_ = c.SetDeadline(start.Add(vmWait))
	h := sha256.New()
	n, err := io.Copy(h, c)
	tr := vmTransfer{Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil)), Seconds: time.Since(start).Seconds()}
	if err != nil {
		tr.Err = fmt.Sprintf("read: %v", err)
	}
	return tr
}

// vmReceiveDatagrams counts intact datagrams (test/vmguest's format: a
// sequence number, then bytes derived from it) until its deadline is set.
func vmReceiveDatagrams(c *net.UDPConn) (got, bad int) {
	seen := map[uint64]bool{}
	buf := make([]byte, 65536)
	want := make([]byte, vmUDPSize)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return len(seen), bad
		}
		seq := binary.BigEndian.Uint64(buf)
		vmUDPPayload(want, seq)
		if n != vmUDPSize || !bytes.Equal(buf[:n], want) {
			bad++
			continue
		}
		seen[seq] = true
	}
}

// vmUDPPayload is test/vmguest's datagram seq.
func vmUDPPayload(buf []byte, seq uint64) {
	binary.BigEndian.PutUint64(buf, seq)
	for i := 8; i < len(buf); i++ {
		buf[i] = byte(seq*31 + uint64(i))
	}
}

// vmDialIn connects from inside ns: the socket is made on a thread of its
// own, never returned to the pool.
func vmDialIn(ns netns.NsHandle, network, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := testenv.Go(ns, func() (err error) {
		c, err = net.DialTimeout(network, addr, timeout)
		return err
	})
	return c, err
}

// vmHostTCPSend sends vmTCPBytes pseudo-random bytes to the VM and waits for
// it to close (it has read everything).
func vmHostTCPSend(ns netns.NsHandle, addr string) vmTransfer {
	start := time.Now()
	c, err := vmDialIn(ns, "tcp4", addr, vmWait/2)
	if err != nil {
		return vmTransfer{Err: fmt.Sprintf("connect: %v", err)}
	}
	defer c.Close()
	_ = c.SetDeadline(start.Add(vmWait))
	h := sha256.New()
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(time.Now().UnixNano()))
	sent, err := io.Copy(io.MultiWriter(c, h), io.LimitReader(rand.NewChaCha8(seed), vmTCPBytes))
	if err == nil {
		err = c.(*net.TCPConn).CloseWrite()
	}
	if err == nil {
		_, err = io.Copy(io.Discard, c)
	}
	tr := vmTransfer{Bytes: sent, SHA256: hex.EncodeToString(h.Sum(nil)), Seconds: time.Since(start).Seconds()}
	if err != nil {
		tr.Err = fmt.Sprintf("send: %v", err)
	}
	return tr
}

// vmHostUDPSend sends vmDatagrams to the VM, one a millisecond.
func vmHostUDPSend(ns netns.NsHandle, addr string) (int, error) {
	c, err := vmDialIn(ns, "udp4", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	buf := make([]byte, vmUDPSize)
	sent, errs := 0, 0
	var last error
	for seq := range vmDatagrams {
		vmUDPPayload(buf, uint64(seq))
		if _, err := c.Write(buf); err != nil {
			errs++ // e.g. while ARP resolves: go on
			last = err
		} else {
			sent++
		}
		time.Sleep(time.Millisecond)
	}
	if errs > 0 {
		return sent, fmt.Errorf("%d sends failed, last: %w", errs, last)
	}
	return sent, nil
}
