package harness

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The command name may hold spaces and parentheses; utime and stime are
// counted after the last ')'.
func TestStatTicks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stat")
	line := "4242 (odd) name (x) S 1 4242 4242 0 -1 4194560 500 0 0 0 123 45 0 0 20 0 9 0 100 1000000 900 18446744073709551615\n"
	if err := os.WriteFile(path, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := statTicks(path)
	if err != nil || got != 168 {
		t.Errorf("statTicks = %d, %v; want 123+45 = 168", got, err)
	}
	if err := os.WriteFile(path, []byte("4242 (short) S 1 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := statTicks(path); err == nil {
		t.Error("statTicks accepted a line without utime and stime")
	}
}

func TestStatusField(t *testing.T) {
	status := []byte("Name:\tuplinkd\nVmHWM:\t   43328 kB\nVmRSS:\t   36404 kB\nvoluntary_ctxt_switches:\t17\n")
	for key, want := range map[string]uint64{"VmRSS": 36404, "VmHWM": 43328, "voluntary_ctxt_switches": 17, "VmSwap": 0} {
		if got := statusField(status, key); got != want {
			t.Errorf("%s = %d, want %d", key, got, want)
		}
	}
}

// measureIdle on this test's own process, with one goroutine spinning
// through the window: the process shows CPU time, its busiest thread
// most of it, and memory.
func TestMeasureIdleSeesWork(t *testing.T) {
	const window = 400 * time.Millisecond
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	w, err := measureIdle(context.Background(), os.Getpid(), window)
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", w)
	if w.Seconds < window.Seconds() || w.Seconds > 10*window.Seconds() {
		t.Errorf("window of %.3f s, want about %.3f s", w.Seconds, window.Seconds())
	}
	// A spinning goroutine holds a CPU; even on a busy shared machine it
	// gets a good share of one.
	if w.CPUPercent < 10 || w.BusiestThreadPercent < 10 || w.BusiestThreadPercent > w.CPUPercent+1 {
		t.Errorf("CPU %.1f%%, busiest thread %.1f%%: want both >= 10%% and the thread within the process", w.CPUPercent, w.BusiestThreadPercent)
	}
	if w.RSSBytes == 0 || w.HWMBytes < w.RSSBytes || w.Threads < 2 {
		t.Errorf("RSS %d, peak %d, %d threads: want memory and a few threads", w.RSSBytes, w.HWMBytes, w.Threads)
	}
}
