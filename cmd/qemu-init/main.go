// Command qemu-init is /init of the initramfs that scripts/test-kernels.sh
// boots under qemu to run the compiled test binaries on another kernel.
//
// As PID 1 it mounts the pseudo file systems, loads the listed modules,
// brings lo up, starts itself again as the runner and reaps every orphan
// until the runner is done, then powers the machine off. The runner starts
// the test binaries one after another and frames their output on the results
// port (a second serial line) so the host can tell them apart and read their
// exit codes. A separate runner keeps PID 1's reaping from stealing exit
// statuses that os/exec waits for.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	manifestPath = "/etc/uplinkd-test/manifest.json"
	// marker starts every line the host parses; test output never does.
	marker = "@@uplinkd-qemu"
	// grace is how long a binary may outlive its own -test.timeout.
	grace = 60 * time.Second
)

// Manifest is written by scripts/test-kernels.sh into the initramfs.
type Manifest struct {
	Results string   `json:"results"` // device the framed output goes to
	Modules []string `json:"modules"` // .ko files in load order
	Env     []string `json:"env"`     // added to every test's environment
	Tests   []Test   `json:"tests"`
}

// Test is one compiled test binary.
type Test struct {
	Name    string   `json:"name"` // e.g. ./pkg/datapath
	Bin     string   `json:"bin"`
	Dir     string   `json:"dir"` // working directory (the package's copy)
	Args    []string `json:"args"`
	Timeout int      `json:"timeout_seconds"` // hard limit, 0 = none
}

func main() {
	if len(os.Args) == 2 && os.Args[1] == "-runner" {
		os.Exit(runner())
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "qemu-init: this is the /init of the test-kernels VM (scripts/test-kernels.sh), not a host command")
		os.Exit(2)
	}
	pid1()
}

func pid1() {
	defer powerOff()
	m, err := setup()
	if err != nil {
		// Without the manifest there is no results port: say it on the console.
		fmt.Fprintf(os.Stderr, "%s setup-error %v\n", marker, err)
		report(m, fmt.Sprintf("%s setup-error %v\n", marker, err))
		return
	}
	cmd := exec.Command("/init", "-runner")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		report(m, fmt.Sprintf("%s setup-error start runner: %v\n", marker, err))
		return
	}
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid == cmd.Process.Pid {
			if err != nil || !ws.Exited() || ws.ExitStatus() != 0 {
				report(m, fmt.Sprintf("%s setup-error runner ended: %v %v\n", marker, err, ws))
			}
			return
		}
	}
}

// setup prepares the machine and returns the manifest.
func setup() (*Manifest, error) {
	mounts := []struct {
		fstype, target string
		flags          uintptr
		data           string
		optional       bool
	}{
		{"proc", "/proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", false},
		{"sysfs", "/sys", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", false},
		{"devtmpfs", "/dev", unix.MS_NOSUID, "mode=0755", false},
		{"tmpfs", "/tmp", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777", false},
		{"tmpfs", "/run", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755", false},
		{"bpf", "/sys/fs/bpf", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "mode=0700", false},
		{"cgroup2", "/sys/fs/cgroup", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", true},
		{"tracefs", "/sys/kernel/tracing", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", true},
		{"debugfs", "/sys/kernel/debug", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", true},
	}
	var soft []string
	for _, mt := range mounts {
		if err := os.MkdirAll(mt.target, 0o755); err != nil && !mt.optional {
			return nil, fmt.Errorf("mkdir %s: %w", mt.target, err)
		}
		if err := unix.Mount(mt.fstype, mt.target, mt.fstype, mt.flags, mt.data); err != nil {
			if !mt.optional {
				return nil, fmt.Errorf("mount %s on %s: %w", mt.fstype, mt.target, err)
			}
			soft = append(soft, fmt.Sprintf("mount %s: %v", mt.target, err))
		}
	}
	// ip netns (the e2e tests use it) keeps its namespace mounts here.
	if err := os.MkdirAll("/run/netns", 0o755); err != nil {
		return nil, fmt.Errorf("mkdir /run/netns: %w", err)
	}
	raw, err := os.ReadFile(manifestPath)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("parse %s: %w", manifestPath, err)
	}
	for _, ko := range m.Modules {
		if err := loadModule(ko); err != nil {
			return &m, err
		}
	}
	if err := linkUp("lo"); err != nil {
		return &m, fmt.Errorf("bring lo up: %w", err)
	}
	for _, s := range soft {
		fmt.Fprintf(os.Stderr, "qemu-init: %s (not needed by the tests so far)\n", s)
	}
	return &m, nil
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("module %s: %w", path, err)
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("load module %s: %w", filepath.Base(path), err)
	}
	return nil
}

func linkUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// runner runs every test and returns 0 when it could run them all (the
// tests' own results travel in the framed output, not in this code).
func runner() int {
	raw, err := os.ReadFile(manifestPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "qemu-init runner:", err)
		return 1
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		fmt.Fprintln(os.Stderr, "qemu-init runner:", err)
		return 1
	}
	out, err := openResults(m.Results)
	if err != nil {
		fmt.Fprintln(os.Stderr, "qemu-init runner:", err)
		return 1
	}
	defer out.Close()
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	release := unix.ByteSliceToString(uts.Release[:])
	env := append([]string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root",
		"TMPDIR=/tmp",
		"UPLINKD_TEST_KERNEL=" + kernelTag(release),
	}, m.Env...)
	fmt.Fprintf(out, "%s kernel %s cpus=%d\n", marker, release, cpus())
	failed := 0
	for _, t := range m.Tests {
		if runTest(out, t, env) != 0 {
			failed++
		}
	}
	fmt.Fprintf(out, "%s done failed=%d\n", marker, failed)
	return 0
}

// kernelTag is what UPLINKD_TEST_KERNEL says: "6.1-qemu" for 6.1.0-56-cloud-amd64.
func kernelTag(release string) string {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return release + "-qemu"
	}
	minor := parts[1]
	if i := strings.IndexFunc(minor, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minor = minor[:i]
	}
	return parts[0] + "." + minor + "-qemu"
}

func cpus() int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return 0
	}
	return set.Count()
}

// openResults opens the results port raw, so "\n" stays "\n".
func openResults(dev string) (*os.File, error) {
	f, err := os.OpenFile(dev, os.O_WRONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("open results port: %w", err)
	}
	if t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
		t.Oflag &^= unix.OPOST
		_ = unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, t)
	}
	return f, nil
}

// runTest runs one binary, framed by begin/end lines, and returns its exit code.
func runTest(out *os.File, t Test, env []string) int {
	fmt.Fprintf(out, "%s begin %s\n", marker, t.Name)
	start := time.Now()
	cmd := exec.Command(t.Bin, t.Args...)
	cmd.Dir = t.Dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group: whatever it leaves behind is killed with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	code := 0
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(out, "qemu-init: start %s: %v\n", t.Bin, err)
		code = 127
	} else {
		var timer *time.Timer
		if t.Timeout > 0 {
			timer = time.AfterFunc(time.Duration(t.Timeout)*time.Second+grace, func() {
				fmt.Fprintf(out, "qemu-init: %s still running after its timeout: killed\n", t.Name)
				_ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
			})
		}
		err := cmd.Wait()
		if timer != nil {
			timer.Stop()
		}
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee) && ee.Exited():
			code = ee.ExitCode()
		default:
			fmt.Fprintf(out, "qemu-init: %s: %v\n", t.Name, err)
			code = 128
		}
		_ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
	}
	fmt.Fprintf(out, "%s end %s exit=%d seconds=%.1f\n", marker, t.Name, code, time.Since(start).Seconds())
	return code
}

// report writes a line to the results port if the manifest names one.
func report(m *Manifest, line string) {
	if m == nil || m.Results == "" {
		return
	}
	if f, err := openResults(m.Results); err == nil {
		fmt.Fprint(f, line)
		f.Close()
	}
}

func powerOff() {
	unix.Sync()
	// With qemu -no-reboot a reboot ends qemu as well; power-off is cleaner.
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Fprintln(os.Stderr, "qemu-init: power off:", err)
	}
	// PID 1 must not exit (the kernel would panic); panic=-1 reboots anyway.
	select {}
}
