package peer

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// OVSPackage is the Debian package that provides ovs-vswitchd.
const OVSPackage = "openvswitch-switch"

// ovsSchema is the schema ovsdb-tool creates the private database from.
const ovsSchema = "/usr/share/openvswitch/vswitch.ovsschema"

var ovsBinaries = []string{"ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-appctl"}

// The Debian units the package ships; only ones the install itself started
// are stopped again.
var ovsUnits = []string{"openvswitch-switch.service", "ovsdb-server.service", "ovs-vswitchd.service"}

var installMu sync.Mutex

// findOVS resolves the OVS programs (also in the sbin directories, which a
// non-login PATH may lack).
func findOVS() (map[string]string, error) {
	paths := map[string]string{}
	var missing []string
	for _, b := range ovsBinaries {
		p, err := exec.LookPath(b)
		if err != nil {
			for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/usr/local/sbin", "/usr/local/bin"} {
				if st, serr := os.Stat(filepath.Join(dir, b)); serr == nil && st.Mode()&0o111 != 0 {
					p, err = filepath.Join(dir, b), nil
					break
				}
			}
		}
		if err != nil {
			missing = append(missing, b)
			continue
		}
		paths[b] = p
	}
	if _, err := os.Stat(ovsSchema); err != nil {
		missing = append(missing, ovsSchema)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("ovs: missing %s", strings.Join(missing, ", "))
	}
	return paths, nil
}

// ensureOVS returns the OVS programs, installing Debian's openvswitch-switch
// with apt-get first when they are missing. The package's scripts must not
// leave the system's own Open vSwitch running on our account: Debian's
// invoke-rc.d refuses to start services when no init system runs (or when
// policy-rc.d says so), and under systemd any unit the install started or
// enabled is stopped and disabled again.
func ensureOVS(ctx context.Context) (map[string]string, error) {
	installMu.Lock()
	defer installMu.Unlock()
	paths, missing := findOVS()
	if missing == nil {
		return paths, nil
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w; installing %s needs root", missing, OVSPackage)
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return nil, fmt.Errorf("%w; no apt-get to install %s with", missing, OVSPackage)
	}
	if err := installOVSPackage(ctx); err != nil {
		return nil, fmt.Errorf("%w; %w", missing, err)
	}
	return findOVS()
}

func installOVSPackage(ctx context.Context) error {
	systemd := systemdRunning()
	wasActive, wasEnabled := map[string]bool{}, map[string]bool{}
	if systemd {
		for _, u := range ovsUnits {
			wasActive[u] = unitState(ctx, "is-active", u)
			wasEnabled[u] = unitState(ctx, "is-enabled", u)
		}
	}
	before := ovsProcesses()
	slog.Info("ovs: installing with apt-get", "package", OVSPackage, "systemd", systemd)
	err := aptInstall(ctx)
	if err != nil && (strings.Contains(err.Error(), "Unable to locate package") || strings.Contains(err.Error(), "no installation candidate")) {
		// A machine whose package lists were never fetched.
		if _, uerr := run(ctx, aptEnv, "apt-get", "update"); uerr != nil {
			return fmt.Errorf("apt-get update: %w", uerr)
		}
		err = aptInstall(ctx)
	}
	if err != nil {
		return err
	}
	if systemd {
		for _, u := range ovsUnits {
			if !wasActive[u] && unitState(ctx, "is-active", u) {
				slog.Info("ovs: stopping the unit the package started", "unit", u)
				if _, err := run(ctx, nil, "systemctl", "stop", u); err != nil {
					return fmt.Errorf("stop %s started by the package: %w", u, err)
				}
			}
			if !wasEnabled[u] && unitState(ctx, "is-enabled", u) {
				if _, err := run(ctx, nil, "systemctl", "disable", u); err != nil {
					return fmt.Errorf("disable %s enabled by the package: %w", u, err)
				}
			}
		}
	} else if started := systemInstances(newPIDs(before, ovsProcesses())); len(started) > 0 {
		// Not ours: no systemd to stop them through, and we did not start
		// them by PID.
		slog.Warn("ovs: the package's scripts started the system's Open vSwitch; leaving it running", "pids", started)
	}
	return nil
}

var aptEnv = []string{"DEBIAN_FRONTEND=noninteractive"}

func aptInstall(ctx context.Context) error {
	// Another run may be installing at the same time: wait for dpkg's lock.
	_, err := run(ctx, aptEnv, "apt-get", "install", "-y", "--no-install-recommends",
		"-o", "DPkg::Lock::Timeout=120",
		"-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold", OVSPackage)
	if err != nil {
		return fmt.Errorf("apt-get install %s: %w", OVSPackage, err)
	}
	return nil
}

// systemdRunning is sd_booted(3)'s test.
func systemdRunning() bool {
	st, err := os.Stat("/run/systemd/system")
	return err == nil && st.IsDir()
}

func unitState(ctx context.Context, verb, unit string) bool {
	_, err := run(ctx, nil, "systemctl", verb, "--quiet", unit)
	return err == nil
}

// ovsProcesses lists the PIDs of running ovs-vswitchd and ovsdb-server
// processes, whoever started them.
func ovsProcesses() []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil {
			continue
		}
		switch strings.TrimSpace(string(comm)) {
		case "ovs-vswitchd", "ovsdb-server":
			pids = append(pids, pid)
		}
	}
	return pids
}

// systemInstances keeps the processes that use the system's run or
// database directory, as the package's init script starts them; private
// instances (like ours, perhaps started meanwhile by another run) do not.
func systemInstances(pids []int) []int {
	var out []int
	for _, pid := range pids {
		cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		if err != nil {
			continue
		}
		for _, dir := range []string{"/run/openvswitch", "/etc/openvswitch", "/var/lib/openvswitch"} {
			if strings.Contains(string(cmdline), dir) {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

func newPIDs(before, after []int) []int {
	var out []int
	for _, p := range after {
		if !slices.Contains(before, p) {
			out = append(out, p)
		}
	}
	return out
}

// probeOVS is Available's check for "ovs".
func probeOVS(ctx context.Context) error {
	if _, err := ensureOVS(ctx); err != nil {
		return err
	}
	// The netdev datapath makes its internal ports as tap devices.
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return fmt.Errorf("ovs: the userspace datapath needs /dev/net/tun: %w", err)
	}
	return nil
}
