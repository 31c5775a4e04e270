package testenv

import (
	"bytes"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const importPath = "github.com/uplinkd/uplinkd/test/testenv"

// TestOnlyTestsImport: the product (pkg/, cmd/) imports testenv from its
// tests only.
func TestOnlyTestsImport(t *testing.T) {
	for _, dir := range []string{"../../pkg", "../../cmd"} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			for _, imp := range f.Imports {
				if p, _ := strconv.Unquote(imp.Path.Value); p == importPath {
					t.Errorf("%s imports %s: only tests may", path, importPath)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestNamespaceVethCapture: a namespace exists while the test runs and is
// gone after; a veth pair crosses two of them; a tagged frame sent into
// one end is captured at the other with its tag back in place, and the
// sending end's capture does not see it.
func TestNamespaceVethCapture(t *testing.T) {
	RequireRoot(t, "needs root: network namespaces")
	var a, b *Netns
	t.Run("setup", func(t *testing.T) {
		a = NewNetns(t, UniqueName("ulxma"))
		if _, err := netns.GetFromName(a.Name); err != nil {
			t.Fatalf("namespace %s not there: %v", a.Name, err)
		}
	})
	if _, err := netns.GetFromName(a.Name); err == nil {
		t.Fatalf("namespace %s still there after its test", a.Name)
	}

	a = NewNetns(t, UniqueName("ulxma"))
	b = NewNetns(t, UniqueName("ulxmb"))
	txIndex, rxIndex := AddVeth(t, a, Veth{Name: "ulxm-tx", Peer: "ulxm-rx", PeerNS: b})
	WaitUp(t, a, "ulxm-tx")
	WaitUp(t, b, "ulxm-rx")

	var rx, tx *Capture
	var send int
	In(t, b.Handle, func() { rx = OpenCapture(t, rxIndex, CaptureOptions{Timeout: 100 * time.Millisecond}) })
	In(t, a.Handle, func() {
		tx = OpenCapture(t, txIndex, CaptureOptions{})
		var err error
		if send, err = PacketSocket(txIndex, 0); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { unix.Close(send) })

	frame := append(bytes.Repeat([]byte{0xff}, 6), 0x02, 0, 0, 0, 0, 1)
	frame = append(frame, 0x81, 0x00, 0x00, 0x07, 0x88, 0xb5) // VLAN 7, local experimental type
	frame = append(frame, bytes.Repeat([]byte{0xab}, 46)...)
	if err := unix.Sendto(send, frame, 0, &unix.SockaddrLinklayer{Ifindex: txIndex, Halen: 6}); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for range 20 {
		f, err := rx.Next()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(f, frame) {
			got = f
			break
		}
	}
	if got == nil {
		t.Fatalf("the frame did not arrive at %s tag and all", "ulxm-rx")
	}
	for range 20 {
		f, err := tx.Next()
		if err != nil {
			t.Fatal(err)
		}
		if f == nil {
			break
		}
		if bytes.Equal(f, frame) {
			t.Fatal("the sending end's capture returned the frame it sent")
		}
	}

	// The host's namespace is refused.
	if cur, err := netns.Get(); err == nil && cur.Equal(initialNS) {
		cur.Close()
		ft := &fatalRecorder{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			AddVeth(ft, nil, Veth{Name: "ulxm-no", Peer: "ulxm-nop"})
		}()
		<-done
		if !ft.failed {
			t.Fatal("AddVeth made a veth in the host's namespace")
		}
	}
}

// fatalRecorder records a Fatal instead of failing the test.
type fatalRecorder struct {
	testing.TB
	failed bool
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatal(args ...any) {
	f.failed = true
	runtime.Goexit()
}
func (f *fatalRecorder) Fatalf(string, ...any) {
	f.failed = true
	runtime.Goexit()
}
