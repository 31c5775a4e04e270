package datapath

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/cilium/ebpf/ringbuf"
)

// Arrival is a guest MAC the switch learned for the first time in its
// group and VLAN, or behind another port than before: a VM that started
// or migrated in.
type Arrival struct {
	Group   uint32
	VLAN    uint16
	MAC     net.HardwareAddr
	Ifindex int
}

// Arrivals reads the switch's arrival events. Next and Close may be called
// from different goroutines.
type Arrivals struct {
	r *ringbuf.Reader
}

// Arrivals opens a reader on the switch's arrival ring. Events the ring
// held before (from a previous daemon) are read too: announcing those
// guests again is harmless.
func (d *Datapath) Arrivals() (*Arrivals, error) {
	r, err := ringbuf.NewReader(d.objs.Arrivals)
	if err != nil {
		return nil, fmt.Errorf("arrival events: %w", err)
	}
	return &Arrivals{r: r}, nil
}

// Next blocks until an arrival, or until the deadline set with SetDeadline
// (os.ErrDeadlineExceeded); after Close it returns an error that is
// os.ErrClosed.
func (a *Arrivals) Next() (Arrival, error) {
	rec, err := a.r.Read()
	if errors.Is(err, ringbuf.ErrClosed) {
		return Arrival{}, fmt.Errorf("arrival events: %w", os.ErrClosed)
	}
	if err != nil {
		return Arrival{}, err
	}
	var ev bpfSwitchArrival
	if err := binary.Read(bytes.NewReader(rec.RawSample), binary.NativeEndian, &ev); err != nil {
		return Arrival{}, fmt.Errorf("arrival event: %w", err)
	}
	return Arrival{Group: ev.Group, VLAN: ev.Vlan, MAC: net.HardwareAddr(ev.Mac[:]), Ifindex: int(ev.Ifindex)}, nil
}

// SetDeadline bounds the next Next calls (zero: none).
func (a *Arrivals) SetDeadline(t time.Time) { a.r.SetDeadline(t) }

// Close stops a pending Next.
func (a *Arrivals) Close() error { return a.r.Close() }
