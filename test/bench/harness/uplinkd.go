package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/pkg/control"
)

// uplinkdSystem runs the real uplinkd binary inside the host namespace.
type uplinkdSystem struct {
	bin    string
	poll   time.Duration // carrier_poll_interval; 0: the default
	mode   string        // the group's mode; "": the default
	hostNS string
	groups int // in the configuration written
	dir    string
	config string
	cmd    *exec.Cmd
	done   chan struct{}
	out    bytes.Buffer
	client *control.Client

	// hostPorts name the group's host ports: uplinkd makes each a veth
	// pair in the host namespace, the host's end under the name.
	hostPorts []string
}

func newUplinkd(binDir string, poll time.Duration) *uplinkdSystem {
	return &uplinkdSystem{bin: binDir, poll: poll}
}

func (u *uplinkdSystem) Name() string { return "uplinkd" }

func (u *uplinkdSystem) Start(ctx context.Context, hostNS string, guests, uplinks []string, workDir string) error {
	pin, socket, err := u.prepare(hostNS, workDir)
	if err != nil {
		return err
	}
	if err := u.writeConfig(u.configYAML(pin, socket, guests, uplinks), 1); err != nil {
		return err
	}
	_, err = u.start(ctx)
	return err
}

// prepare readies uplinkd to run in namespace hostNS with its files in
// workDir: a bpffs of its own to pin in, and a control socket path.
func (u *uplinkdSystem) prepare(hostNS, workDir string) (pin, socket string, err error) {
	u.hostNS, u.dir = hostNS, workDir
	pin = filepath.Join(workDir, "bpffs")
	if err := os.MkdirAll(pin, 0o700); err != nil {
		return "", "", err
	}
	if err := unix.Mount("bpf", pin, "bpf", 0, "mode=0700"); err != nil {
		return "", "", fmt.Errorf("mount bpffs: %w", err)
	}
	socket = filepath.Join(workDir, "uplinkd.sock")
	u.client = control.NewClient(socket)
	return pin, socket, nil
}

// writeConfig writes uplinkd's configuration, of groups groups.
func (u *uplinkdSystem) writeConfig(yaml string, groups int) error {
	u.config, u.groups = filepath.Join(u.dir, "uplinkd.yaml"), groups
	return os.WriteFile(u.config, []byte(yaml), 0o600)
}

// configYAML is the configuration Start writes: one group over the
// testbed's guests and uplinks, pinned under pin.
func (u *uplinkdSystem) configYAML(pin, socket string, guests, uplinks []string) string {
	var ups strings.Builder
	for i, name := range uplinks {
		fmt.Fprintf(&ups, "      - {name: %s, priority: %d}\n", name, 10*(i+1))
	}
	poll := ""
	if u.poll > 0 {
		poll = fmt.Sprintf("carrier_poll_interval: %s\n", u.poll)
	}
	mode := ""
	if u.mode != "" {
		mode = "    mode: " + u.mode + "\n"
	}
	hostPorts := ""
	if len(u.hostPorts) > 0 {
		names := make([]string, len(u.hostPorts))
		for i, n := range u.hostPorts {
			names[i] = "{name: " + n + "}"
		}
		hostPorts = "    host_ports: [" + strings.Join(names, ", ") + "]\n"
	}
	return fmt.Sprintf(`pin_path: %s/uplinkd
control_socket: %s
%sgroups:
  - name: bench
%s    failback: true
    announce: {count: 3, interval: 100ms}
    guest_ports: [%s]
%s    uplinks:
%s`, pin, socket, poll, mode, strings.Join(guests, ", "), hostPorts, ups.String())
}

// readyLimit bounds how long uplinkd may take to serve: a start over
// the idle scenario's hundreds of ports takes seconds.
const readyLimit = 60 * time.Second

// start starts uplinkd on the written configuration and waits until its
// control socket answers with every group, each with an active uplink.
// It returns how long that took.
func (u *uplinkdSystem) start(ctx context.Context) (time.Duration, error) {
	u.out.Reset()
	u.cmd = u.inHostNS("-config", u.config)
	u.cmd.Stdout, u.cmd.Stderr = &u.out, &u.out
	start := time.Now()
	if err := u.cmd.Start(); err != nil {
		u.cmd = nil
		return 0, fmt.Errorf("start uplinkd: %w", err)
	}
	u.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(u.cmd, u.done)
	const poll = 5 * time.Millisecond
	for range int(readyLimit / poll) {
		if st, err := u.client.Status(); err == nil && len(st.Groups) == u.groups &&
			!slices.ContainsFunc(st.Groups, func(g control.GroupStatus) bool { return g.Active == "" }) {
			return time.Since(start), nil
		}
		select {
		case <-u.done:
			return 0, fmt.Errorf("uplinkd exited: %s", u.out.String())
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(poll):
		}
	}
	return 0, fmt.Errorf("uplinkd not ready in %s: %s", readyLimit, u.out.String())
}

// inHostNS is uplinkd with args, to run in the testbed's host namespace.
func (u *uplinkdSystem) inHostNS(args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", u.hostNS, filepath.Join(u.bin, "uplinkd")}, args...)...)
}

func (u *uplinkdSystem) Active(ctx context.Context) (string, error) {
	st, err := u.client.Status()
	if err != nil {
		return "", err
	}
	return st.Groups[0].Active, nil
}

// Quiet reports whether the daemon has finished announcing: a trial that
// starts while the last failback's announcements still drain the rate cap
// would measure that, not its own failover.
func (u *uplinkdSystem) Quiet(ctx context.Context) (bool, error) {
	st, err := u.client.Status()
	if err != nil {
		return false, err
	}
	return !st.Groups[0].Announcing, nil
}

// SwitchTimes are the daemon's own timestamps of its recent switches.
func (u *uplinkdSystem) SwitchTimes(ctx context.Context) ([]time.Time, error) {
	st, err := u.client.Status()
	if err != nil {
		return nil, err
	}
	var out []time.Time
	for _, ev := range st.Groups[0].Recent {
		out = append(out, ev.Switched)
	}
	return out, nil
}

// LastSwitchBy says what made the daemon's last switch (its event source).
func (u *uplinkdSystem) LastSwitchBy() string {
	st, err := u.client.Status()
	if err != nil || len(st.Groups[0].Recent) == 0 {
		return ""
	}
	recent := st.Groups[0].Recent
	return recent[len(recent)-1].Source
}

// Restart stops uplinkd the way an upgrade does (SIGTERM: the data plane
// stays attached and forwarding) and starts the binary in bin over it,
// which adopts the pinned maps and swaps the programs in place. It
// returns how long no uplinkd ran.
func (u *uplinkdSystem) Restart(ctx context.Context, bin string) (time.Duration, error) {
	if u.cmd == nil || u.cmd.Process == nil {
		return 0, fmt.Errorf("uplinkd is not running")
	}
	start := time.Now()
	if err := u.stopProcess(); err != nil {
		return 0, err
	}
	if bin != "" {
		u.bin = bin
	}
	_, err := u.start(ctx)
	return time.Since(start), err
}

// stopProcess ends the uplinkd process as a service stop does (SIGTERM;
// SIGKILL after 5 s) and leaves its data plane attached.
func (u *uplinkdSystem) stopProcess() error {
	if u.cmd == nil || u.cmd.Process == nil {
		return nil
	}
	defer func() { u.cmd = nil }()
	_ = u.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-u.done:
		return nil
	case <-time.After(5 * time.Second):
		_ = u.cmd.Process.Kill()
		<-u.done
		return fmt.Errorf("uplinkd took over 5 s to stop on SIGTERM; killed")
	}
}

// Stop ends uplinkd and takes down the data plane it leaves attached:
// also when a restart left no process running. -cleanup runs in the
// testbed's namespace: on a kernel without tcx it removes clsact filters
// from every interface of the namespace it runs in.
func (u *uplinkdSystem) Stop() error {
	_ = u.stopProcess()
	if u.config != "" {
		_ = u.inHostNS("-config", u.config, "-cleanup").Run()
	}
	if u.dir != "" {
		_ = unix.Unmount(filepath.Join(u.dir, "bpffs"), unix.MNT_DETACH)
	}
	return nil
}

func (u *uplinkdSystem) Versions() map[string]string {
	out, err := exec.Command(filepath.Join(u.bin, "uplinkd"), "-version").Output()
	if err != nil {
		return map[string]string{"uplinkd": "unknown"}
	}
	return map[string]string{"uplinkd": strings.TrimSpace(strings.TrimPrefix(string(out), "uplinkd "))}
}

// SetActive is a planned switch (uplinkctl set-active); "" returns to
// automatic selection, which fails back to the best uplink.
func (u *uplinkdSystem) SetActive(ctx context.Context, uplink string) error {
	if uplink == "" {
		_, err := u.client.ClearManual("bench")
		return err
	}
	_, err := u.client.SetActive("bench", uplink)
	return err
}
