package control

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/testenv"
)

// backend is a stand-in for the daemon: the API layer is under test here,
// the daemon's behaviour is tested end to end under test/.
type backend struct {
	mu     sync.Mutex
	active string
	manual bool
	set    []SetUplinkRequest // what SetUplink was asked
	calls  []string           // the add and remove calls
}

func (b *backend) Status(ctx context.Context) (Status, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	g := GroupStatus{Name: "red", Active: b.active}
	if b.manual {
		g.Manual = b.active
	}
	return Status{Version: "test", Groups: []GroupStatus{g}}, nil
}

func (b *backend) Guests(ctx context.Context) ([]Guest, error) {
	return []Guest{{Group: "red", MAC: "02:00:00:00:00:0a", Port: "vnet0"}}, nil
}

func (b *backend) Counters(ctx context.Context) ([]PortCounters, error) {
	return nil, fmt.Errorf("counters unreadable")
}

func (b *backend) SetActive(ctx context.Context, group, uplink string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case group != "red":
		return fmt.Errorf("group %q: %w", group, ErrNotFound)
	case uplink == "down0":
		return fmt.Errorf("%w: uplink %s has no carrier", ErrRefused, uplink)
	case uplink != "eth1" && uplink != "eth2":
		return fmt.Errorf("uplink %q: %w", uplink, ErrNotFound)
	}
	b.active, b.manual = uplink, true
	return nil
}

func (b *backend) ClearManual(ctx context.Context, group string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.manual = false
	return nil
}

func (b *backend) SetUplink(ctx context.Context, group, uplink string, req SetUplinkRequest) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if uplink != "eth1" {
		return fmt.Errorf("uplink %q: %w", uplink, ErrNotFound)
	}
	b.set = append(b.set, req)
	return nil
}

func (b *backend) AddUplink(ctx context.Context, group string, req AddUplinkRequest) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, fmt.Sprintf("add-uplink %s %s", group, req.Name))
	return nil
}

func (b *backend) RemoveUplink(ctx context.Context, group, uplink string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, fmt.Sprintf("remove-uplink %s %s", group, uplink))
	return nil
}

func (b *backend) AddPort(ctx context.Context, group, port string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, fmt.Sprintf("add-port %s %s", group, port))
	return nil
}

func (b *backend) RemovePort(ctx context.Context, group, port string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if port == "vnet9" {
		return fmt.Errorf("port %q: %w", port, ErrNotFound)
	}
	b.calls = append(b.calls, fmt.Sprintf("remove-port %s %s", group, port))
	return nil
}

func (b *backend) Events(ctx context.Context, since uint64, wait time.Duration) ([]FailoverEvent, uint64, error) {
	if since >= 2 {
		select { // nothing newer: hold the answer as the daemon does
		case <-time.After(wait):
		case <-ctx.Done():
		}
		return nil, 2, nil
	}
	return []FailoverEvent{{Seq: 1, Version: 2, Group: "red", From: "eth1", To: "eth2", Reason: "carrier lost"}}, 2, nil
}

func (b *backend) Reload(ctx context.Context) ([]string, error) {
	return []string{"group red: uplink eth3 added"}, nil
}

func (b *backend) MoveGuest(ctx context.Context, group string, req MoveGuestRequest) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, fmt.Sprintf("move-guest %s %s@%d %s", group, req.MAC, req.VLAN, req.Uplink))
	return nil
}

func serve(t *testing.T, b *backend) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "uplinkd.sock")
	s, err := Listen(path, b, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve() }()
	t.Cleanup(func() { s.Close() })
	return path
}

func TestAPI(t *testing.T) {
	testenv.RequireRoot(t, "the socket admits root only")
	testBackend := &backend{active: "eth1"}
	path := serve(t, testBackend)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode %o, want 600", perm)
	}
	if _, err := Listen(path, &backend{}, slog.Default()); err == nil || !strings.Contains(err.Error(), "another uplinkd") {
		t.Errorf("second listener on a live socket: %v", err)
	}

	c := NewClient(path)
	st, err := c.Status()
	if err != nil || st.Groups[0].Active != "eth1" {
		t.Fatalf("status = %+v, %v", st, err)
	}
	if st, err = c.SetActive("red", "eth2"); err != nil || st.Groups[0].Active != "eth2" || st.Groups[0].Manual != "eth2" {
		t.Errorf("set-active = %+v, %v", st, err)
	}
	if st, err = c.ClearManual("red"); err != nil || st.Groups[0].Manual != "" {
		t.Errorf("auto = %+v, %v", st, err)
	}
	for _, tc := range []struct{ group, uplink, want string }{
		{"blue", "eth1", `group "blue": not found`},
		{"red", "down0", "refused: uplink down0 has no carrier"},
		{"red", "eth9", `uplink "eth9": not found`},
		{"red", "", "no uplink given"},
	} {
		if _, err := c.SetActive(tc.group, tc.uplink); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("set-active %s %s: %v, want %q", tc.group, tc.uplink, err, tc.want)
		}
	}
	prio := 5
	if _, err := c.SetUplink("red", "eth1", SetUplinkRequest{Priority: &prio, State: "standby"}); err != nil {
		t.Errorf("set uplink: %v", err)
	}
	if len(testBackend.set) != 1 || *testBackend.set[0].Priority != 5 || testBackend.set[0].State != "standby" {
		t.Errorf("backend was asked %+v", testBackend.set)
	}
	if _, err := c.SetUplink("red", "eth1", SetUplinkRequest{}); err == nil || !strings.Contains(err.Error(), "give a priority or a state") {
		t.Errorf("empty set uplink: %v", err)
	}
	if _, err := c.SetUplink("red", "eth7", SetUplinkRequest{State: "usable"}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("set unknown uplink: %v", err)
	}
	c.AddUplink("red", AddUplinkRequest{Name: "eth3"})
	c.RemoveUplink("red", "eth3")
	c.AddPort("red", "vnet7")
	if e, err := c.Events(0, 0); err != nil || len(e.Events) != 1 || e.Version != 2 || e.Events[0].To != "eth2" {
		t.Errorf("Events(0) = %+v, %v", e, err)
	}
	start := time.Now()
	if e, err := c.Events(2, 300*time.Millisecond); err != nil || len(e.Events) != 0 || time.Since(start) < 250*time.Millisecond {
		t.Errorf("Events(2, wait) = %+v, %v after %v: want nothing, held for the wait", e, err, time.Since(start))
	}
	if r, err := c.Reload(); err != nil || len(r.Changes) != 1 {
		t.Errorf("Reload = %+v, %v", r, err)
	}
	c.RemovePort("red", "vnet7")
	c.MoveGuest("red", MoveGuestRequest{MAC: "02:00:00:00:00:01", VLAN: 10, Uplink: "eth2"})
	if want := []string{"add-uplink red eth3", "remove-uplink red eth3", "add-port red vnet7", "remove-port red vnet7", "move-guest red 02:00:00:00:00:01@10 eth2"}; !slices.Equal(testBackend.calls, want) {
		t.Errorf("calls %v, want %v", testBackend.calls, want)
	}
	if _, err := c.RemovePort("red", "vnet9"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("remove unknown port: %v", err)
	}
	if _, err := c.Counters(); err == nil || !strings.Contains(err.Error(), "counters unreadable") {
		t.Errorf("counters error not passed on: %v", err)
	}
	if g, err := c.Guests(); err != nil || len(g) != 1 {
		t.Errorf("guests = %v, %v", g, err)
	}
	if _, err := NewClient(path + ".missing").Status(); err == nil || !strings.Contains(err.Error(), "cannot reach uplinkd") {
		t.Errorf("missing socket: %v", err)
	}
}

// A non-root caller is refused even when the socket's mode lets it in.
func TestNonRootRefused(t *testing.T) {
	if os.Getenv("UPLINKD_CONTROL_CLIENT") != "" {
		_, err := NewClient(os.Getenv("UPLINKD_CONTROL_CLIENT")).Status()
		fmt.Println("client error:", err)
		return
	}
	testenv.RequireRoot(t, "needs root to run a client as another user")
	path := serve(t, &backend{active: "eth1"})
	for _, p := range []string{filepath.Dir(filepath.Dir(path)), filepath.Dir(path)} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	// The test binary lives in a root-only build directory: copy it out.
	bin := filepath.Join(t.TempDir(), "client")
	for _, d := range []string{filepath.Dir(bin), filepath.Dir(filepath.Dir(bin))} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestNonRootRefused$")
	cmd.Env = append(os.Environ(), "UPLINKD_CONTROL_CLIENT="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "only root may connect (peer uid 65534)") {
		t.Errorf("non-root client was not refused:\n%s", out)
	}
}
