package datapath

import (
	"fmt"
	"os"
	"syscall"
)

// NetnsInode is the inode of the calling thread's network namespace: with
// an ifindex it names a device uniquely on the host.
func NetnsInode() (uint64, error) {
	fi, err := os.Stat("/proc/thread-self/ns/net")
	if err != nil {
		return 0, fmt.Errorf("network namespace: %w", err)
	}
	return inodeOf(fi), nil
}

func inodeOf(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
