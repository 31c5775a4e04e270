#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build, test, demo and
# benchmark uplinkd. `deps.sh generate` also installs the pinned clang that
# `make generate` / `make check-generated` use.
# Fast when everything is there: apt runs only for missing tools.
set -euo pipefail

CLANG_VERSION=19 # pinned: objects must rebuild byte for byte

need=()
want() { # want COMMAND PACKAGE
	command -v "$1" >/dev/null 2>&1 || need+=("$2")
}
want ip iproute2
want bridge iproute2
want ethtool ethtool
want ping iputils-ping
want modprobe kmod
want make make
want git git
# Open vSwitch is a peer in the benchmark (and its tests): the harness runs
# its own private ovsdb-server/ovs-vswitchd, never the system service, and
# only looks for the programs (test/bench/peer), so they are installed here.
want ovs-vswitchd openvswitch-switch
# iperf3 measures socket TCP and UDP through each system in the benchmark.
want iperf3 iperf3
# The e2e suite boots a VM on a tap guest port (test/e2e/vm_test.go).
want qemu-system-x86_64 qemu-system-x86
if [[ "${1:-}" == generate ]]; then
	want "clang-$CLANG_VERSION" "clang-$CLANG_VERSION"
	want "llvm-strip-$CLANG_VERSION" "llvm-$CLANG_VERSION"
fi
if ! command -v go >/dev/null 2>&1 && [[ ! -x /usr/local/go/bin/go ]]; then
	# Debian's Go is older than go.mod asks for; with GOTOOLCHAIN=auto
	# (the default) it fetches the right toolchain from the module proxy.
	need+=(golang-go ca-certificates)
fi

# ovs_units_on prints "stop UNIT" for each of Open vSwitch's system units
# that runs and "disable UNIT" for each that is enabled (under systemd).
ovs_units_on() {
	[[ -d /run/systemd/system ]] || return 0
	local unit
	for unit in openvswitch-switch.service ovsdb-server.service ovs-vswitchd.service; do
		if systemctl is-active --quiet "$unit"; then echo "stop $unit"; fi
		if systemctl is-enabled --quiet "$unit" 2>/dev/null; then echo "disable $unit"; fi
	done
}

if ((${#need[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "deps.sh: missing ${need[*]}; run as root to install them" >&2
		exit 1
	fi
	echo "deps.sh: installing ${need[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# Keep packages (openvswitch-switch) from starting system services.
	guard=
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		guard=1
	fi
	ovs_before=$(ovs_units_on)
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	[[ -n $guard ]] && rm -f /usr/sbin/policy-rc.d
	# The package enables its units (policy-rc.d only stops them starting
	# now): undo whatever the install turned on, so the system's own Open
	# vSwitch does not start at the next boot; what was on before stays.
	while read -r verb unit; do
		[[ -z $verb ]] || grep -qxF "$verb $unit" <<<"$ovs_before" ||
			systemctl "$verb" --quiet "$unit"
	done <<<"$(ovs_units_on)"
fi

# XDP into veth, namespaces and bpffs need these; most kernels build them in.
# vhost_net gives the VM test its vhost=on cases (/dev/vhost-net).
for mod in veth bridge tun vhost_net; do
	modprobe -q "$mod" 2>/dev/null || true
done
