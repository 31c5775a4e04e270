// Package control is uplinkd's local API: JSON over HTTP on a unix socket
// that only root may use. It holds both ends of the wire: the Server the
// daemon runs over a Backend, the Client, and the request and answer
// types. The command line that uses the Client, uplinkctl, is pkg/ctl.
package control

import "time"

// DefaultSocket is where uplinkd listens unless configured otherwise.
const DefaultSocket = "/run/uplinkd/uplinkd.sock"

// Status is the whole switch.
type Status struct {
	Version string    `json:"version"`
	Started time.Time `json:"started"`
	PinPath string    `json:"pin_path"`
	// FailoverPaths are the ways a dead uplink is left, fastest first:
	// "carrier-hook", "carrier-at-redirect" (in the kernel),
	// "user-space".
	FailoverPaths []string          `json:"failover_paths"`
	RefusedPaths  map[string]string `json:"refused_paths,omitempty"` // path -> why the kernel refused it
	Groups        []GroupStatus     `json:"groups"`
}

// GroupStatus is one virtual switch.
type GroupStatus struct {
	Name     string `json:"name"`
	ID       uint32 `json:"id"`
	Mode     string `json:"mode"`   // active-backup or balance
	Active   string `json:"active"` // "" when no uplink is usable
	Failback bool   `json:"failback"`
	// Hold timers: a recovered carrier counts after UpDelay, a lost one
	// after DownDelay.
	UpDelay      time.Duration  `json:"up_delay_ns"`
	DownDelay    time.Duration  `json:"down_delay_ns"`
	Manual       string         `json:"manual,omitempty"` // uplink pinned by set-active
	Failovers    int            `json:"failovers"`
	LastChange   time.Time      `json:"last_change,omitzero"`
	LastReason   string         `json:"last_reason,omitempty"`
	LastFailover *FailoverEvent `json:"last_failover,omitempty"`
	// Recent are the group's latest switches, oldest first (bounded).
	Recent     []FailoverEvent `json:"recent_failovers,omitempty"`
	Uplinks    []UplinkStatus  `json:"uplinks"`
	GuestPorts []PortStatus    `json:"guest_ports"`
	// HostPorts are the host's own interfaces on the switch (their switch
	// ends are among GuestPorts).
	HostPorts     []HostPortStatus `json:"host_ports,omitempty"`
	Announce      AnnounceSetting  `json:"announce"`
	LearnedGuests int              `json:"learned_guests"`
	// GuestPatterns make matching interfaces guest ports as they appear.
	GuestPatterns []string `json:"guest_patterns,omitempty"`
	// Arrivals counts guests that arrived (a MAC new to its group and VLAN,
	// or on another port); each is announced at once where announcements
	// are on and an uplink is usable.
	Arrivals uint64 `json:"arrivals"`
	// FailoversByReason counts the switches since start by reason;
	// AnnounceFrames and AnnounceSuppressed the announcement frames sent
	// and those the rate cap could not fit.
	FailoversByReason  map[string]int `json:"failovers_by_reason,omitempty"`
	AnnounceFrames     uint64         `json:"announce_frames"`
	AnnounceSuppressed uint64         `json:"announce_suppressed"`
	// Rebalances counts rebalancing rounds that moved buckets.
	Rebalances uint64 `json:"rebalances,omitempty"`
	Announcing bool   `json:"announcing"` // an announcement is being sent
}

// AnnounceSetting is a group's announcement configuration.
type AnnounceSetting struct {
	Count    int           `json:"count"`
	Interval time.Duration `json:"interval_ns"`
}

// UplinkStatus is one uplink of a group.
type UplinkStatus struct {
	Name     string    `json:"name"`
	Ifindex  int       `json:"ifindex"`
	Slot     int       `json:"slot"`
	Priority int       `json:"priority"`
	State    string    `json:"state"` // admin state: usable, standby, disabled
	Probe    string    `json:"probe"` // path probes: none, ok, failed
	Carrier  bool      `json:"carrier"`
	Usable   bool      `json:"usable"` // may carry traffic now
	Active   bool      `json:"active"`
	Since    time.Time `json:"since,omitzero"` // last carrier change seen
	// Hold is what is left of a running up- or down-delay.
	Hold       time.Duration `json:"hold_ns,omitempty"`
	Failovers  int           `json:"failovers"`             // times the group left it because it stopped being usable
	LastReason string        `json:"last_reason,omitempty"` // why, the last time
	Hook       string        `json:"hook"`                  // where its programs run: tcx, or tc (a clsact filter)
	Error      string        `json:"error,omitempty"`       // why it is not attached
	// Balance groups: the buckets and learned guests that leave through
	// it, and the frames it sent (guest traffic, counted by the switch).
	Buckets   int    `json:"buckets,omitempty"`
	Guests    int    `json:"guests,omitempty"`
	TxPackets uint64 `json:"tx_packets,omitempty"`
	// LoadBps is the guests' upstream traffic through it over the last
	// rebalancing interval (rebalancing on).
	LoadBps uint64 `json:"load_bytes_per_s,omitempty"`
}

// PortStatus is one guest port.
type PortStatus struct {
	Name    string   `json:"name"`
	Ifindex int      `json:"ifindex"`
	VLAN    uint16   `json:"vlan,omitempty"`  // access VLAN
	Trunk   []uint16 `json:"trunk,omitempty"` // a trunk's VLANs (none: all)
	// AnnouncePriority: its guests are announced first when higher.
	AnnouncePriority int `json:"announce_priority,omitempty"`
	// Match is the pattern that made it a port ("" for a named one).
	Match string `json:"match,omitempty"`
	Hook  string `json:"hook"` // tcx, or tc (a clsact filter)
	Error string `json:"error,omitempty"`
}

// HostPortStatus is one host port: a veth pair whose end Name belongs to
// the host's network stack and whose end SwitchEnd is a guest port.
type HostPortStatus struct {
	Name      string `json:"name"`           // the host's end
	SwitchEnd string `json:"switch_end"`     // the switch's end
	VLAN      uint16 `json:"vlan,omitempty"` // access VLAN (0: untagged, tagged frames pass)
	// MAC and MTU are the host end's (the configured ones while it is
	// missing; MTU 0: the kernel's default).
	MAC   string `json:"mac"`
	MTU   int    `json:"mtu,omitempty"`
	State string `json:"state"` // the host end: up, down, missing, or unknown (not read: Error says why)
	// Addrs are the host's IPv4 and IPv6 addresses on the host end
	// (IPv6 link-local ones too). With none but link-local, the host's own
	// traffic does not use the port: its addresses are the operator's to
	// give.
	Addrs []string `json:"addrs,omitempty"`
	// Error: the switch end is not attached, or the host end could not be
	// read.
	Error string `json:"error,omitempty"`
}

// FailoverEvent is the timeline of one switch of a group's active uplink.
type FailoverEvent struct {
	// Seq numbers the events of a daemon's life; Version is the timeline
	// version of the event's last change (its announcement ends later).
	Seq     uint64 `json:"seq"`
	Version uint64 `json:"version"`
	Group   string `json:"group"`
	From    string `json:"from"`
	To      string `json:"to"`
	Reason  string `json:"reason"`
	// Source is what noticed the cause: "netlink", "poll" (the carrier
	// poll), "kernel/<path>" (the data plane switched by itself, e.g.
	// "kernel/carrier-at-redirect") or "operator".
	Source string `json:"source,omitempty"`
	// Detected is when the daemon learned of the cause (the netlink event
	// or the carrier poll that saw it); Switched is when the active slot
	// was written.
	Detected time.Time     `json:"detected"`
	Switched time.Time     `json:"switched"`
	Latency  time.Duration `json:"detect_to_switch_ns"`
	// Announcements on the new uplink.
	AnnounceFirst  time.Time `json:"announce_first,omitzero"`
	AnnounceLast   time.Time `json:"announce_last,omitzero"`
	AnnounceFrames int       `json:"announce_frames"`
	AnnounceErrors int       `json:"announce_errors,omitempty"`
}

// Events is the answer to GET /v1/events: what changed after the version
// asked for, and the version now.
type Events struct {
	Events  []FailoverEvent `json:"events"`
	Version uint64          `json:"version"`
}

// Guest is one learned guest address with the IPs it has used.
type Guest struct {
	Group string        `json:"group"`
	VLAN  uint16        `json:"vlan"`
	MAC   string        `json:"mac"`
	Port  string        `json:"port"`
	Addrs []string      `json:"addrs,omitempty"`
	Age   time.Duration `json:"age_ns"`
}

// PortCounters are the data plane's counters of one port.
type PortCounters struct {
	Group       string `json:"group"`
	Port        string `json:"port"`
	Role        string `json:"role"`
	RxPackets   uint64 `json:"rx_packets"`
	RxBytes     uint64 `json:"rx_bytes"`
	TxPackets   uint64 `json:"tx_packets"`
	TxBytes     uint64 `json:"tx_bytes"`
	HostPackets uint64 `json:"host_packets"`
	// LearnRefused counts new guest MACs not learned: the port's max_macs
	// reached, or the MAC locked to another port.
	LearnRefused uint64            `json:"learn_refused,omitempty"`
	Drops        map[string]uint64 `json:"drops"`
}

// SetActiveRequest pins a group to an uplink, or with Auto returns it to
// the policy's choice.
type SetActiveRequest struct {
	Uplink string `json:"uplink,omitempty"`
	Auto   bool   `json:"auto,omitempty"`
}

// SetUplinkRequest changes an uplink at run time: its priority, its admin
// state, or both.
type SetUplinkRequest struct {
	Priority *int   `json:"priority,omitempty"`
	State    string `json:"state,omitempty"`
}

// AddUplinkRequest adds an uplink to a group at run time; priority and
// state default as in the configuration file.
type AddUplinkRequest struct {
	Name     string `json:"name"`
	Priority *int   `json:"priority,omitempty"`
	State    string `json:"state,omitempty"`
}

// AddPortRequest adds a guest port to a group at run time.
type AddPortRequest struct {
	Name string `json:"name"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
}

// MoveGuestRequest is `uplinkctl move-guest`: pin a guest of a balance
// group (its bucket) to an uplink.
type MoveGuestRequest struct {
	MAC    string `json:"mac"`
	VLAN   uint16 `json:"vlan,omitempty"`
	Uplink string `json:"uplink"`
}

// ReloadResult is what a configuration reload changed (empty: nothing).
type ReloadResult struct {
	Changes []string `json:"changes"`
}
