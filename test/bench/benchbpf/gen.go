package benchbpf

// The objects are committed so that `go build` needs no clang; `make generate`
// rebuilds them with the pinned Debian clang. -mcpu=v3 for the fetching
// atomics (__sync_fetch_and_add/or whose result is used; Linux >= 5.12).
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -no-global-types -target bpfel -type gen_config -type slot_stats bpfBench ../../../bpf/bench/bench.c -- -O2 -g -Wall -Werror -mcpu=v3 -nostdinc -I../../../bpf/include
