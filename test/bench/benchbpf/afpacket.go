package benchbpf

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PacketSender is the "afpacket" Engine, for kernels that refuse live-frame
// test runs: it builds the frames in user space, bit for bit what
// bench_gen makes (stamper), and sends them with sendmmsg through AF_PACKET
// sockets bound to the interface, past the qdisc (PACKET_QDISC_BYPASS).
//
// Why sendmmsg and not a PACKET_TX_RING: measured here (2 vCPUs, 60-byte
// frames into a veth with bench_rx on the peer, flat out for 1 s),
// sendmmsg sent 0.59 Mpps from one thread and 1.00 from two, a TPACKET_V2
// ring 0.56 and 0.89: the ring's zero-copy pages are copied anyway
// (skb_copy_ubufs) when the veth peer runs XDP, and the ring needs a flush
// and a wait for its slots on top.
//
// Why several threads: the kernel cost (an skb per frame, the peer's NAPI,
// run on the sending CPU) bounds one thread. The socket picks the device
// queue by the sending CPU, so senders on two CPUs feed two queues of a
// multi-queue veth and two NAPIs.
//
// It is not safe for concurrent use.
type PacketSender struct {
	next uint64 // the next sequence number
}

// NewPacketSender makes a sender whose sequence numbers start at 0. It
// holds no kernel resources between calls: each Send opens its sockets in
// the calling thread's namespace, so one sender serves interfaces in
// several.
func NewPacketSender() *PacketSender { return &PacketSender{} }

// Name is EngineAFPacket.
func (p *PacketSender) Name() string { return EngineAFPacket }

// Reset starts the sequence numbers at 0 again.
func (p *PacketSender) Reset() error {
	p.next = 0
	return nil
}

// Close releases nothing: Send keeps no socket.
func (p *PacketSender) Close() error { return nil }

const (
	// userBatch is how many frames one sendmmsg hands over: enough to
	// amortise the syscall, few enough (~0.3 ms) to stop close to a
	// deadline.
	userBatch = 256
	// retryTimeout bounds how long a batch waits for a device that will
	// not take frames.
	retryTimeout = 2 * time.Second
	// pacedPerThread is the highest rate one thread paces; faster rates
	// and flat out use a thread per CPU (at most maxThreads).
	pacedPerThread = 250_000
	maxThreads     = 4
)

// Send is Engine.Send. The rate holds within ~1% (Go's timers: bursts
// every 100 µs to 1 ms). "Sent" means taken by the device: when a veth's
// peer ring is full the socket reports it (ENOBUFS) and Send sends the
// frame again, so the sender slows down rather than drops; a peer without
// NAPI drops frames silently, which is what the receiver measures.
func (p *PacketSender) Send(ctx context.Context, ifindex int, t Template, rate int, duration time.Duration, maxFrames uint64) (uint64, error) {
	frame, err := t.Frame()
	if err != nil {
		return 0, err
	}
	threads := 1
	if rate <= 0 || rate > pacedPerThread {
		threads = min(runtime.NumCPU(), maxThreads)
	}
	// The sockets are opened here, in the caller's namespace; the threads
	// that use them may be anywhere.
	var txs []*mmsgTx
	defer func() {
		for _, tx := range txs {
			tx.close()
		}
	}()
	for range threads {
		tx, err := openMmsg(ifindex, frame, userBatch)
		if err != nil {
			return 0, fmt.Errorf("afpacket: ifindex %d: %w", ifindex, err)
		}
		txs = append(txs, tx)
	}

	seqs := &seqRange{next: p.next, limit: math.MaxUint64}
	if maxFrames > 0 {
		seqs.limit = p.next + maxFrames
	}
	st := newStamper(t)
	var (
		wg   sync.WaitGroup
		errs = make([]error, threads)
	)
	for i, tx := range txs {
		// Thread i paces its share of the rate; the shares add up.
		share := 0
		if rate > 0 {
			share = rate / threads
			if i < rate%threads {
				share++
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = pace(ctx, share, duration, 0, userBatch, func(batch uint64) (uint64, error) {
				seq, n := seqs.take(batch)
				if n == 0 {
					return 0, errAllSent
				}
				// Every sequence number taken is sent, or Send fails.
				return tx.send(n, seq, st)
			})
		}()
	}
	wg.Wait()
	sent := seqs.next - p.next
	p.next = seqs.next
	for _, err := range errs {
		if err != nil && !errors.Is(err, errAllSent) {
			return sent, fmt.Errorf("afpacket: ifindex %d: %w", ifindex, err)
		}
	}
	return sent, nil
}

var errAllSent = errors.New("all frames sent")

// seqRange hands out sequence numbers below limit to the sending threads.
type seqRange struct {
	mu          sync.Mutex
	next, limit uint64
}

// take reserves up to n sequence numbers and returns the first and how
// many; 0 when none are left.
func (r *seqRange) take(n uint64) (first, got uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	got = min(n, r.limit-r.next)
	first = r.next
	r.next += got
	return first, got
}

// stamper writes into a frame made by Template.Frame what bench_gen writes
// for a sequence number: the number (its low 32 bits), and with several
// sources the source MAC, the template's with seq % sources added to its
// low 24 bits (wrapping within them).
type stamper struct {
	src     [6]byte
	low     uint32 // the template source's low 24 bits
	sources uint64
}

func newStamper(t Template) stamper {
	s := stamper{sources: uint64(max(t.Sources, 1))}
	copy(s.src[:], t.Src)
	s.low = uint32(s.src[3])<<16 | uint32(s.src[4])<<8 | uint32(s.src[5])
	return s
}

func (s stamper) stamp(f []byte, seq uint64) {
	binary.BigEndian.PutUint32(f[SeqOffset:], uint32(seq))
	if s.sources > 1 {
		low := s.low + uint32(seq%s.sources)
		f[6], f[7], f[8] = s.src[0], s.src[1], s.src[2]
		f[9], f[10], f[11] = byte(low>>16), byte(low>>8), byte(low)
	}
}

// packetSocket opens a raw AF_PACKET socket that sends on ifindex and
// receives nothing (protocol 0), past the qdisc.
func packetSocket(ifindex int) (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	// No qdisc: a veth has none to speak of, and the generator it stands
	// in for has none either.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("PACKET_QDISC_BYPASS: %w", err)
	}
	return fd, nil
}

func bindPacket(fd, ifindex int) error {
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifindex}); err != nil {
		return fmt.Errorf("bind to ifindex %d: %w", ifindex, err)
	}
	return nil
}

// mmsgTx sends with sendmmsg from frames in user memory.
type mmsgTx struct {
	fd     int
	frames [][]byte
	iovs   []unix.Iovec
	msgs   []mmsghdr
}

// mmsghdr is struct mmsghdr (x/sys/unix has none).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

func openMmsg(ifindex int, frame []byte, batch int) (*mmsgTx, error) {
	fd, err := packetSocket(ifindex)
	if err != nil {
		return nil, err
	}
	if err := bindPacket(fd, ifindex); err != nil {
		unix.Close(fd)
		return nil, err
	}
	m := &mmsgTx{fd: fd, frames: make([][]byte, batch), iovs: make([]unix.Iovec, batch), msgs: make([]mmsghdr, batch)}
	for i := range batch {
		m.frames[i] = append([]byte(nil), frame...)
		m.iovs[i].Base = &m.frames[i][0]
		m.iovs[i].SetLen(len(frame))
		m.msgs[i].hdr.Iov = &m.iovs[i]
		m.msgs[i].hdr.Iovlen = 1
	}
	return m, nil
}

// send sends n frames, sequence numbers from seq on, all of them unless
// the device refuses one for retryTimeout or the socket fails.
func (m *mmsgTx) send(n, seq uint64, st stamper) (uint64, error) {
	var done uint64
	for done < n {
		k := min(n-done, uint64(len(m.frames)))
		for i := range k {
			st.stamp(m.frames[i], seq+done+i)
		}
		var sent uint64
		var refusedSince time.Time
		for sent < k {
			r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(m.fd), uintptr(unsafe.Pointer(&m.msgs[sent])), uintptr(k-sent), 0, 0, 0)
			switch errno {
			case 0:
				sent += uint64(r)
				refusedSince = time.Time{}
			case syscall.ENOBUFS, syscall.EAGAIN:
				// The device (a veth whose peer's ring is full) dropped
				// the frame: send it again once the peer has caught up.
				if refusedSince.IsZero() {
					refusedSince = time.Now()
				} else if time.Since(refusedSince) > retryTimeout {
					return done + sent, fmt.Errorf("sendmmsg: the device refused frames for %v: %w", retryTimeout, errno)
				}
				runtime.Gosched()
			case syscall.EINTR:
			default:
				return done + sent, fmt.Errorf("sendmmsg: %w", errno)
			}
		}
		done += k
	}
	return done, nil
}

func (m *mmsgTx) close() { unix.Close(m.fd) }
