#!/usr/bin/env bash
# nfmirror demo: a throwaway lab of four network namespaces
#
#   client ──eth0── router ──eth1── server        (198.18.1.0/24, 198.18.2.0/24,
#                     │                             2001:db8:1::/64, 2001:db8:2::/64)
#                   span0
#                     │
#                  monitor   (promiscuous, tcpdump)
#
# The router runs `nfmirror apply demo/rules.nft`; the client talks HTTP and
# pings the server over IPv4 and IPv6; the monitor shows what arrived on the
# mirror port, next to `nfmirror status`. Everything is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: needs root (network namespaces)" >&2; exit 1; }
BIN=${BIN:-./bin/nfmirror}
[ -x "$BIN" ] || { echo "demo: $BIN missing: run 'make build'" >&2; exit 1; }

id=$$
C=nfm-demo-client-$id R=nfm-demo-router-$id S=nfm-demo-server-$id M=nfm-demo-mon-$id
work=$(mktemp -d /tmp/nfmirror-demo.XXXXXX)
sock=$work/nfmirror.sock
pids=()
cleanup() {
	set +e
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	for ns in $C $R $S $M; do ip netns del "$ns" 2>/dev/null; done
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

echo "== building the lab"
for ns in $C $R $S $M; do ip netns add "$ns"; nsx "$ns" ip link set lo up; done
ip link add c0 netns $C type veth peer name eth0 netns $R
ip link add s0 netns $S type veth peer name eth1 netns $R
ip link add mon0 netns $M type veth peer name span0 netns $R
nsx $C ip addr add 198.18.1.2/24 dev c0;  nsx $C ip addr add 2001:db8:1::2/64 dev c0 nodad
nsx $R ip addr add 198.18.1.1/24 dev eth0; nsx $R ip addr add 2001:db8:1::1/64 dev eth0 nodad
nsx $R ip addr add 198.18.2.1/24 dev eth1; nsx $R ip addr add 2001:db8:2::1/64 dev eth1 nodad
nsx $S ip addr add 198.18.2.2/24 dev s0;  nsx $S ip addr add 2001:db8:2::2/64 dev s0 nodad
# span0 stays down: nfmirror brings its mirror port up itself, silent. Its
# offloads stay as the kernel made them: nfmirror writes wire-sized frames
# with complete checksums whatever the port does.
for l in "$C c0" "$R eth0" "$R eth1" "$S s0" "$M mon0"; do set -- $l; nsx "$1" ip link set "$2" up; done
nsx $M ip link set mon0 promisc on
nsx $M sysctl -qw net.ipv6.conf.all.disable_ipv6=1   # a silent analyzer
nsx $C ip route add default via 198.18.1.1; nsx $C ip -6 route add default via 2001:db8:1::1
nsx $S ip route add default via 198.18.2.1; nsx $S ip -6 route add default via 2001:db8:2::1
nsx $R sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

echo "== starting an HTTP server, the monitor's capture and nfmirror"
(cd "$work" && echo "hello from the server" > index.html && exec ip netns exec $S python3 -m http.server 80 --bind :: >/dev/null 2>&1) &
pids+=($!)
ip netns exec $M tcpdump -i mon0 -Q in -nn -l --immediate-mode -w "$work/mirror.pcap" >/dev/null 2>&1 &
pids+=($!)
ip netns exec $R "$BIN" apply -socket "$sock" -state-dir "$work/state" demo/rules.nft 2>"$work/nfmirror.log" &
pids+=($!)
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || { echo "nfmirror did not start:"; cat "$work/nfmirror.log"; exit 1; }
sleep 1

echo "== traffic: curl (IPv4, IPv6), ping, ping -6"
nsx $C curl -s -m 5 http://198.18.2.2/ | sed 's/^/   curl v4: /'
nsx $C curl -s -m 5 'http://[2001:db8:2::2]/' | sed 's/^/   curl v6: /'
nsx $C ping -c 3 -i 0.2 -q 198.18.2.2 | sed -n 's/^/   /;/packets/p'
nsx $C ping -6 -c 3 -i 0.2 -q 2001:db8:2::2 | sed -n 's/^/   /;/packets/p'
sleep 2

echo
echo "== what the monitor saw on the mirror port"
kill "${pids[1]}"; wait "${pids[1]}" 2>/dev/null || true
{ tcpdump -nn -r "$work/mirror.pcap" 2>/dev/null || true; } | sed 's/^/   /'
echo "   ($({ tcpdump -nn -r "$work/mirror.pcap" 2>/dev/null || true; } | wc -l) packets)"
echo
echo "== nfmirror status"
nsx $R "$BIN" status -socket "$sock" | sed 's/^/   /'
echo
echo "== stopping nfmirror (SIGTERM): it removes its table, ip rules and routes"
kill -TERM "${pids[2]}"; wait "${pids[2]}" 2>/dev/null || true
echo "   tables left in the router: $(nsx $R nft list tables | grep -c nfmirror || true)"
echo "   ip rules left: $(nsx $R ip rule show | grep -c 'fwmark' || true)"
echo "== done"
