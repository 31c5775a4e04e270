package daemon

import (
	"context"

	"github.com/vishvananda/netlink"

	"github.com/uplinkd/uplinkd/pkg/announce"
	"github.com/uplinkd/uplinkd/pkg/balance"
	"github.com/uplinkd/uplinkd/pkg/config"
	"github.com/uplinkd/uplinkd/pkg/datapath"
	"github.com/uplinkd/uplinkd/pkg/hostport"
	"github.com/uplinkd/uplinkd/pkg/limits"
	"github.com/uplinkd/uplinkd/pkg/linkwatch"
	"github.com/uplinkd/uplinkd/pkg/nldump"
)

// The daemon's view of what it drives, as small interfaces declared here
// (the consumer): the data plane, the announcement sender and the host's
// interfaces. uplinkd uses *datapath.Datapath, *announce.Announcer and
// netlink; the unit tests use stand-ins that record what the daemon
// asked, so the event handling is tested without root.

// dataPlane is what the daemon asks of the data plane (*datapath.Datapath).
type dataPlane interface {
	// Groups, and where each sends its guests' traffic.
	AssignGroups(names []string) (map[string]uint32, error)
	ActiveSlot(group uint32) (limits.Slot, error)
	UplinkIfindex(group uint32, slot limits.Slot) (int, error)
	SetActive(group uint32, slot limits.Slot) error
	SetFallback(group uint32, slots []limits.Slot) error
	// MoveOff is the poll's fast path: it runs on the poll's thread.
	MoveOff(group uint32, from limits.Slot) (to limits.Slot, moved bool, err error)
	// Balance groups' bucket tables and load.
	Balance(group uint32) (t balance.Table, down uint32, ok bool, err error)
	SetBalance(group uint32, t *balance.Table, alt [limits.MaxUplinks][]limits.Slot) error
	BucketBytes(group uint32) (*[limits.Buckets]uint64, error)
	// Ports.
	Attach(p datapath.Port) (datapath.AttachMode, error)
	Detach(ifname string, ifindex int) error
	PinnedLinks() ([]string, error)
	// What the switch learned and counted.
	FDB() ([]datapath.FDBEntry, error)
	Guests() ([]datapath.Guest, error)
	Stats(ifindex int) (datapath.PortStats, error)
	RecountLearned() error
	Close() error
}

var _ dataPlane = (*datapath.Datapath)(nil)

// announceSender starts announcement runs (*announce.Announcer), each on
// its own goroutine.
type announceSender interface {
	Announce(ctx context.Context, req announce.Request) <-chan announce.Result
	InFlight() []string
	SetRate(ratePPS, burst int)
	Close()
}

var _ announceSender = (*announce.Announcer)(nil)

// host is what the daemon reads of the host's interfaces.
type host interface {
	LinkByName(name string) (netlink.Link, error)
	LinkByIndex(index int) (netlink.Link, error)
	LinkList() ([]netlink.Link, error)
	// LinkState is an interface's state now (linkwatch.Current).
	LinkState(name string) (linkwatch.State, error)
	// EnsureHostPort creates or adopts a host port's veth pair
	// (hostport.Ensure).
	EnsureHostPort(hp config.HostPort) (hostport.Result, error)
	// HostEnds are host ports' host ends now (hostport.ReadEnds).
	HostEnds(names []string) ([]hostport.End, []error)
}

// netlinkHost is the host through netlink, in the daemon's network
// namespace.
type netlinkHost struct{}

func (netlinkHost) LinkByName(name string) (netlink.Link, error) { return netlink.LinkByName(name) }
func (netlinkHost) LinkByIndex(index int) (netlink.Link, error)  { return netlink.LinkByIndex(index) }
func (netlinkHost) LinkList() ([]netlink.Link, error)            { return nldump.Retry(netlink.LinkList) }
func (netlinkHost) LinkState(name string) (linkwatch.State, error) {
	return linkwatch.Current(name)
}
func (netlinkHost) EnsureHostPort(hp config.HostPort) (hostport.Result, error) {
	return hostport.Ensure(hp)
}
func (netlinkHost) HostEnds(names []string) ([]hostport.End, []error) {
	return hostport.ReadEnds(names)
}
