package probe

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/pkg/announce"
	"github.com/uplinkd/uplinkd/pkg/failover"
)

// Config is one group's probing.
type Config struct {
	Targets  []netip.Addr // IPv4: ARP; IPv6: neighbour solicitation
	Interval time.Duration
	Missed   int        // intervals without a reply before a path counts as failed
	Source   netip.Addr // IPv4 source of ARP probes; invalid or 0.0.0.0: an ARP probe
}

// Uplink is one interface to probe.
type Uplink struct {
	Name    string
	Ifindex int
	MAC     net.HardwareAddr
}

// Prober probes a set of uplinks and reports every change of their probe
// state to onChange (never while holding its own lock, so onChange may
// call Set). Sockets are made in the network namespace of the thread that
// calls Set.
type Prober struct {
	cfg      Config
	onChange func(uplink string, st failover.ProbeState)
	log      *slog.Logger

	mu      sync.Mutex
	uplinks map[string]*probed
	stop    chan struct{}
	done    chan struct{}
}

type probed struct {
	up      Uplink
	send    *announce.Socket
	recv    *os.File
	frames  [][]byte
	tracker *Tracker
}

// New starts a prober with no uplinks.
func New(cfg Config, onChange func(string, failover.ProbeState), log *slog.Logger) (*Prober, error) {
	if len(cfg.Targets) == 0 || cfg.Interval <= 0 {
		return nil, errors.New("probe: need targets and an interval")
	}
	if !cfg.Source.IsValid() {
		cfg.Source = netip.IPv4Unspecified()
	}
	p := &Prober{cfg: cfg, onChange: onChange, log: log.With("component", "probe"),
		uplinks: map[string]*probed{}, stop: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	return p, nil
}

// Set makes the prober probe exactly ups (by name; a changed ifindex or MAC
// reopens). It returns the uplinks it started probing: they start ok, and
// are not reported to onChange until that changes.
func (p *Prober) Set(ups []Uplink) (started []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	want := map[string]Uplink{}
	for _, u := range ups {
		want[u.Name] = u
	}
	for name, pr := range p.uplinks {
		if u, ok := want[name]; !ok || u.Ifindex != pr.up.Ifindex || !equalMAC(u.MAC, pr.up.MAC) {
			pr.close()
			delete(p.uplinks, name)
		}
	}
	for name, u := range want {
		if p.uplinks[name] != nil {
			continue
		}
		pr, err := p.open(u)
		if err != nil {
			p.log.Warn("cannot probe uplink", "uplink", name, "err", err)
			continue
		}
		p.uplinks[name] = pr
		started = append(started, name)
		go p.read(pr)
	}
	return started
}

func (p *Prober) open(u Uplink) (*probed, error) {
	pr := &probed{up: u, tracker: NewTracker(p.cfg.Missed)}
	for _, t := range p.cfg.Targets {
		var f []byte
		var err error
		if t.Is4() {
			f, err = ARPRequest(u.MAC, p.cfg.Source, t)
		} else {
			f, err = NeighborSolicitation(u.MAC, t)
		}
		if err != nil {
			return nil, err
		}
		pr.frames = append(pr.frames, f)
	}
	var err error
	if pr.send, err = announce.OpenSocket(u.Ifindex); err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		pr.send.Close()
		return nil, fmt.Errorf("probe receive socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: u.Ifindex}); err != nil {
		unix.Close(fd)
		pr.send.Close()
		return nil, fmt.Errorf("bind probe receive socket to %s: %w", u.Name, err)
	}
	pr.recv = os.NewFile(uintptr(fd), "probe:"+u.Name)
	return pr, nil
}

// close closes the sockets; the reader ends on its own (it may be waiting
// for the lock the caller holds, so it is not waited for: a reader that
// finds its uplink gone or replaced does nothing).
func (pr *probed) close() {
	pr.send.Close()
	pr.recv.Close()
}

// read takes replies off one uplink until its socket is closed.
func (p *Prober) read(pr *probed) {
	buf := make([]byte, 2048)
	for {
		n, err := pr.recv.Read(buf)
		if errors.Is(err, unix.ENETDOWN) {
			continue // reported once per time the uplink goes down; it may come back
		}
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				p.log.Warn("probe receive failed", "uplink", pr.up.Name, "err", err)
			}
			return
		}
		addr, err := ParseReply(buf[:n], pr.up.MAC)
		if err != nil || !p.isTarget(addr) {
			continue
		}
		p.mu.Lock()
		changed := p.uplinks[pr.up.Name] == pr && pr.tracker.Reply()
		p.mu.Unlock()
		if changed {
			p.log.Info("path probes answered again", "uplink", pr.up.Name, "from", addr)
			p.onChange(pr.up.Name, failover.ProbeOK)
		}
	}
}

func (p *Prober) isTarget(a netip.Addr) bool {
	for _, t := range p.cfg.Targets {
		if t == a {
			return true
		}
	}
	return false
}

// run sends a round of probes on every uplink each interval and closes
// the previous interval's accounts.
func (p *Prober) run() {
	defer close(p.done)
	tick := time.NewTicker(p.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		var failed []string
		p.mu.Lock()
		for name, pr := range p.uplinks {
			if pr.tracker.Interval() && pr.tracker.State() == failover.ProbeFailed {
				failed = append(failed, name)
			}
			for _, f := range pr.frames {
				if err := pr.send.Send(f); err != nil {
					p.log.Debug("probe not sent", "uplink", name, "err", err)
				}
			}
		}
		p.mu.Unlock()
		for _, name := range failed {
			p.log.Warn("path probes failed: no reply from any target", "uplink", name, "missed", p.cfg.Missed, "interval", p.cfg.Interval)
			p.onChange(name, failover.ProbeFailed)
		}
	}
}

// Close stops probing and closes every socket.
func (p *Prober) Close() {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, pr := range p.uplinks {
		pr.close()
		delete(p.uplinks, name)
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
