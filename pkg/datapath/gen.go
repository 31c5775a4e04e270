package datapath

// The objects are committed so that `go build` needs no clang; `make generate`
// rebuilds them with the pinned Debian clang (see scripts/deps.sh) and
// `make check-generated` proves they are current.
//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -no-global-types -target bpfel -type port_info -type fdb_key -type fdb_entry -type neigh_key -type neigh_entry -type port_stats -type group_info -type drain -type drop_reason -type port_role -type vlan_set -type arrival -type balance -type group_mode -type port_list bpfSwitch ../../bpf/switch.c -- -O2 -g -Wall -Werror -mcpu=v3 -nostdinc -I../../bpf/include -I../../bpf
