package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/uplinkd/uplinkd/pkg/config"
	"github.com/uplinkd/uplinkd/pkg/hostport"
)

// removeConfiguredHostPorts deletes the veth pair of every host port cfg
// names (uplinkd -cleanup -remove-host-ports), saying what it did on out.
// A pair that is not there is fine; an interface under a host port's name
// that is not its pair is left in place and an error.
func removeConfiguredHostPorts(cfg *config.Config, out io.Writer) error {
	var errs []error
	for _, g := range cfg.Groups {
		for _, hp := range g.HostPorts {
			removed, err := hostport.Remove(hp)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("group %s: %w", g.Name, err))
			case removed:
				fmt.Fprintf(out, "uplinkd: removed host port %s (veth pair %s/%s) of group %s\n", hp.Name, hp.Name, hp.SwitchEnd, g.Name)
			default:
				fmt.Fprintf(out, "uplinkd: host port %s of group %s is not there: nothing to remove\n", hp.Name, g.Name)
			}
		}
	}
	return errors.Join(errs...)
}
