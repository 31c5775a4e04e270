package linkwatch

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// sysfsFiles holds one interface's sysfs attributes open, so a poll costs
// one pread while nothing changes:
//
//   - carrier_changes is read every tick. It is lock-free in the kernel and
//     counts every carrier transition at the moment it happens.
//   - carrier is read only on first sight of an interface, or without
//     netlink: the kernel takes the RTNL lock to answer it (and first runs
//     pending link-watch work). Otherwise a moved counter's parity says
//     the carrier. Admin up/down does not go through the link-watch delay,
//     so netlink reports it promptly without help.
//
// All files are opened relative to one directory fd, so they belong to the
// same incarnation of the interface. Reads of a deleted interface's files
// fail (ENODEV), which is how a re-created interface is noticed.
type sysfsFiles struct {
	open    bool
	index   int
	carrier int // fd
	changes int // fd
	warned  int // ifindex for which a mismatch was already logged
}

func (f *sysfsFiles) close() {
	if !f.open {
		return
	}
	unix.Close(f.carrier)
	unix.Close(f.changes)
	f.open, f.index = false, 0
}

// openAt opens name's attributes under netDir.
func (f *sysfsFiles) openAt(netDir, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return fmt.Errorf("invalid interface name %q", name)
	}
	f.close()
	dir, err := unix.Open(filepath.Join(netDir, name), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	idxFd, err := unix.Openat(dir, "ifindex", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	index, err := preadUint(idxFd)
	unix.Close(idxFd)
	if err != nil {
		return err
	}
	carrier, err := unix.Openat(dir, "carrier", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	changes, err := unix.Openat(dir, "carrier_changes", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(carrier)
		return err
	}
	*f = sysfsFiles{open: true, index: int(index), carrier: carrier, changes: changes, warned: f.warned}
	return nil
}

func (f *sysfsFiles) readChanges() (uint32, error) {
	v, err := preadUint(f.changes)
	return uint32(v), err
}

// readCarrier returns the carrier and whether the interface is running
// (admin up): the kernel answers EINVAL for an interface that is down.
func (f *sysfsFiles) readCarrier() (carrier, running bool, err error) {
	v, err := preadUint(f.carrier)
	if errors.Is(err, unix.EINVAL) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	return v != 0, true, nil
}

// readConsistent reads carrier, and carrier_changes again until no change
// slipped in between (bounded; a later tick catches the rest).
func (f *sysfsFiles) readConsistent(changes uint32) (carrier, running bool, _ uint32, err error) {
	for range 3 {
		if carrier, running, err = f.readCarrier(); err != nil {
			return false, false, 0, err
		}
		again, err := f.readChanges()
		if err != nil {
			return false, false, 0, err
		}
		if again == changes {
			break
		}
		changes = again
	}
	return carrier, running, changes, nil
}

// preadUint reads a decimal sysfs attribute from offset 0 (which makes the
// kernel produce a fresh value on every read).
func preadUint(fd int) (uint64, error) {
	var buf [24]byte
	n, err := unix.Pread(fd, buf[:], 0)
	if err != nil {
		return 0, err
	}
	return parseSysfsUint(buf[:n])
}

func parseSysfsUint(b []byte) (uint64, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse sysfs value %q: %w", b, err)
	}
	return v, nil
}

func (r *runner) pollAll() {
	for name, f := range r.files {
		r.pollOne(name, f)
	}
	r.syncScan()
}

// pollOne reads one polled interface and publishes a change of carrier or
// carrier_changes (a jump with an unchanged carrier is a flap between two
// polls). With netlink on, only the incarnation netlink reported is read;
// with netlink off the poller also reports existence.
func (r *runner) pollOne(name string, f *sysfsFiles) {
	netDir := r.w.opts.SysfsNetDir
	pollOnly := r.w.opts.DisableNetlink
	last, known := r.last[name]

	if !pollOnly {
		if !known || !last.Exists {
			f.close()
			return
		}
		if f.open && f.index != last.Index {
			f.close()
		}
	}
	if !f.open {
		err := f.openAt(netDir, name)
		switch {
		case err != nil && pollOnly && errors.Is(err, unix.ENOENT):
			r.update(State{Name: name}, SourcePoll, true, false)
			return
		case err != nil:
			return // netlink will report what happened; retried next tick
		}
		if !pollOnly && f.index != last.Index {
			if f.warned != last.Index {
				f.warned = last.Index
				r.w.log.Warn("sysfs and netlink disagree on an interface's ifindex; is the sysfs mounted from this network namespace?",
					"name", name, "netlink_ifindex", last.Index, "sysfs_ifindex", f.index, "sysfs", netDir)
			}
			f.close()
			return
		}
	}

	changes, err := f.readChanges()
	if err != nil {
		r.pollFailed(name, f, err)
		return
	}
	if known && last.Exists && last.Index == f.index && changes == last.CarrierChanges {
		return
	}
	var carrier, running bool
	if !pollOnly && known && last.Exists && last.Index == f.index {
		// Transitions alternate, so the counter's parity since the last
		// known state says the carrier. Reading `carrier` instead would
		// make the kernel run the pending link-watch work first (for a
		// carrier loss that deactivates the qdisc and waits for an RCU
		// grace period: ~1 ms) under the RTNL lock. Admin state comes
		// from netlink, which reports it promptly.
		carrier = last.Carrier != ((changes-last.CarrierChanges)%2 == 1)
		running = last.AdminUp
	} else if carrier, running, changes, err = f.readConsistent(changes); err != nil {
		r.pollFailed(name, f, err)
		return
	}
	r.update(State{
		Name:           name,
		Exists:         true,
		Index:          f.index,
		AdminUp:        running,
		Carrier:        carrier,
		CarrierChanges: changes,
	}, SourcePoll, true, false)
}

// pollFailed handles a read error: the interface went away (ENODEV) or
// something else broke; files are reopened on a later tick.
func (r *runner) pollFailed(name string, f *sysfsFiles, err error) {
	f.close()
	if r.w.opts.DisableNetlink && errors.Is(err, unix.ENODEV) {
		r.update(State{Name: name}, SourcePoll, true, false)
		return
	}
	if !errors.Is(err, unix.ENODEV) {
		r.w.log.Debug("sysfs poll failed", "name", name, "err", err)
	}
}
