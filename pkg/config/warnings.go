package config

import (
	"fmt"
	"strings"
)

// UplinkAddressWarnings says which uplinks carry IP addresses of the
// host's own. Once an interface is an uplink, the switch hands the host
// only frames to the uplink's own MAC and link-local control frames: ARP
// requests and neighbour solicitations from upstream go to the guests, so
// an address there stops answering. Each warning names the uplink's field
// and where the addresses belong: the group's first host port, or a host
// port to add. addrs maps an interface to its addresses; the caller leaves
// out IPv6 link-local ones, which every interface has.
func UplinkAddressWarnings(c *Config, addrs map[string][]string) []string {
	var out []string
	for gi, g := range c.Groups {
		to := fmt.Sprintf("to a host port (groups[%d].host_ports)", gi)
		if len(g.HostPorts) > 0 {
			to = fmt.Sprintf("to host port %s (groups[%d].host_ports[0])", g.HostPorts[0].Name, gi)
		}
		for ui, u := range g.Uplinks {
			a := addrs[u.Name]
			if len(a) == 0 {
				continue
			}
			out = append(out, fmt.Sprintf("groups[%d].uplinks[%d] (%s) carries %s: as an uplink it no longer "+
				"hears ARP or neighbour solicitations from upstream; move the addresses %s",
				gi, ui, u.Name, strings.Join(a, ", "), to))
		}
	}
	return out
}
