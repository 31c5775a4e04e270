package benchbpf

import (
	"errors"
	"fmt"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"sync"
	"time"
	"unsafe"

	"github.com/uplinkd/uplinkd/pkg/datapath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Receiver is bench_rx: attached to the interfaces where a stream leaves
// the switch under test (XDP, and tc ingress for frames that skip XDP),
// it records every stream frame in the interface's slot and drops it, counts RARP announcements and passes everything else
// (so it can sit on a bridge port that still has to learn).
type Receiver struct {
	objs     rxObjects
	seen     *ebpf.Memory
	words    uint64 // bitmap words per slot
	mu       sync.Mutex
	attached map[int]*rxAttachment // by ifindex
}

type rxAttachment struct {
	slot int
	link link.Link
	tc   func() error // detaches the tc ingress receiver
}

type rxObjects struct {
	Prog  *ebpf.Program `ebpf:"bench_rx"`
	TC    *ebpf.Program `ebpf:"bench_rx_tc"`
	Slots *ebpf.Map     `ebpf:"rx_slots"`
	Stats *ebpf.Map     `ebpf:"rx_stats"`
	Seen  *ebpf.Map     `ebpf:"rx_seen"`
}

// SlotStats is what one receiver slot saw since the last Reset.
type SlotStats struct {
	Count  uint64 // stream frames, including Dups and Beyond
	Dups   uint64 // frames whose sequence number had been seen before
	Beyond uint64 // frames past the slot's bitmap: counted, not in Seen
	// First and Last stream frame; zero when Count is 0.
	First, Last time.Time
	MaxSeq      uint64 // highest sequence number seen (valid when Count > 0)
	RARPs       uint64
	FirstRARP   time.Time // zero when RARPs is 0
}

// NewReceiver loads a receiver with DefaultSeqsPerSlot sequence numbers per
// slot.
func NewReceiver() (*Receiver, error) {
	return NewReceiverSize(DefaultSeqsPerSlot)
}

// NewReceiverSize loads a receiver whose slots each record sequence numbers
// 0..seqsPerSlot-1 (rounded up to a multiple of 64) in their bitmap.
func NewReceiverSize(seqsPerSlot uint64) (*Receiver, error) {
	if seqsPerSlot == 0 || seqsPerSlot > MaxSeqsPerSlot {
		return nil, fmt.Errorf("receiver: %d sequence numbers per slot out of 1..%d", seqsPerSlot, MaxSeqsPerSlot)
	}
	words := (seqsPerSlot + 63) / 64
	spec, err := loadSpec()
	if err != nil {
		return nil, err
	}
	if err := spec.Variables["seen_words"].Set(uint32(words)); err != nil {
		return nil, fmt.Errorf("receiver: size bitmap: %w", err)
	}
	spec.Maps["rx_seen"].MaxEntries = uint32(Slots * words)
	r := &Receiver{words: words, attached: map[int]*rxAttachment{}}
	if err := spec.LoadAndAssign(&r.objs, nil); err != nil {
		return nil, loadErr("receiver", err)
	}
	if r.seen, err = r.objs.Seen.Memory(); err != nil {
		r.closeObjs()
		return nil, fmt.Errorf("receiver: map bitmap: %w", err)
	}
	return r, nil
}

// SeqsPerSlot is the size of each slot's bitmap in sequence numbers.
func (r *Receiver) SeqsPerSlot() uint64 { return r.words * 64 }

// Attach records the stream frames arriving at ifindex in slot (native
// XDP). The caller's thread must be in the interface's namespace.
// Interface indexes are per namespace and the receiver keys its slots by
// index alone: receivers in two namespaces with the same index need two
// Receivers. A veth peer redirecting into ifindex's peer needs this
// interface's NAPI, which an attached XDP program provides.
func (r *Receiver) Attach(ifindex int, slot int) (detach func() error, err error) {
	if slot < 0 || slot >= Slots {
		return nil, fmt.Errorf("receiver: slot %d out of 0..%d", slot, Slots-1)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if a, ok := r.attached[ifindex]; ok {
		return nil, fmt.Errorf("receiver: ifindex %d already feeds slot %d", ifindex, a.slot)
	}
	if err := r.objs.Slots.Put(uint32(ifindex), uint32(slot)); err != nil {
		return nil, fmt.Errorf("receiver: map ifindex %d to slot %d: %w", ifindex, slot, err)
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: r.objs.Prog, Interface: ifindex, Flags: link.XDPDriverMode})
	if err != nil {
		_ = r.objs.Slots.Delete(uint32(ifindex))
		return nil, fmt.Errorf("receiver: attach to ifindex %d: %w", ifindex, err)
	}
	// Frames a switch delivers with bpf_redirect_peer skip XDP: the same
	// receiver at tc ingress records those.
	tc, err := attachTCIngress(ifindex, r.objs.TC)
	if err != nil {
		l.Close()
		_ = r.objs.Slots.Delete(uint32(ifindex))
		return nil, fmt.Errorf("receiver: attach to tc ingress of ifindex %d: %w", ifindex, err)
	}
	a := &rxAttachment{slot: slot, link: l, tc: tc}
	r.attached[ifindex] = a
	return func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.attached[ifindex] != a {
			return nil // already detached
		}
		return r.detach(ifindex)
	}, nil
}

// detach needs r.mu.
func (r *Receiver) detach(ifindex int) error {
	a := r.attached[ifindex]
	delete(r.attached, ifindex)
	err := errors.Join(a.link.Close(), a.tc())
	if derr := r.objs.Slots.Delete(uint32(ifindex)); derr != nil && !errors.Is(derr, ebpf.ErrKeyNotExist) {
		err = errors.Join(err, derr)
	}
	if err != nil {
		return fmt.Errorf("receiver: detach from ifindex %d: %w", ifindex, err)
	}
	return nil
}

// Stats sums slot's per-CPU records.
func (r *Receiver) Stats(slot int) (SlotStats, error) {
	if slot < 0 || slot >= Slots {
		return SlotStats{}, fmt.Errorf("receiver: slot %d out of 0..%d", slot, Slots-1)
	}
	var perCPU []bpfBenchSlotStats
	if err := r.objs.Stats.Lookup(uint32(slot), &perCPU); err != nil {
		return SlotStats{}, fmt.Errorf("receiver: read slot %d: %w", slot, err)
	}
	return sumStats(perCPU), nil
}

func sumStats(perCPU []bpfBenchSlotStats) SlotStats {
	var s SlotStats
	var first, last, firstRARP uint64
	for _, c := range perCPU {
		s.Count += c.Count
		s.Dups += c.Dups
		s.Beyond += c.Beyond
		s.RARPs += c.Rarps
		if c.Count > 0 {
			s.MaxSeq = max(s.MaxSeq, c.MaxSeq)
			last = max(last, c.LastNs)
			if first == 0 || c.FirstNs < first {
				first = c.FirstNs
			}
		}
		if c.Rarps > 0 && (firstRARP == 0 || c.FirstRarpNs < firstRARP) {
			firstRARP = c.FirstRarpNs
		}
	}
	if s.Count > 0 {
		s.First, s.Last = datapath.KtimeToTime(first), datapath.KtimeToTime(last)
	}
	if s.RARPs > 0 {
		s.FirstRARP = datapath.KtimeToTime(firstRARP)
	}
	return s
}

// Seen returns the bitmap words of slot covering sequence numbers 0..n-1
// (bit i of word w is sequence number 64*w+i), or the whole bitmap when n
// is past it: sequence numbers beyond it are not recorded (see
// SlotStats.Beyond). Bits above n-1 in the last word are as recorded.
func (r *Receiver) Seen(slot int, n uint64) ([]uint64, error) {
	if slot < 0 || slot >= Slots {
		return nil, fmt.Errorf("receiver: slot %d out of 0..%d", slot, Slots-1)
	}
	words := make([]uint64, min((n+63)/64, r.words))
	if len(words) == 0 {
		return words, nil
	}
	// Little-endian host (bpfel): the map's bytes are the words.
	buf := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8)
	if _, err := r.seen.ReadAt(buf, int64(uint64(slot)*r.words*8)); err != nil {
		return nil, fmt.Errorf("receiver: read slot %d bitmap: %w", slot, err)
	}
	return words, nil
}

// Reset zeroes every slot's counters and bitmap. Call it between trials,
// when no stream is arriving.
func (r *Receiver) Reset() error {
	zero := make([]bpfBenchSlotStats, ebpf.MustPossibleCPU())
	for slot := range uint32(Slots) {
		if err := r.objs.Stats.Put(slot, zero); err != nil {
			return fmt.Errorf("receiver: zero slot %d: %w", slot, err)
		}
	}
	chunk := make([]byte, min(1<<20, r.seen.Size()))
	for off := uint32(0); off < r.seen.Size(); off += uint32(len(chunk)) {
		n := min(uint32(len(chunk)), r.seen.Size()-off)
		if _, err := r.seen.WriteAt(chunk[:n], int64(off)); err != nil {
			return fmt.Errorf("receiver: zero bitmap: %w", err)
		}
	}
	return nil
}

// Close detaches from every interface and releases the program and maps.
func (r *Receiver) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for ifindex := range r.attached {
		errs = append(errs, r.detach(ifindex))
	}
	errs = append(errs, r.closeObjs())
	return errors.Join(errs...)
}

func (r *Receiver) closeObjs() error {
	var errs []error
	for _, c := range []interface{ Close() error }{r.objs.Prog, r.objs.TC, r.objs.Slots, r.objs.Stats, r.objs.Seen} {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// attachTCIngress runs prog at tc ingress of ifindex: a tcx link, or where
// the kernel has no tcx a clsact filter. It returns the detach.
func attachTCIngress(ifindex int, prog *ebpf.Program) (func() error, error) {
	l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: ebpf.AttachTCXIngress})
	if err == nil {
		return l.Close, nil
	}
	if !errors.Is(err, ebpf.ErrNotSupported) {
		return nil, err
	}
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	if err := netlink.QdiscReplace(qdisc); err != nil {
		return nil, fmt.Errorf("add clsact qdisc: %w", err)
	}
	filter := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: ifindex, Parent: netlink.HANDLE_MIN_INGRESS,
			Handle: 1, Protocol: unix.ETH_P_ALL, Priority: 1},
		Fd: prog.FD(), Name: "bench_rx_tc", DirectAction: true,
	}
	if err := netlink.FilterReplace(filter); err != nil {
		return nil, fmt.Errorf("add BPF filter: %w", err)
	}
	return func() error { return netlink.QdiscDel(qdisc) }, nil
}
