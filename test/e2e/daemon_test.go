package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/pkg/control"
)

// daemon is an uplinkd the test runs inside a namespace (ip netns exec
// gives it that namespace's /sys), with its own bpffs, configuration and
// control socket. It is stopped by its PID and its pins removed when the
// test ends.
type daemon struct {
	t      *testing.T
	ns     string
	bin    string
	config string
	socket string
	cmd    *exec.Cmd
	done   chan struct{}
	logs   *bytes.Buffer
	client *control.Client
	// wrap runs before uplinkd inside the namespace (e.g. setpriv to
	// drop capabilities); env is added to its environment.
	wrap []string
	env  []string
}

// newDaemon prepares uplinkd for namespace ns; groups is the YAML of its
// `groups:` key. Start it with start.
func newDaemon(t *testing.T, ns, groups string) *daemon {
	t.Helper()
	dir := t.TempDir()
	pin := filepath.Join(dir, "bpffs")
	if err := os.Mkdir(pin, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("bpf", pin, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	d := &daemon{t: t, ns: ns, bin: binaries(t), config: filepath.Join(dir, "uplinkd.yaml"),
		socket: filepath.Join(dir, "run", "uplinkd.sock"), logs: &bytes.Buffer{}} // run/: uplinkd creates it
	d.client = control.NewClient(d.socket)
	cfg := "pin_path: " + pin + "/uplinkd\ncontrol_socket: " + d.socket + "\nlog_level: debug\ngroups:\n" + groups
	if err := os.WriteFile(d.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.stop(syscall.SIGTERM)
		// uplinkd leaves its data plane attached: remove it.
		_ = exec.Command(d.bin+"/uplinkd", "-config", d.config, "-cleanup").Run()
		_ = unix.Unmount(pin, unix.MNT_DETACH)
	})
	return d
}

// start runs uplinkd and waits until its control socket answers.
func (d *daemon) start() {
	d.t.Helper()
	if err := d.tryStart(); err != nil {
		d.t.Fatal(err)
	}
}

// tryStart is start that reports a daemon that does not come up.
func (d *daemon) tryStart() error {
	d.t.Helper()
	args := append([]string{"netns", "exec", d.ns}, d.wrap...)
	cmd := exec.Command("ip", append(args, d.bin+"/uplinkd", "-config", d.config)...)
	cmd.Stdout, cmd.Stderr = d.logs, d.logs
	cmd.Env = append(os.Environ(), d.env...)
	if err := cmd.Start(); err != nil {
		return err
	}
	d.cmd, d.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(d.done)
	for range 200 {
		if _, err := d.client.Status(); err == nil {
			return nil
		}
		select {
		case <-d.done:
			return fmt.Errorf("uplinkd exited at start:\n%s", d.logs)
		case <-time.After(25 * time.Millisecond):
		}
	}
	return fmt.Errorf("uplinkd did not answer in 5 s:\n%s", d.logs)
}

// stop signals the uplinkd this test started (by its PID) and waits.
func (d *daemon) stop(sig syscall.Signal) {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
	d.cmd = nil
}

// group is the status of the daemon's first (only) group.
func (d *daemon) group() control.GroupStatus {
	d.t.Helper()
	st, err := d.client.Status()
	if err != nil {
		d.t.Fatalf("status: %v\n%s", err, d.logs)
	}
	return st.Groups[0]
}
