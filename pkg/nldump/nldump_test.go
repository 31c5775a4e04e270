package nldump

import (
	"errors"
	"fmt"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestRetry(t *testing.T) {
	refused := errors.New("operation not permitted")
	interrupted := fmt.Errorf("list addresses: %w", netlink.ErrDumpInterrupted)
	for _, tc := range []struct {
		name      string
		results   []error // what each attempt returns, in order
		wantCalls int
		wantErr   error
	}{
		{"complete at once", []error{nil}, 1, nil},
		{"interrupted, then complete", []error{interrupted, interrupted, nil}, 3, nil},
		{"interrupted every time", []error{interrupted, interrupted, interrupted, interrupted, nil}, Attempts, netlink.ErrDumpInterrupted},
		{"other error not retried", []error{refused, nil}, 1, refused},
		{"interrupted, then another error", []error{interrupted, refused, nil}, 2, refused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			list, err := Retry(func() ([]int, error) {
				calls++
				return []int{calls}, tc.results[calls-1]
			})
			if calls != tc.wantCalls {
				t.Errorf("dump ran %d times, want %d", calls, tc.wantCalls)
			}
			if len(list) != 1 || list[0] != calls {
				t.Errorf("list %v, want the last attempt's [%d]", list, calls)
			}
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestInterrupted(t *testing.T) {
	if !Interrupted(fmt.Errorf("x: %w", netlink.ErrDumpInterrupted)) {
		t.Error("a wrapped ErrDumpInterrupted is not seen as interrupted")
	}
	if Interrupted(nil) || Interrupted(errors.New("results may be incomplete or inconsistent")) {
		t.Error("nil or a look-alike message is seen as interrupted")
	}
}
