package benchbpf

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Forwarder is bench_fwd, the upper bound for an XDP switch: every frame
// arriving at its input goes to its one output through a devmap, with no
// parsing and no lookups. One Forwarder forwards one direction to one
// output; make another for the way back.
type Forwarder struct {
	objs fwdObjects
	mu   sync.Mutex
	out  int
	in   map[int]link.Link
}

type fwdObjects struct {
	Prog *ebpf.Program `ebpf:"bench_fwd"`
	Map  *ebpf.Map     `ebpf:"fwd_map"`
}

// NewForwarder loads the forwarder.
func NewForwarder() (*Forwarder, error) {
	spec, err := loadSpec()
	if err != nil {
		return nil, err
	}
	f := &Forwarder{in: map[int]link.Link{}}
	if err := spec.LoadAndAssign(&f.objs, nil); err != nil {
		return nil, loadErr("forwarder", err)
	}
	return f, nil
}

// Attach forwards every frame arriving at in to out (native XDP on in).
// Both are resolved in the calling thread's namespace (the devmap entry
// too). Several inputs may share the Forwarder's one output. A veth out
// delivers only if its peer has NAPI (an XDP program, e.g. a Receiver).
func (f *Forwarder) Attach(in, out int) (detach func() error, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.out != 0 && f.out != out {
		return nil, fmt.Errorf("forwarder: output is ifindex %d already, not %d (one output per Forwarder)", f.out, out)
	}
	if _, ok := f.in[in]; ok {
		return nil, fmt.Errorf("forwarder: already attached to ifindex %d", in)
	}
	if f.out == 0 {
		if err := f.objs.Map.Put(uint32(0), uint32(out)); err != nil {
			return nil, fmt.Errorf("forwarder: set output ifindex %d: %w", out, err)
		}
		f.out = out
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: f.objs.Prog, Interface: in, Flags: link.XDPDriverMode})
	if err != nil {
		f.releaseOutput()
		return nil, fmt.Errorf("forwarder: attach to ifindex %d: %w", in, err)
	}
	f.in[in] = l
	return func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.in[in] != l {
			return nil // already detached
		}
		return f.detach(in)
	}, nil
}

// detach needs f.mu.
func (f *Forwarder) detach(in int) error {
	err := f.in[in].Close()
	delete(f.in, in)
	f.releaseOutput()
	if err != nil {
		return fmt.Errorf("forwarder: detach from ifindex %d: %w", in, err)
	}
	return nil
}

// releaseOutput frees the output once no input uses it; needs f.mu.
func (f *Forwarder) releaseOutput() {
	if len(f.in) == 0 && f.out != 0 {
		_ = f.objs.Map.Delete(uint32(0))
		f.out = 0
	}
}

// Close detaches from every input and releases the program and map.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	for in := range f.in {
		errs = append(errs, f.detach(in))
	}
	errs = append(errs, f.objs.Prog.Close(), f.objs.Map.Close())
	return errors.Join(errs...)
}
