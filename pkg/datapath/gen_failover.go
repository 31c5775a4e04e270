package datapath

// The in-kernel failover programs are a separate object: a kernel that
// refuses one hook (fentry is refused on some kernels) must still load
// the switch and the other hook. -mcpu=v3 for the compare-and-swap.
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -no-global-types -target bpfel -type fallback -type fo_event -type fo_cause bpfFailover ../../bpf/failover.c -- -O2 -g -Wall -Werror -mcpu=v3 -nostdinc -I../../bpf/include -I../../bpf
