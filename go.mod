module github.com/uplinkd/uplinkd

go 1.26.8

require (
	github.com/cilium/ebpf v0.22.0
	github.com/google/gopacket v1.1.19
	github.com/safchain/ethtool v0.7.0
	github.com/vishvananda/netlink v1.3.1
	github.com/vishvananda/netns v0.0.5
	golang.org/x/sys v0.49.0
	golang.org/x/time v0.16.0
)

require go.yaml.in/yaml/v3 v3.0.6

tool github.com/cilium/ebpf/cmd/bpf2go
