package peer

import (
	"strings"
	"testing"
)

// TestOVSMissingSaysHowToInstall: with a program missing, the error names
// it and the command that installs Open vSwitch.
func TestOVSMissingSaysHowToInstall(t *testing.T) {
	saved := ovsBinaries
	t.Cleanup(func() { ovsBinaries = saved })
	ovsBinaries = append([]string{"ulxj-no-such-ovs-program"}, saved...)

	_, err := findOVS()
	if err == nil {
		t.Fatal("findOVS found a program that does not exist")
	}
	for _, want := range []string{"ulxj-no-such-ovs-program", "make deps", "scripts/deps.sh", OVSPackage} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("findOVS error %q does not mention %q", err, want)
		}
	}
	if ok, reason := Available(OVSName); ok || !strings.Contains(reason, "make deps") {
		t.Errorf("Available(ovs) = %v, %q; want false with the install command", ok, reason)
	}
}
