package harness

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/test/bench/report"
)

// userHZ is the unit of /proc/stat's times (USER_HZ): 100 on every Linux
// architecture Go runs on.
const userHZ = 100

// cpuTicks is the aggregate "cpu" line of /proc/stat, cumulative.
type cpuTicks report.CPUTicks

func readCPUTicks() (cpuTicks, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return cpuTicks{}, fmt.Errorf("cpu times: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return cpuTicks{}, fmt.Errorf("cpu times: /proc/stat is empty: %w", sc.Err())
	}
	return parseCPUTicks(sc.Text())
}

// parseCPUTicks parses "cpu  user nice system idle iowait irq softirq
// steal [guest guest_nice]"; guest time is already in user.
func parseCPUTicks(line string) (cpuTicks, error) {
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return cpuTicks{}, fmt.Errorf("cpu times: unexpected line %q", line)
	}
	var v [8]uint64
	for i := range v {
		n, err := strconv.ParseUint(fields[1+i], 10, 64)
		if err != nil {
			return cpuTicks{}, fmt.Errorf("cpu times: field %d of %q: %w", i+1, line, err)
		}
		v[i] = n
	}
	return cpuTicks{User: v[0], Nice: v[1], System: v[2], Idle: v[3], IOWait: v[4], IRQ: v[5], SoftIRQ: v[6], Steal: v[7]}, nil
}

// since is t less an earlier reading; a counter that went backwards (a
// CPU taken offline) counts 0.
func (t cpuTicks) since(before cpuTicks) report.CPUTicks {
	d := func(a, b uint64) uint64 {
		if a < b {
			return 0
		}
		return a - b
	}
	return report.CPUTicks{User: d(t.User, before.User), Nice: d(t.Nice, before.Nice), System: d(t.System, before.System),
		Idle: d(t.Idle, before.Idle), IOWait: d(t.IOWait, before.IOWait), IRQ: d(t.IRQ, before.IRQ),
		SoftIRQ: d(t.SoftIRQ, before.SoftIRQ), Steal: d(t.Steal, before.Steal)}
}

// processCPUNs is this process's CPU time in ns (0 if unknown), every
// thread's: the traffic engine may send from threads of its own.
func processCPUNs() uint64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_PROCESS_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return uint64(ts.Nano())
}

// ksoftirqdNs is the CPU time in ns of every ksoftirqd thread: the
// softirq work the kernel deferred from where it was raised.
func ksoftirqdNs() (uint64, error) {
	comms, err := filepath.Glob("/proc/[0-9]*/comm")
	if err != nil {
		return 0, err
	}
	var total uint64
	for _, comm := range comms {
		name, err := os.ReadFile(comm)
		if err != nil || !strings.HasPrefix(string(name), "ksoftirqd/") {
			continue // gone, or not ksoftirqd
		}
		b, err := os.ReadFile(filepath.Join(filepath.Dir(comm), "schedstat"))
		if err != nil {
			return 0, fmt.Errorf("ksoftirqd cpu time: %w", err)
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return 0, fmt.Errorf("ksoftirqd cpu time: empty %s", filepath.Dir(comm))
		}
		ns, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("ksoftirqd cpu time: %w", err)
		}
		total += ns
	}
	return total, nil
}
