package linkwatch

import (
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// scanner reads the carrier_changes counter of every polled interface each
// interval and wakes the runner only when a counter moved (or could not be
// read). Its clock is a timerfd read through Go's network poller: Go's own
// timers sleep in epoll with millisecond resolution while the process is
// idle, which would add up to a millisecond to every detection, while an
// expiring timerfd wakes epoll at once. (A thread of its own in nanosleep
// is as precise but costs more: the runtime hands its P to another thread
// and takes it back on every tick.)
type scanner struct {
	interval time.Duration
	moved    chan struct{} // capacity 1
	quit     chan struct{}
	done     chan struct{}
	clock    *os.File // timerfd, nil when it could not be made

	mu      sync.Mutex
	files   map[string]*scanFile
	changed chan struct{} // capacity 1: files went from none to some
}

// scanFile is the scanner's own descriptor (a dup) of one interface's
// carrier_changes: the runner may close its own at any time.
type scanFile struct {
	fd     int
	index  int
	last   uint64
	failed bool // reported once; not read again until re-synced
}

// newScanner starts a scanner; without a timerfd (which every supported
// kernel has) it does nothing and the runner's own tick polls.
func newScanner(interval time.Duration, log *slog.Logger) *scanner {
	s := &scanner{
		interval: interval,
		moved:    make(chan struct{}, 1),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		files:    map[string]*scanFile{},
		changed:  make(chan struct{}, 1),
	}
	clock, err := newClock(interval)
	if err != nil {
		log.Warn("no timerfd: carrier polling falls back to Go timers (about 1 ms coarser)", "err", err)
		close(s.done)
		return s
	}
	s.clock = clock
	go s.run()
	return s
}

// newClock returns a non-blocking periodic timerfd as an *os.File, which
// Go's poller waits on.
func newClock(interval time.Duration) (*os.File, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	ts := unix.NsecToTimespec(interval.Nanoseconds())
	if err := unix.TimerfdSettime(fd, 0, &unix.ItimerSpec{Interval: ts, Value: ts}, nil); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "linkwatch-clock"), nil
}

func (s *scanner) run() {
	defer close(s.done)
	var expirations [8]byte
	for {
		s.mu.Lock()
		idle := len(s.files) == 0
		s.mu.Unlock()
		if idle {
			select {
			case <-s.quit:
				return
			case <-s.changed:
			}
			continue
		}
		if _, err := s.clock.Read(expirations[:]); err != nil {
			return // closed by stop
		}
		if s.scan() {
			select {
			case s.moved <- struct{}{}:
			default:
			}
		}
	}
}

// scan reads every counter once and reports whether any moved.
func (s *scanner) scan() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	moved := false
	for _, f := range s.files {
		if f.failed {
			continue
		}
		v, err := preadUint(f.fd)
		if err != nil {
			f.failed, moved = true, true
			continue
		}
		if v != f.last {
			f.last, moved = v, true
		}
	}
	return moved
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
		var v uint64
		if st, ok := published[name]; ok && st.Exists && st.Index == f.index {
			v = uint64(st.CarrierChanges)
		} else if v, err = preadUint(fd); err != nil {
			unix.Close(fd)
			continue
		}
		s.files[name] = &scanFile{fd: fd, index: f.index, last: v}
	}
	if wasIdle && len(s.files) > 0 {
		select {
		case s.changed <- struct{}{}:
		default:
		}
	}
}

func (s *scanner) stop() {
	close(s.quit)
	if s.clock != nil {
		s.clock.Close()
	}
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, f := range s.files {
		unix.Close(f.fd)
		delete(s.files, name)
	}
}
