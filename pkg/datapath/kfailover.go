package datapath

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/uplinkd/uplinkd/pkg/limits"
)

// Failover paths, fastest first.
const (
	PathCarrierHook       = "carrier-hook"        // fentry/netif_carrier_off
	PathCarrierAtRedirect = "carrier-at-redirect" // an uplink's tc egress reads its carrier before the frame leaves
	PathUserspace         = "user-space"          // the daemon's netlink events and carrier poll
)

// hookPrograms maps each in-kernel path to its program, fastest first.
var hookPrograms = []struct{ path, prog string }{
	{PathCarrierHook, bpfFailoverProgFoCarrier},
}

// KernelFailover is the in-kernel failover: the hooks this kernel allows,
// the switch's own carrier check, and the event ring they all report to.
// The hooks know the uplinks from the switch's ports map; devices of
// other namespaces are ignored.
type KernelFailover struct {
	events  *ringbuf.Reader
	paths   []string          // in use, fastest first
	refused map[string]string // path -> why the kernel said no
}

// KernelSwitch is one move the kernel made by itself: off From to To, or
// in a balance group with To NoSlot, From marked down and its buckets
// moved while the active slot stayed.
type KernelSwitch struct {
	Group    uint32
	From, To limits.Slot
	Ifindex  int
	Path     string // PathCarrierHook or PathCarrierAtRedirect
	At       time.Time
}

// OpenKernelFailover loads every hook the kernel allows and attaches it
// (pinned, so it keeps working while no daemon runs). A hook the kernel
// refuses is recorded, not fatal: Paths says what is in use. The switch's
// interfaces are those of the calling thread's network namespace.
func (d *Datapath) OpenKernelFailover() (*KernelFailover, error) {
	spec, err := loadBpfFailover()
	if err != nil {
		return nil, err
	}
	netns, err := NetnsInode()
	if err != nil {
		return nil, err
	}
	if err := spec.Variables[bpfFailoverVarSwitchNetns].Set(uint32(netns)); err != nil {
		return nil, fmt.Errorf("set the switch's namespace: %w", err)
	}
	events, err := ringbuf.NewReader(d.objs.FoEvents)
	if err != nil {
		return nil, fmt.Errorf("failover events: %w", err)
	}
	kf := &KernelFailover{events: events, refused: map[string]string{}}
	opts := ebpf.CollectionOptions{
		Maps: ebpf.MapOptions{PinPath: d.pinDir},
		MapReplacements: map[string]*ebpf.Map{
			bpfFailoverMapActive:    d.objs.Active,
			bpfFailoverMapPorts:     d.objs.Ports,
			bpfFailoverMapFallbacks: d.objs.Fallbacks,
			bpfFailoverMapFoEvents:  d.objs.FoEvents,
			bpfFailoverMapBalances:  d.objs.Balances,
		},
	}
	dir := filepath.Join(d.pinDir, "hooks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		events.Close()
		return nil, err
	}
	loaded := map[string]bool{}
	for _, h := range hookPrograms {
		one := spec.Copy()
		for name := range one.Programs {
			if name != h.prog {
				delete(one.Programs, name)
			}
		}
		coll, err := ebpf.NewCollectionWithOptions(one, opts)
		if err != nil {
			kf.refused[h.path] = refusal(err)
			continue
		}
		if err := attachHook(coll.Programs[h.prog], filepath.Join(dir, h.prog)); err != nil {
			kf.refused[h.path] = refusal(err)
			coll.Close()
			continue
		}
		loaded[h.path] = true
		coll.Close() // the pinned link holds the program, the pins the maps
	}
	removeStaleHooks(dir)
	if d.carrierCheckRefused != "" {
		kf.refused[PathCarrierAtRedirect] = d.carrierCheckRefused
	} else {
		loaded[PathCarrierAtRedirect] = true
	}
	for _, p := range []string{PathCarrierHook, PathCarrierAtRedirect} {
		if loaded[p] {
			kf.paths = append(kf.paths, p)
		}
	}
	kf.paths = append(kf.paths, PathUserspace)
	return kf, nil
}

// attachHook attaches prog and pins the link at path, replacing a link a
// previous daemon pinned there: the new one is attached first, so there
// is no moment without the hook (both flip the same slot with a
// compare-and-swap, so the overlap is harmless).
func attachHook(prog *ebpf.Program, path string) error {
	l, err := link.AttachTracing(link.TracingOptions{Program: prog})
	if err != nil {
		return err
	}
	if old, err := link.LoadPinnedLink(path, nil); err == nil {
		_ = old.Unpin()
		old.Close()
	} else {
		_ = os.Remove(path)
	}
	if err := l.Pin(path); err != nil {
		l.Close()
		return fmt.Errorf("pin %s: %w", path, err)
	}
	return l.Close()
}

// enotsupp is the kernel's internal ENOTSUPP (524), which the bpf syscall
// can return for an attach type it lacks.
const enotsupp = syscall.Errno(524)

// refusal says briefly why the kernel would not have a hook.
func refusal(err error) string {
	switch {
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return "refused by the kernel (EPERM): tracing programs of this kind are not allowed here"
	case errors.Is(err, enotsupp), errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.EINVAL):
		return fmt.Sprintf("not supported by this kernel: %v", err)
	}
	return err.Error()
}

// Paths lists the failover paths in use, fastest first; the last is
// always the daemon's own.
func (kf *KernelFailover) Paths() []string { return append([]string(nil), kf.paths...) }

// Refused says which in-kernel paths the kernel would not load, and why.
func (kf *KernelFailover) Refused() map[string]string {
	out := make(map[string]string, len(kf.refused))
	for k, v := range kf.refused {
		out[k] = v
	}
	return out
}

// InKernel reports whether any in-kernel path is in use.
func (kf *KernelFailover) InKernel() bool { return len(kf.paths) > 1 }

// Next blocks until the kernel reports a move, or the reader is closed.
func (kf *KernelFailover) Next() (KernelSwitch, error) {
	if kf.events == nil {
		return KernelSwitch{}, ringbuf.ErrClosed
	}
	rec, err := kf.events.Read()
	if err != nil {
		return KernelSwitch{}, err
	}
	var ev bpfFailoverFoEvent
	if err := binary.Read(bytes.NewReader(rec.RawSample), binary.NativeEndian, &ev); err != nil {
		return KernelSwitch{}, fmt.Errorf("failover event: %w", err)
	}
	ks := KernelSwitch{Group: ev.Group, From: slotFromMap(ev.From), To: slotFromMap(ev.To), Ifindex: int(ev.Ifindex), At: KtimeToTime(ev.TsNs)}
	switch ev.Cause {
	case uint32(bpfFailoverFoCauseFO_CARRIER_OFF):
		ks.Path = PathCarrierHook
	case uint32(bpfFailoverFoCauseFO_CARRIER_SEEN):
		ks.Path = PathCarrierAtRedirect
	default:
		return ks, fmt.Errorf("failover event with unknown cause %d", ev.Cause)
	}
	return ks, nil
}

// Close stops reading events; the pinned hooks stay.
func (kf *KernelFailover) Close() error { return kf.events.Close() }

// removeStaleHooks detaches hooks an older daemon pinned that this one
// does not load (the XDP data plane's transmit tracepoint).
func removeStaleHooks(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if slices.ContainsFunc(hookPrograms, func(h struct{ path, prog string }) bool { return h.prog == e.Name() }) {
			continue
		}
		if l, err := link.LoadPinnedLink(filepath.Join(dir, e.Name()), nil); err == nil {
			_ = l.Unpin()
			l.Close()
		}
	}
}

// unpinAll detaches every link pinned in dir (a file that holds none is
// removed) and removes dir: part of Remove.
func unpinAll(dir string) error {
	entries, _ := os.ReadDir(dir)
	var errs []error
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if l, err := link.LoadPinnedLink(path, nil); err == nil {
			errs = append(errs, l.Unpin())
			l.Close()
		} else {
			errs = append(errs, os.Remove(path))
		}
	}
	_ = os.Remove(dir)
	return errors.Join(errs...)
}
