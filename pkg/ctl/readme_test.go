package ctl

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeShowsUsage keeps README.md's uplinkctl block the usage text
// the command table makes: the text exists once, the README shows it.
func TestReadmeShowsUsage(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if os.IsNotExist(err) && os.Getenv("UPLINKD_TEST_KERNEL") != "" {
		t.Skip("README.md is not in the test VM")
	}
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	start := strings.Index(readme, "## uplinkctl\n\n```\n")
	if start < 0 {
		t.Fatal("README.md has no code block right under \"## uplinkctl\"")
	}
	block := readme[start+len("## uplinkctl\n\n```\n"):]
	end := strings.Index(block, "```\n")
	if end < 0 {
		t.Fatal("README.md's uplinkctl block does not end")
	}
	if got, want := block[:end], usage(); got != want {
		t.Errorf("README.md's uplinkctl block differs from `uplinkctl help`; paste its output.\nREADME:\n%s\nhelp:\n%s", got, want)
	}
}
