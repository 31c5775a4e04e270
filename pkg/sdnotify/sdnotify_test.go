package sdnotify

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

func TestNotify(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := Notify("READY=1"); sent || err != nil {
		t.Errorf("without NOTIFY_SOCKET: %t, %v", sent, err)
	}
	for _, abstract := range []bool{false, true} {
		dir := t.TempDir()
		path := filepath.Join(dir, "notify")
		name, env := path, path
		if abstract {
			id := "uplinkd-test-" + filepath.Base(filepath.Dir(dir)) + filepath.Base(dir)
			name, env = "\x00"+id, "@"+id
		}
		ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("NOTIFY_SOCKET", env)
		if sent, err := Notify("READY=1\nSTATUS=ok"); !sent || err != nil {
			t.Fatalf("abstract %t: %t, %v", abstract, sent, err)
		}
		buf := make([]byte, 64)
		_ = ln.SetReadDeadline(time.Now().Add(time.Second))
		n, err := ln.Read(buf)
		ln.Close()
		if err != nil || string(buf[:n]) != "READY=1\nSTATUS=ok" {
			t.Errorf("abstract %t: received %q, %v", abstract, buf[:n], err)
		}
	}
}
