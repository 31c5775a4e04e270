// Package nldump retries netlink dumps that the kernel interrupted.
//
// A dump (of links, addresses, qdiscs, filters) that spans several reads
// is flagged NLM_F_DUMP_INTR when the table changes between two of them:
// the list may miss or repeat an entry. vishvananda/netlink then returns
// the list with netlink.ErrDumpInterrupted. That happens whenever an
// address settles (IPv6 DAD) or a port comes and goes while uplinkd reads,
// so a caller that took it as a failure reported errors, or skipped work,
// on a healthy host.
package nldump

import (
	"errors"

	"github.com/vishvananda/netlink"
)

// Attempts is how many times Retry runs a dump that keeps being
// interrupted. Changes come in bursts (a port added, its addresses
// settling); a few tries see one in full.
const Attempts = 4

// Retry runs dump until it completes uninterrupted, at most Attempts
// times. When every attempt was interrupted it returns the last list with
// an error that wraps netlink.ErrDumpInterrupted, for the caller to use
// as a recent view or to refuse; any other error is returned at once.
func Retry[T any](dump func() (T, error)) (T, error) {
	var list T
	var err error
	for range Attempts {
		list, err = dump()
		if !Interrupted(err) {
			return list, err
		}
	}
	return list, err
}

// Interrupted says whether err is an interrupted dump.
func Interrupted(err error) bool {
	return errors.Is(err, netlink.ErrDumpInterrupted)
}
