package peer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// run runs a command to completion and returns its standard output; the
// error carries its standard error. env, when not nil, is added to the
// process environment.
func run(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = append(cmd.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, lastLines(msg, 5))
	}
	return stdout.String(), nil
}

// permanent wraps an error after which waitFor stops waiting.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// waitFor polls cond every interval until it is true, ctx ends, timeout
// passes or cond returns a permanent error; other errors count as "not
// yet" and the last one is reported on timeout.
func waitFor(ctx context.Context, timeout, interval time.Duration, cond func() (bool, error), what string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var lastErr error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		var p permanent
		if errors.As(err, &p) {
			return fmt.Errorf("waiting for %s: %w", what, p.error)
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("waiting for %s: %w (last error: %w)", what, ctx.Err(), lastErr)
			}
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(interval):
		}
	}
}

// lastLines keeps the end of a long message.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
