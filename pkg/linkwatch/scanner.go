package linkwatch

import (
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// scanner reads the carrier_changes counter of every polled interface each
// interval and wakes the runner only when a counter moved (or could not be
// read).
//
// It owns one OS thread that sleeps in a blocking read of a periodic
// timerfd and reads the counters with raw system calls, which keep the
// thread's P instead of handing it to the scheduler and taking it back:
// measured on a 2-vCPU VM, a tick costs ~20 µs this way and ~55 µs through
// the runtime (Go's netpoller, or a plain syscall on a locked thread), and
// Go's own timers sleep with millisecond resolution while the process is
// idle. The P the scanner holds is paid for with one more GOMAXPROCS, so
// the rest of the process keeps its parallelism (and a 1-CPU host is not
// starved).
type scanner struct {
	interval time.Duration
	moved    chan struct{} // capacity 1
	// onLost, if set, is called on the scanner's thread for each
	// interface whose counter says its carrier just went.
	onLost func(name string)
	quit   atomic.Bool
	done   chan struct{}
	clock  int // timerfd; -1 when it could not be made

	mu      sync.Mutex
	files   map[string]*scanFile
	changed chan struct{} // capacity 1: files went from none to some
}

// scanFile is the scanner's own descriptor (a dup) of one interface's
// carrier_changes: the runner may close its own at any time.
type scanFile struct {
	fd      int
	index   int
	last    uint64
	carrier bool // at last, when known
	known   bool
	failed  bool // reported once; not read again until re-synced
}

// procsMu makes GOMAXPROCS's read-modify-write one step: each running
// scanner owns one extra P.
var procsMu sync.Mutex

func addProc(delta int) {
	procsMu.Lock()
	defer procsMu.Unlock()
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + delta)
}

// newScanner starts a scanner; without a timerfd (which every supported
// kernel has) it does nothing and the runner's own tick polls.
func newScanner(interval time.Duration, onLost func(string), log *slog.Logger) *scanner {
	s := &scanner{
		interval: interval,
		onLost:   onLost,
		moved:    make(chan struct{}, 1),
		done:     make(chan struct{}),
		files:    map[string]*scanFile{},
		changed:  make(chan struct{}, 1),
		clock:    -1,
	}
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC)
	if err == nil {
		ts := unix.NsecToTimespec(interval.Nanoseconds())
		if err = unix.TimerfdSettime(fd, 0, &unix.ItimerSpec{Interval: ts, Value: ts}, nil); err != nil {
			unix.Close(fd)
		}
	}
	if err != nil {
		log.Warn("no timerfd: carrier polling falls back to Go timers (about 1 ms coarser)", "err", err)
		close(s.done)
		return s
	}
	s.clock = fd
	addProc(1)
	go s.run()
	return s
}

func (s *scanner) run() {
	defer close(s.done)
	defer addProc(-1)
	// The thread is the scanner's alone; it is never unlocked, so it ends
	// with the goroutine.
	runtime.LockOSThread()
	var expirations [8]byte
	for {
		s.mu.Lock()
		idle := len(s.files) == 0
		s.mu.Unlock()
		if idle {
			// Nothing to read: wait in the scheduler, P released, until
			// sync adds a file or stop asks to end.
			<-s.changed
		} else {
			_, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(s.clock), uintptr(unsafe.Pointer(&expirations[0])), 8)
			if errno != 0 && errno != unix.EINTR && errno != unix.EAGAIN {
				return
			}
		}
		if s.quit.Load() {
			return
		}
		if idle {
			continue
		}
		moved, lost := s.scan()
		// The carrier losses first: the caller moves traffic off them
		// before the runner (and the daemon) even wake up.
		for _, name := range lost {
			s.onLost(name)
		}
		if moved {
			select {
			case s.moved <- struct{}{}:
			default:
			}
		}
	}
}

// scan reads every counter once and reports whether any moved, and (with
// onLost set) which interfaces lost their carrier: transitions alternate,
// so an odd step from a known carrier means it went (a flap, an even
// step, leaves the carrier as it was).
func (s *scanner) scan() (moved bool, lost []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, f := range s.files {
		if f.failed {
			continue
		}
		v, err := rawPreadUint(f.fd)
		if err != nil {
			f.failed, moved = true, true
			continue
		}
		if v == f.last {
			continue
		}
		if (v-f.last)%2 == 1 {
			if f.known && f.carrier && s.onLost != nil {
				lost = append(lost, name)
			}
			f.carrier = !f.carrier
		}
		f.last, moved = v, true
	}
	return moved, lost
}

// rawPreadUint is preadUint without the scheduler's round trip: a sysfs
// read of carrier_changes does not block.
func rawPreadUint(fd int) (uint64, error) {
	var buf [24]byte
	n, _, errno := unix.RawSyscall6(unix.SYS_PREAD64, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return parseSysfsUint(buf[:n])
}

// sync makes the scanner watch exactly the open files among files. A new
// file's baseline is the counter the runner last published for it, so a
// change between the runner's read and this one is still seen as a move.
func (s *scanner) sync(files map[string]*sysfsFiles, published map[string]State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wasIdle := len(s.files) == 0
	for name, sf := range s.files {
		f := files[name]
		if f == nil || !f.open || f.index != sf.index || sf.failed {
			unix.Close(sf.fd)
			delete(s.files, name)
		}
	}
	for name, f := range files {
		if !f.open || s.files[name] != nil {
			continue
		}
		fd, err := unix.FcntlInt(uintptr(f.changes), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			continue // the runner's own tick still polls it
		}
		sf := &scanFile{fd: fd, index: f.index}
		if st, ok := published[name]; ok && st.Exists && st.Index == f.index {
			sf.last, sf.carrier, sf.known = uint64(st.CarrierChanges), st.Carrier, true
		} else if sf.last, err = preadUint(fd); err != nil {
			unix.Close(fd)
			continue
		} else if c, err := preadUint(f.carrier); err == nil {
			// Not published yet: read the carrier, so that a loss is
			// reported from the first scan (unknown, it never would be).
			sf.carrier, sf.known = c == 1, true
		}
		s.files[name] = sf
	}
	if wasIdle && len(s.files) > 0 {
		select {
		case s.changed <- struct{}{}:
		default:
		}
	}
}

// stop ends the scanner within one interval (its thread wakes at the next
// tick and sees quit) and closes its files.
func (s *scanner) stop() {
	s.quit.Store(true)
	select {
	case s.changed <- struct{}{}:
	default:
	}
	<-s.done
	if s.clock >= 0 {
		unix.Close(s.clock)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, f := range s.files {
		unix.Close(f.fd)
		delete(s.files, name)
	}
}

// syncScan hands the open files to the scanner. Without netlink the
// runner's own tick is the poll (existence included) at PollInterval, and
// the scanner stays idle.
func (r *runner) syncScan() {
	if !r.w.opts.DisableNetlink {
		r.scan.sync(r.files, r.last)
	}
}
