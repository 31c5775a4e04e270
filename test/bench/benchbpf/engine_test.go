package benchbpf

import (
	"errors"
	"github.com/uplinkd/uplinkd/pkg/datapath/liveframes"
	"testing"
)

func TestChooseEngine(t *testing.T) {
	requireRoot(t) // liveframes.Available loads a program
	live := liveframes.Available()
	auto := EngineAFPacket
	if live == nil {
		auto = EngineLive
	}
	for _, tc := range []struct {
		ask, want string
		wantErr   bool
	}{
		{EngineAuto, auto, false},
		{"", auto, false},
		{EngineAFPacket, EngineAFPacket, false},
		{EngineLive, map[bool]string{true: EngineLive}[live == nil], live != nil},
		{"afxdp", "", true},
	} {
		got, reason, err := ChooseEngine(tc.ask)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ChooseEngine(%q) = %q, %q, %v; want %q, error %v", tc.ask, got, reason, err, tc.want, tc.wantErr)
		}
		if tc.ask == EngineLive && live != nil && !errors.Is(err, liveframes.ErrRefused) {
			t.Errorf("ChooseEngine(live) where refused: %v, want liveframes.ErrRefused", err)
		}
		if err != nil {
			continue
		}
		e, err := NewEngine(got)
		if err != nil {
			t.Fatalf("NewEngine(%q): %v", got, err)
		}
		if e.Name() != got {
			t.Errorf("NewEngine(%q).Name() = %q", got, e.Name())
		}
		e.Close()
	}
	if _, err := NewEngine(EngineAuto); err == nil {
		t.Error("NewEngine(auto) succeeded: auto is resolved by ChooseEngine")
	}
}
