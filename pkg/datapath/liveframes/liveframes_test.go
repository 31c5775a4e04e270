package liveframes

import (
	"errors"
	"testing"

	"github.com/uplinkd/uplinkd/test/testenv"
)

func TestDisableEnvForcesRefusal(t *testing.T) {
	t.Setenv(DisableEnv, "1")
	if err := probe(); !errors.Is(err, ErrRefused) {
		t.Fatalf("probe with %s=1: %v, want ErrRefused", DisableEnv, err)
	}
}

func TestAvailableAnswersOnce(t *testing.T) {
	testenv.RequireRoot(t, "needs root: loads a BPF program")
	first := Available()
	if first != nil && !errors.Is(first, ErrRefused) {
		t.Fatalf("Available: %v does not wrap ErrRefused", first)
	}
	if again := Available(); again != first {
		t.Fatalf("Available changed its answer: %v, then %v", first, again)
	}
	t.Logf("live-frame test runs on this kernel: %v", first)
}
