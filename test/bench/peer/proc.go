package peer

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// child is a long-running process this package started and reaps.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result, valid once done is closed
}

// startChild starts argv with env added to the environment and stdout and
// stderr going to out. It forks from an OS thread locked to the goroutine
// that then waits for the child, which buys two things:
//   - cpus, when given, are set on that thread before the fork, so the child
//     (and whatever it execs) inherits the affinity and nothing else in this
//     process is pinned;
//   - the child gets SIGTERM when that thread ends (PR_SET_PDEATHSIG), which
//     happens only after the child is reaped or when this process dies, so a
//     harness killed outright does not leave a switch running.
//
// The goroutine returns still locked, so the runtime ends the thread rather
// than reusing it with a changed affinity.
func startChild(name string, argv, env []string, out io.Writer, cpus []int) (*child, error) {
	c := &child{name: name, done: make(chan struct{})}
	c.cmd = exec.Command(argv[0], argv[1:]...)
	c.cmd.Env = append(os.Environ(), env...)
	c.cmd.Stdout, c.cmd.Stderr = out, out
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if len(cpus) > 0 {
			var set unix.CPUSet
			for _, cpu := range cpus {
				set.Set(cpu)
			}
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				started <- fmt.Errorf("pin %s to CPUs %v: %w", name, cpus, err)
				return
			}
		}
		if err := c.cmd.Start(); err != nil {
			started <- fmt.Errorf("start %s: %w", name, err)
			return
		}
		started <- nil
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return c, nil
}

// pid is the child's process ID.
func (c *child) pid() int { return c.cmd.Process.Pid }

// exited reports whether the child has exited (and been reaped).
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// waitExit waits up to d for the child to exit.
func (c *child) waitExit(d time.Duration) bool {
	select {
	case <-c.done:
		return true
	case <-time.After(d):
		return false
	}
}

// terminate ends the child: SIGTERM, then SIGKILL after grace.
func (c *child) terminate(grace time.Duration) error {
	if c.exited() {
		return nil
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s (pid %d): %w", c.name, c.pid(), err)
	}
	if c.waitExit(grace) {
		return nil
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s (pid %d): %w", c.name, c.pid(), err)
	}
	if c.waitExit(5 * time.Second) {
		return nil
	}
	return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", c.name, c.pid())
}
