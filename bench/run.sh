#!/usr/bin/env bash
# bench/run.sh — side-by-side mirror benchmark (make bench; root).
#
#   gen (c0) ── eth0  router  eth1 ── s0 (sink: drops the UDP in its input hook)
#                     span0 ── mon0 (analyzer: promiscuous, answers nothing)
#
# The router forwards and runs the mirror under test; nfm-bench gen offers
# open-loop UDP at fixed rates; kernel interface counters tell offered,
# forwarded and mirrored packets. One iperf3 TCP stream per column with TSO on
# and off. Results: bench/RESULTS.md and bench/results-raw.txt.
#
# usage: bench/run.sh [--quick] [--runs N] [--window SECONDS] [--columns a,b,...]
#                     [--sizes 64,1400] [--rates 100000,0] [--no-tcp] [--no-install]
#                     [--out FILE] [--soak SECONDS] [--no-setup-time] [--profile]
# --profile: perf record of each cell's first run -> bench/profiles/CELL.txt
# columns: none nft-dup tc-mirred daemonlog netsniff nfm-route nfm-l2 nfm-lossls
#          nfm-route-v4 nfm-l2-v4 (the same rules on a router with IPv6 off)
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=full RUNS=3 WINDOW=5 TCP=1 INSTALL=1 SOAK=60 SETUP=1 PROFILE=0
COLUMNS="none nft-dup tc-mirred daemonlog netsniff nfm-route nfm-l2 nfm-lossls nfm-route-v4 nfm-l2-v4"
SIZES="64 1400" RATES="50000 100000 200000 400000 0" TCP_BYTES=1G
OUT=bench/RESULTS.md RAW=bench/results-raw.txt
cols_set=""
while [ $# -gt 0 ]; do
	case $1 in
	--quick) MODE=quick RUNS=1 WINDOW=2 SIZES=64 RATES="100000 400000" TCP_BYTES=256M SOAK=0
		[ -n "$cols_set" ] || COLUMNS="none nft-dup tc-mirred nfm-route nfm-l2 nfm-lossls" ;;
	--runs) RUNS=$2; shift ;;
	--window) WINDOW=$2; shift ;;
	--columns) COLUMNS=${2//,/ }; cols_set=1; shift ;;
	--sizes) SIZES=${2//,/ }; shift ;;
	--rates) RATES=${2//,/ }; shift ;;
	--no-tcp) TCP=0 ;;
	--soak) SOAK=$2; shift ;;
	--no-setup-time) SETUP=0 ;;
	--profile) PROFILE=1 ;;
	--no-install) INSTALL=0 ;;
	--out) OUT=$2; RAW=${2%.md}-raw.txt; shift ;;
	-h|--help) sed -n '2,18p' "$0"; exit 0 ;;
	*) echo "bench: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
[ "$(id -u)" = 0 ] || { echo "bench: needs root (network namespaces)" >&2; exit 1; }
BIN=${BIN:-./bin/nfmirror}
[ -x "$BIN" ] || { echo "bench: $BIN missing: run 'make build'" >&2; exit 1; }

# One namespace suite at a time on this machine, the benchmark included.
exec 9>/tmp/nfmirror-netns.lock
echo "bench: waiting for /tmp/nfmirror-netns.lock" >&2
flock 9
# Background children close fd 9 (9>&-): an orphan must never keep the lock.

# Tools: installed only when missing (and allowed); a column whose tool is
# still missing is skipped and the report says so.
need() { command -v "$1" >/dev/null 2>&1; }
missing=""
for t in daemonlogger:daemonlogger netsniff-ng:netsniff-ng ethtool:ethtool iperf3:iperf3 tc:iproute2 nft:nftables; do
	need "${t%%:*}" || missing="$missing ${t#*:}"
done
if [ -n "$missing" ] && [ "$INSTALL" = 1 ]; then
	echo "bench: installing:$missing" >&2
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing; } >/dev/null 2>&1 ||
		echo "bench: apt-get install$missing failed; skipping what needs it" >&2
fi
NOTES=""
keep=""
for c in $COLUMNS; do
	case $c in
	daemonlog) need daemonlogger || { NOTES="$NOTES Column daemonlog skipped: daemonlogger not installed."; continue; } ;;
	netsniff) need netsniff-ng || { NOTES="$NOTES Column netsniff skipped: netsniff-ng not installed."; continue; } ;;
	none|nft-dup|tc-mirred|nfm-route|nfm-l2|nfm-lossls|nfm-route-v4|nfm-l2-v4) ;;
	*) echo "bench: unknown column $c" >&2; exit 2 ;;
	esac
	keep="$keep $c"
done
COLUMNS=$keep
if [ "$TCP" = 1 ] && ! { need iperf3 && need ethtool; }; then
	TCP=0 NOTES="$NOTES TCP runs skipped: iperf3 or ethtool missing."
fi

id=$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
G=nfb-g-$id R=nfb-r-$id S=nfb-s-$id A=nfb-a-$id I=nfb-i-$id
work=$(mktemp -d /tmp/nfmirror-bench.XXXXXX)
PID="" # the mirror process of the running column, if any
pids=()
cleanup() {
	set +e
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	[ -n "$PID" ] && kill "$PID" 2>/dev/null
	[ -n "$PERFPID" ] && kill -INT "$PERFPID" 2>/dev/null
	wait 2>/dev/null
	for ns in $G $R $S $A $I; do ip netns del "$ns" 2>/dev/null; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

GEN=$work/nfm-bench
go build -o "$GEN" ./bench/cmd/nfm-bench
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

echo "bench: building the lab ($G $R $S $A)" >&2
for ns in $G $R $S $A; do
	ip netns add "$ns"
	nsx "$ns" ip link set lo up
done
# IPv4 only outside the router, and no link-local addresses in the router,
# so nothing but the offered traffic crosses the counted interfaces.
for ns in $G $S $A; do nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; done
nsx $R sysctl -qw net.ipv6.conf.default.addr_gen_mode=1 net.ipv6.conf.all.addr_gen_mode=1
ip link add c0 netns $G type veth peer name eth0 netns $R
ip link add s0 netns $S type veth peer name eth1 netns $R
ip link add mon0 netns $A type veth peer name span0 netns $R
nsx $G ip addr add 198.18.1.2/24 dev c0
nsx $R ip addr add 198.18.1.1/24 dev eth0
nsx $R ip addr add 198.18.2.1/24 dev eth1
nsx $S ip addr add 198.18.2.2/24 dev s0
for l in "$G c0" "$R eth0" "$R eth1" "$R span0" "$S s0" "$A mon0"; do set -- $l; nsx "$1" ip link set "$2" up; done
nsx $A ip link set mon0 promisc on
nsx $A sysctl -qw net.ipv4.conf.all.arp_ignore=8 net.ipv4.conf.mon0.arp_ignore=8
nsx $G ip route add default via 198.18.1.1
nsx $S ip route add default via 198.18.2.1
nsx $R sysctl -qw net.ipv4.ip_forward=1
# The router's input port behaves like a NIC: NAPI (a 256-slot ring that
# drops when full) in its own kernel thread, so the router's work does not
# run inside the generator's send calls and a slow router cannot throttle
# the open-loop generator.
nsx $R ethtool -K eth0 gro on >/dev/null
echo 1 | nsx $R tee /sys/class/net/eth0/threaded >/dev/null 2>&1 || NOTES="$NOTES Threaded NAPI unavailable on the router's eth0."
# The sink drops the UDP test stream in its input hook: counted on s0, never
# answered with ICMP port unreachable.
nsx $S nft -f - <<'NFT'
table inet nfbench {
	chain input {
		type filter hook input priority 0; policy accept;
		udp dport 9 drop
	}
}
NFT
nsx $G ping -c2 -W1 -q 198.18.2.2 >/dev/null || { echo "bench: the lab does not forward" >&2; exit 1; }

HZ=$(getconf CLK_TCK)
GEN_DST=198.18.2.2:9

# counters: offered (c0 tx + tx_dropped) router-in rx, sink rx, analyzer rx,
# analyzer tx, sink rx bytes, analyzer rx bytes.
counters() {
	local g r s a
	g=$(nsx $G cat /sys/class/net/c0/statistics/tx_packets /sys/class/net/c0/statistics/tx_dropped | paste -sd+)
	g=$((g))
	r=$(nsx $R cat /sys/class/net/eth0/statistics/rx_packets)
	s=$(nsx $S cat /sys/class/net/s0/statistics/rx_packets /sys/class/net/s0/statistics/rx_bytes | paste -sd' ')
	a=$(nsx $A cat /sys/class/net/mon0/statistics/rx_packets /sys/class/net/mon0/statistics/tx_packets /sys/class/net/mon0/statistics/rx_bytes | paste -sd' ')
	set -- $s
	local srx=$1 sbytes=$2
	set -- $a
	echo "$g $r $srx $1 $2 $sbytes $3"
}
# cpu: busy and total jiffies of the whole machine.
cpu() { awk '/^cpu /{b=$2+$3+$4+$7+$8+$9; print b, b+$5+$6}' /proc/stat; }
# pticks: utime+stime of the mirror process (all threads); - without one.
pticks() { if [ -n "$PID" ] && [ -r /proc/$PID/stat ]; then cut -d')' -f2 /proc/$PID/stat | awk '{print $12+$13}'; else echo -; fi; }
rss() { if [ -n "$PID" ] && [ -r /proc/$PID/status ]; then awk '/^VmRSS/{print $2}' /proc/$PID/status; else echo -; fi; }
nfmstat() {
	if [ -n "$NFMSOCK" ]; then "$BIN" status -json -socket "$NFMSOCK" 2>/dev/null | "$GEN" nfmstat || echo "- - - - -"
	else echo "- - - - -"; fi
}
NFMSOCK=""
# nfq: packets the kernel put in NFQUEUE queues (id_sequence), and dropped
# there (queue full without fail-open, netlink overrun); - without queues.
# A packet that finds a fail-open queue full passes uncopied and is counted
# nowhere: offered minus queued tells it.
nfq() {
	nsx $R awk '{q += $8; d += $6 + $7; n++} END {if (n) print q, d; else print "- -"}' /proc/net/netfilter/nfnetlink_queue 2>/dev/null || echo "- -"
}
# delta A0 A1: A1-A0, or - when either is -.
delta() { if [ "$1" = - ] || [ "$2" = - ]; then echo -; else echo $(($2 - $1)); fi; }

start_col() {
	PID="" NFMSOCK=""
	local rules=$work/rules.nft
	case $1 in
	none) ;;
	nft-dup) nsx $R nft -f - <<'NFT'
table netdev nfbench {
	chain in {
		type filter hook ingress device "eth0" priority 0;
		dup to "span0"
	}
}
NFT
		;;
	tc-mirred)
		# matchall when the kernel has it (cls_matchall), else a u32 filter
		# that matches every frame.
		nsx $R tc qdisc add dev eth0 clsact
		nsx $R tc filter add dev eth0 ingress matchall action mirred egress mirror dev span0 2>/dev/null ||
			nsx $R tc filter add dev eth0 ingress protocol all u32 match u32 0 0 action mirred egress mirror dev span0 ;;
	# ip netns exec (not the nsx function, which would fork a subshell)
	# execs the command, so $! is the mirror process itself.
	daemonlog) ip netns exec $R daemonlogger -i eth0 -o span0 >"$work/$1.log" 2>&1 9>&- & PID=$! ;;
	# -S: the default ring is sized from system socket memory limits that
	# cannot be raised inside a namespace ("Cannot allocate RX_RING!").
	netsniff) ip netns exec $R netsniff-ng --in eth0 --out span0 --silent -S 32MiB >"$work/$1.log" 2>&1 9>&- & PID=$! ;;
	nfm-*)
		# -v4: an IPv4-only router (IPv6 off in the namespace), as many
		# are deployed: nfmirror must run, and run as fast, without it.
		case $1 in *-v4) v6off 1 ;; esac
		case $1 in
		nfm-route|nfm-route-v4) echo 'prerouting { iifname "eth0" mirror to "span0" }' ;;
		nfm-l2|nfm-l2-v4) echo 'ingress "eth0" { mirror to "span0" }' ;;
		nfm-lossls) echo 'prerouting { iifname "eth0" mirror to "span0" lossless }' ;;
		esac >"$rules"
		NFMSOCK=$work/nfm.sock
		ip netns exec $R env ${NFM_ENV:-} "$BIN" apply -socket "$NFMSOCK" -state-dir "$work/state" ${NFM_APPLY_FLAGS:-} "$rules" >"$work/$1.log" 2>&1 9>&- & PID=$!
		local ok=0
		for _ in $(seq 100); do
			"$BIN" status -socket "$NFMSOCK" >/dev/null 2>&1 && { ok=1; break; }
			kill -0 $PID 2>/dev/null || break
			sleep 0.1
		done
		[ $ok = 1 ] || { echo "bench: nfmirror did not start:" >&2; cat "$work/$1.log" >&2; return 1; } ;;
	esac
	sleep 1
	if [ -n "$PID" ] && ! kill -0 $PID 2>/dev/null; then
		echo "bench: column $1 died at start:" >&2; cat "$work/$1.log" >&2; return 1
	fi
}
stop_col() {
	case $1 in
	nft-dup) nsx $R nft delete table netdev nfbench ;;
	tc-mirred) nsx $R tc qdisc del dev eth0 clsact ;;
	esac
	if [ -n "$PID" ]; then
		kill -TERM $PID 2>/dev/null || true
		for _ in $(seq 150); do kill -0 $PID 2>/dev/null || break; sleep 0.1; done
		kill -KILL $PID 2>/dev/null || true
		wait $PID 2>/dev/null || true
	fi
	PID="" NFMSOCK=""
	case $1 in *-v4) v6off 0 ;; esac
	sleep 0.5
}
# v6off 1|0: turn IPv6 off (or back on) in the router namespace.
v6off() {
	local k
	for k in all default lo eth0 eth1 span0; do nsx $R sysctl -qw "net.ipv6.conf.$k.disable_ipv6=$1"; done
}

# profile_start, profile_stop NAME WHAT: with --profile, a system-wide
# perf record (call graphs) of the cell, summarised in bench/profiles/NAME.txt:
# share of all samples by command, by command and function, and the mirror
# process's inclusive costs.
PERFPID=""
profile_start() {
	[ "$PROFILE" = 1 ] || return 0
	perf record -a -g -o "$work/perf.data" >/dev/null 2>&1 9>&- &
	mkdir -p bench/profiles
	PERFPID=$!
}
profile_stop() {
	[ -n "$PERFPID" ] || return 0
	kill -INT $PERFPID 2>/dev/null; wait $PERFPID 2>/dev/null || true
	PERFPID=""
	{
		echo "# perf record -a -g over $2: share of all samples ($(nproc) cores; idle is swapper)"
		echo "## by command"
		perf report -i "$work/perf.data" --stdio --no-children --sort comm 2>/dev/null | grep -E '^ +[0-9]' | head -12
		echo "## by command and function (>= 0.3 %)"
		perf report -i "$work/perf.data" --stdio --no-children --sort comm,sym --percent-limit 0.3 2>/dev/null | grep -E '^ +[0-9]'
		echo "## inclusive cost of making the copy in the forwarding path (every command)"
		perf report -i "$work/perf.data" --stdio --children --sort sym -g none 2>/dev/null |
			grep -E '\] (nfulnl_log_packet|__nfulnl_send|nfqnl_enqueue_packet|nft_fwd_dup_netdev_eval|nf_dup_netdev_egress|tcf_mirred_act|packet_rcv|tpacket_rcv|nf_hook_slow|ip_forward|__netif_receive_skb_core.*)$'
		echo "## inclusive (self + callees) per function, mirror processes only (>= 1 %)"
		perf report -i "$work/perf.data" --stdio --children --comms nfmirror,daemonlogger,netsniff-ng --sort comm,sym --percent-limit 1 -g none 2>/dev/null | grep -E '^ +[0-9]'
	} >"bench/profiles/$1.txt" || true
}

# udp_cell COL SIZE RATE RUN: one window of open-loop UDP, one raw record.
udp_cell() {
	local c0 c1 u0 u1 t0 t1 n0 n1 out secs
	local q0 q1
	c0=$(counters); n0=$(nfmstat); q0=$(nfq); u0=$(cpu); t0=$(pticks)
	[ "$4" = 1 ] && profile_start
	out=$(nsx $G timeout $((WINDOW + 30)) "$GEN" gen -dst $GEN_DST -size "$2" -rate "$3" -duration "${WINDOW}s")
	[ "$4" = 1 ] && profile_stop "$1-$2-$3" "${WINDOW}s of $1 at $3 pps of $2-byte frames"
	u1=$(cpu); t1=$(pticks)
	sleep 0.5 # let the mirror drain before reading the counters
	c1=$(counters); n1=$(nfmstat); q1=$(nfq)
	secs=$(sed -E 's/.*"seconds":([0-9.eE+-]+).*/\1/' <<<"$out")
	set -- "$@" $c0 $c1 $u0 $u1 $n0 $n1
	# $5..$11 c0, $12..$18 c1, $19 $20 u0, $21 $22 u1, $23..$27 n0, $28..$32 n1
	local pt=- lost=- why=-
	[ "$t0" != - ] && [ "$t1" != - ] && pt=$((t1 - t0))
	if [ "$n0" != "- - - - -" ] && [ "$n1" != "- - - - -" ]; then
		lost=$(( (${29} - ${24}) + (${30} - ${25}) + (${32} - ${27}) ))
		why="gaps:$((${29} - ${24}))/queue:$((${30} - ${25}))/send:$((${32} - ${27}))"
	fi
	echo "kind=udp col=$1 size=$2 rate=$3 run=$4 secs=$secs gen_sent=$(sed -E 's/.*"sent":([0-9]+).*/\1/' <<<"$out")" \
		"gen_tx=$((${12} - $5)) rin_rx=$((${13} - $6)) sink_rx=$((${14} - $7)) mon_rx=$((${15} - $8)) mon_tx=$((${16} - $9))" \
		"cpu_busy=$((${21} - ${19})) cpu_total=$((${22} - ${20})) proc_ticks=$pt hz=$HZ rss_kb=$(rss) nfm_lost=$lost nfm_lost_why=$why" \
		"nfq_queued=$(delta ${q0% *} ${q1% *}) nfq_dropped=$(delta ${q0#* } ${q1#* })" >>"$RAW"
	tail -n1 "$RAW" >&2
}

# tcp_cell COL TSO RUN: one bounded iperf3 stream gen → sink.
tcp_cell() {
	local c0 c1 u0 u1 t0 t1 out pt=- col_=$1 tso_=$2 run_=$3
	nsx $G ethtool -K c0 tso "$2" >/dev/null
	nsx $S timeout 90 iperf3 -s -1 -B 198.18.2.2 >/dev/null 2>&1 9>&- &
	local srv=$!
	sleep 0.3
	local n0 n1 lost=-
	c0=$(counters); n0=$(nfmstat); u0=$(cpu); t0=$(pticks)
	[ "$run_" = 1 ] && profile_start
	out=$(nsx $G timeout 60 iperf3 -c 198.18.2.2 -n "$TCP_BYTES" -J 2>/dev/null) || true
	[ "$run_" = 1 ] && profile_stop "$1-tcp-tso-$2" "one iperf3 stream of $TCP_BYTES with TSO $2 and $1"
	u1=$(cpu); t1=$(pticks)
	sleep 0.5
	c1=$(counters); n1=$(nfmstat)
	wait $srv 2>/dev/null || true
	if [ "$n0" != "- - - - -" ] && [ "$n1" != "- - - - -" ]; then
		set -- $n0 $n1
		lost=$(( ($7 - $2) + ($8 - $3) + (${10} - $5) ))
		set -- "$col_" "$tso_" "$run_"
	fi
	[ "$t0" != - ] && [ "$t1" != - ] && pt=$((t1 - t0))
	local bps secs
	read -r bps secs < <(python3 -c 'import json,sys
try:
    e=json.load(sys.stdin)["end"]["sum_received"]; print(e["bits_per_second"], e["seconds"])
except Exception: print("- -")' <<<"$out")
	set -- "$@" $c0 $c1 $u0 $u1
	# $4..$10 c0, $11..$17 c1, $18 $19 u0, $20 $21 u1
	echo "kind=tcp col=$1 tso=$2 run=$3 bps=$bps secs=$secs sink_rx=$((${13} - $6)) sink_rx_bytes=$((${16} - $9)) mon_rx=$((${14} - $7)) mon_rx_bytes=$((${17} - ${10}))" \
		"cpu_busy=$((${20} - ${18})) cpu_total=$((${21} - ${19})) proc_ticks=$pt hz=$HZ rss_kb=$(rss) nfm_lost=$lost" >>"$RAW"
	tail -n1 "$RAW" >&2
}

# soak COL: SOAK seconds of overload (64-byte UDP as fast as the generator
# goes, plus one TCP stream) with the mirror's RSS sampled every 5 s: its
# memory must stay bounded and flat.
soak() {
	local col_=$1 series="" t=0 lost=- n0 n1
	n0=$(nfmstat)
	nsx $S timeout $((SOAK + 30)) iperf3 -s -1 -B 198.18.2.2 >/dev/null 2>&1 9>&- &
	local srv=$!
	sleep 0.3
	nsx $G timeout $((SOAK + 30)) "$GEN" gen -dst $GEN_DST -size 64 -rate 0 -duration "${SOAK}s" >/dev/null 2>&1 9>&- &
	local gen=$!
	nsx $G timeout $((SOAK + 30)) iperf3 -c 198.18.2.2 -t "$SOAK" >/dev/null 2>&1 9>&- &
	local cli=$!
	while [ "$t" -lt "$SOAK" ]; do
		sleep 5
		t=$((t + 5))
		series="$series${series:+/}$(rss)"
	done
	wait $gen $cli $srv 2>/dev/null || true
	n1=$(nfmstat)
	if [ "$n0" != "- - - - -" ] && [ "$n1" != "- - - - -" ]; then
		set -- $n0 $n1
		lost=$(( ($7 - $2) + ($8 - $3) + (${10} - $5) ))
	fi
	echo "kind=soak col=$col_ secs=$SOAK rss_series=$series nfm_lost=$lost" >>"$RAW"
	tail -n1 "$RAW" >&2
}

# setup_time RUN: time to install a rules file with 10,000 prefixes in sets,
# by nfmirror apply (parse, compile, install, routing, readers bound: until it
# logs "mirroring") and by nft -f of the ruleset nfmirror check prints for
# it, each in a fresh namespace with a mirror port.
setup_time() {
	local ns=$I rules=$work/big.nft t0 t1 p
	"$GEN" bigrules -n 10000 >"$rules"
	"$BIN" check "$rules" >"$work/big.out.nft"
	for tool in nfmirror nft; do
		ip netns add $ns
		nsx $ns ip link set lo up
		nsx $ns ip link add span0 type veth peer name mon0
		t0=$(date +%s%N)
		if [ $tool = nft ]; then
			nsx $ns nft -f "$work/big.out.nft"
		else
			: >"$work/i.log"
			ip netns exec $ns "$BIN" apply -socket "$work/i.sock" -state-dir "$work/istate" "$rules" 2>"$work/i.log" 9>&- &
			p=$!
			# tail -f wakes on the write (inotify): polling with grep every
			# few ms would take the CPU the apply needs (it added ~120 ms).
			timeout 30 tail -f -n +1 --pid=$p "$work/i.log" 9>&- | grep -m1 -q 'msg=mirroring' ||
				cat "$work/i.log" >&2
		fi
		t1=$(date +%s%N)
		if [ $tool = nfmirror ]; then kill $p 2>/dev/null || true; wait $p 2>/dev/null || true; fi
		ip netns del $ns
		echo "kind=install col=$tool run=$1 prefixes=10000 secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f", (b-a)/1e9}')" >>"$RAW"
		tail -n1 "$RAW" >&2
	done
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$RAW.tmp"
RAW_FINAL=$RAW RAW=$RAW.tmp
echo "# bench/run.sh $MODE $(date -u '+%F %T UTC'): runs=$RUNS window=${WINDOW}s columns=$(echo $COLUMNS)" >>"$RAW"
for col in $COLUMNS; do
	echo "bench: column $col" >&2
	# A mirror that does not start is skipped (and named in the report)
	# rather than losing the columns already measured.
	if ! start_col "$col"; then
		NOTES="$NOTES Column $col skipped: it did not start ($(tail -n1 "$work/$col.log" 2>/dev/null))."
		stop_col "$col"
		continue
	fi
	[ -z "$PID" ] || echo "bench: $col runs as pid $PID ($(cat /proc/$PID/comm))" >&2
	for size in $SIZES; do
		for rate in $RATES; do
			for run in $(seq "$RUNS"); do udp_cell "$col" "$size" "$rate" "$run"; done
		done
	done
	if [ "$TCP" = 1 ]; then
		for tso in on off; do
			for run in $(seq "$RUNS"); do tcp_cell "$col" "$tso" "$run"; done
		done
	fi
	case $col in nfm-*) [ "$SOAK" -gt 0 ] && soak "$col" ;; esac
	stop_col "$col"
done
if [ "$SETUP" = 1 ]; then
	for run in $(seq "$RUNS"); do setup_time "$run"; done
fi
mv "$RAW" "$RAW_FINAL"
"$GEN" report -raw "$RAW_FINAL" -out "$OUT" -mode "$MODE" -load-start "$LOAD_START" -notes "${NOTES# }"
echo "bench: wrote $OUT and $RAW_FINAL" >&2
