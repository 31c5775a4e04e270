package peer

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// OVSPackage is the Debian package that provides ovs-vswitchd.
const OVSPackage = "openvswitch-switch"

// ovsInstallHint says how to get the programs: scripts/deps.sh installs the
// package without leaving the system's own Open vSwitch running or enabled.
const ovsInstallHint = "install Open vSwitch with `make deps` (scripts/deps.sh, as root: Debian's " + OVSPackage + ")"

// ovsSchema is the schema ovsdb-tool creates the private database from.
const ovsSchema = "/usr/share/openvswitch/vswitch.ovsschema"

var ovsBinaries = []string{"ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-appctl"}

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
		return nil, fmt.Errorf("ovs: missing %s; %s", strings.Join(missing, ", "), ovsInstallHint)
	}
	return paths, nil
}

// probeOVS is Available's check for "ovs".
func probeOVS() error {
	if _, err := findOVS(); err != nil {
		return err
	}
	// The netdev datapath makes its internal ports as tap devices.
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return fmt.Errorf("ovs: the userspace datapath needs /dev/net/tun: %w", err)
	}
	return nil
}
