package main

import "testing"

func TestKernelTag(t *testing.T) {
	for _, tc := range []struct{ release, want string }{
		{"6.1.0-56-cloud-amd64", "6.1-qemu"},
		{"6.18.44-fc-v769", "6.18-qemu"},
		{"6.12-rc3", "6.12-qemu"},
		{"6", "6-qemu"},
	} {
		if got := kernelTag(tc.release); got != tc.want {
			t.Errorf("kernelTag(%q) = %q, want %q", tc.release, got, tc.want)
		}
	}
}
