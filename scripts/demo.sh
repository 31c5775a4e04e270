#!/usr/bin/env bash
# make demo: uplinkd on a real topology in network namespaces.
#
#   guest g0 (10.77.0.10) ─ vnet0 ┐            ┌ up0 ══ p0 ┐
#   host's own mgmt0 (10.77.0.2) ─┤host: uplinkd             br0 upstream, gateway 10.77.0.1
#   guest g1 (10.77.0.11) ─ vnet1 ┘            └ up1 ══ p1 ┘
#
# The gateway pings both guests, and the host pings the gateway from its
# host port mgmt0, while the active uplink is cut and restored; the
# upstream bridge's FDB shows where it believes the guests and the host
# are. Everything is removed at the end, also on Ctrl-C.
set -euo pipefail

BIN=${1:-bin}
BIN=$(cd "$BIN" && pwd)
ID=$$
NS_HOST=uld${ID}host NS_UP=uld${ID}up NS_G0=uld${ID}g0 NS_G1=uld${ID}g1
WORK=$(mktemp -d /tmp/uplinkd-demo.XXXXXX)
DAEMON_PID=
PING_PIDS=()

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
inns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
ctl() { "$BIN/uplinkctl" -socket "$WORK/uplinkd.sock" "$@"; }
# show_fdb TITLE: where the upstream bridge believes the guests are.
show_fdb() {
	echo "$1"
	inns "$NS_UP" bridge fdb show br br0 | grep -iE "$G0_MAC|$G1_MAC|$HOST_MAC" || true
}

cleanup() {
	trap - EXIT INT TERM
	set +e
	for p in "${PING_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	if [[ -n $DAEMON_PID ]]; then
		kill "$DAEMON_PID" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$DAEMON_PID" 2>/dev/null
		wait "$DAEMON_PID" 2>/dev/null
	fi
	[[ -f $WORK/uplinkd.yaml ]] && inns "$NS_HOST" "$BIN/uplinkd" -config "$WORK/uplinkd.yaml" -cleanup >/dev/null 2>&1
	for ns in "$NS_HOST" "$NS_UP" "$NS_G0" "$NS_G1"; do ip netns del "$ns" 2>/dev/null; done
	umount "$WORK/bpffs" 2>/dev/null
	rm -rf "$WORK"
	echo "demo: cleaned up"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ $(id -u) -eq 0 ]] || { echo "demo: run as root" >&2; exit 1; }

say "building the topology in namespaces $NS_HOST, $NS_UP, $NS_G0, $NS_G1"
for ns in "$NS_HOST" "$NS_UP" "$NS_G0" "$NS_G1"; do
	ip netns add "$ns"
	inns "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	inns "$ns" ip link set lo up
done
i=0
for g in "$NS_G0" "$NS_G1"; do
	ip -n "$NS_HOST" link add "vnet$i" type veth peer name eth0 netns "$g"
	ip -n "$g" addr add "10.77.0.1$i/24" dev eth0
	ip -n "$g" link set eth0 up
	ip -n "$NS_HOST" link set "vnet$i" up
	i=$((i + 1))
done
ip -n "$NS_UP" link add br0 type bridge
for i in 0 1; do
	ip -n "$NS_HOST" link add "up$i" type veth peer name "p$i" netns "$NS_UP"
	ip -n "$NS_UP" link set "p$i" master br0 up
	ip -n "$NS_HOST" link set "up$i" up
done
ip -n "$NS_UP" addr add 10.77.0.1/24 dev br0
ip -n "$NS_UP" link set br0 up
G0_MAC=$(ip -n "$NS_G0" -br link show eth0 | awk '{print $3}')
G1_MAC=$(ip -n "$NS_G1" -br link show eth0 | awk '{print $3}')

mkdir "$WORK/bpffs"
mount -t bpf bpf "$WORK/bpffs"
cat >"$WORK/uplinkd.yaml" <<EOF
pin_path: $WORK/bpffs/uplinkd
control_socket: $WORK/uplinkd.sock
groups:
  - name: demo
    failback: true
    announce: {count: 3, interval: 100ms}
    guest_ports: [vnet0, vnet1]
    host_ports: [{name: mgmt0}]
    uplinks:
      - {name: up0, priority: 10}
      - {name: up1, priority: 20}
EOF

say "starting uplinkd in $NS_HOST (log: uplinkd.log, shown at the end)"
# Started directly (not through a shell function) so that $! is uplinkd
# itself: ip netns exec execs it.
ip netns exec "$NS_HOST" "$BIN/uplinkd" -config "$WORK/uplinkd.yaml" >"$WORK/uplinkd.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 100); do ctl status >/dev/null 2>&1 && break; sleep 0.05; done
# uplinkd made the host port; its address is the operator's.
ip -n "$NS_HOST" addr add 10.77.0.2/24 dev mgmt0
HOST_MAC=$(ip -n "$NS_HOST" -br link show mgmt0 | awk '{print $3}')
ctl status

say "the gateway pings both guests and the host pings the gateway from mgmt0, 100 per second each, for 8 seconds"
for ip in 10.77.0.10 10.77.0.11; do
	ip netns exec "$NS_UP" ping -q -i 0.01 -w 8 -c 800 "$ip" >"$WORK/ping-$ip.txt" 2>&1 &
	PING_PIDS+=($!)
done
ip netns exec "$NS_HOST" ping -q -i 0.01 -w 8 -c 800 10.77.0.1 >"$WORK/ping-host.txt" 2>&1 &
PING_PIDS+=($!)
sleep 2
ctl fdb
show_fdb "upstream bridge FDB (guest MACs, then the host port's $HOST_MAC):"

say "cutting the active uplink: p0 goes down on the upstream side"
inns "$NS_UP" ip link set p0 down
sleep 1
ctl status
echo
show_fdb "upstream bridge FDB now (the guests and the host port moved behind p1; uplinkd announced them at once, and they also answer pings here: test/e2e proves the relearning with a silent guest):"
FAILOVER_LINE=$(ctl status | grep 'last failover' || true)

say "restoring p0: failback to the better-priority uplink"
inns "$NS_UP" ip link set p0 up
sleep 1.5
ctl status
echo
show_fdb "upstream bridge FDB after failback:"
FAILBACK_LINE=$(ctl status | grep 'last failover' || true)

say "waiting for the pings to finish"
for p in "${PING_PIDS[@]}"; do wait "$p" || true; done
PING_PIDS=()
ctl counters

say "summary"
for ip in 10.77.0.10 10.77.0.11; do
	stats=$(grep -E 'packets transmitted' "$WORK/ping-$ip.txt" || echo "no ping statistics")
	echo "  pings to guest $ip: $stats"
done
stats=$(grep -E 'packets transmitted' "$WORK/ping-host.txt" || echo "no ping statistics")
echo "  the host's own pings from mgmt0 to the gateway: $stats"
echo "  failover: ${FAILOVER_LINE#  }"
echo "  failback: ${FAILBACK_LINE#  }"
echo
echo "uplinkd log:"
sed 's/^/  /' "$WORK/uplinkd.log"
