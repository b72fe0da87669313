package nfrules

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/nfmirror/nfmirror/internal/nstest"
)

// The oracle test: for each match expression, the table nfmirror installs
// through netlink and the table nft itself installs from Plan.NFT() must list
// identically with "nft list table", and the listing must show the nft text
// we expect for the expression.

type oracleNS struct {
	*nstest.NS
	conn *nftables.Conn
}

func newOracleNS(t *testing.T) *oracleNS {
	ns := nstest.New(t, "eth0", "eth1", "span0", "span1")
	c, err := nftables.New(nftables.WithNetNSFd(ns.FD()), nftables.AsLasting())
	if err != nil {
		t.Fatalf("nftables conn: %v", err)
	}
	t.Cleanup(func() { c.CloseLasting() })
	return &oracleNS{NS: ns, conn: c}
}

// ifindex resolves names inside the namespace (ip netns exec mounts its sysfs).
func (o *oracleNS) ifindex(t *testing.T) func(string) (uint32, error) {
	return func(name string) (uint32, error) {
		out, errOut, err := o.Run("", "cat", "/sys/class/net/"+name+"/ifindex")
		if err != nil {
			return 0, fmt.Errorf("ifindex of %s: %w: %s", name, err, errOut)
		}
		n, err := strconv.ParseUint(strings.TrimSpace(out), 10, 32)
		return uint32(n), err
	}
}

// list returns "nft list table FAMILY NAME" for every family, "" for a
// missing table.
func (o *oracleNS) list(t *testing.T, name string) string {
	t.Helper()
	var b strings.Builder
	for _, fam := range []string{"inet", "netdev"} {
		out, _, err := o.Run("", "nft", "list", "table", fam, name)
		if err == nil {
			b.WriteString(out)
		}
	}
	return b.String()
}

// ownerFlag is what nft 1.0.6 prints for a table with the owner flag, which
// nft -f cannot create: "table inet nfmirror { # progname nfrules.test", a
// "flags owner" line and an empty line.
var ownerFlag = regexp.MustCompile(` # progname \S+\n\tflags owner\n\n`)

// counters zeroes the counters in a listing: the links of the namespace send
// IPv6 neighbour discovery on their own, which rules may count.
var counters = regexp.MustCompile(`counter packets \d+ bytes \d+`)

func zeroCounters(s string) string { return counters.ReplaceAllString(s, "counter packets 0 bytes 0") }

// ruleset lists the namespace's ruleset with counter values zeroed: the
// veths' own IPv6 chatter moves them (the port guard counts what it drops).
func (o *oracleNS) ruleset(t *testing.T) string {
	t.Helper()
	return zeroCounters(o.MustRun(t, "nft", "list", "ruleset"))
}

type oracleCase struct {
	name string
	hook Hook
	dev  string
	ms   []Match
	want string // the rule's matches as nft lists them
}

func oracleCases(t *testing.T) []oracleCase {
	pre, in, fwd, out, post := HookPrerouting, HookInput, HookForward, HookOutput, HookPostrouting
	c := func(f string, op Op, v Value) *Compare { return cmpv(t, f, op, v) }
	tcpFlags := func(text string, v byte) Datum { return dat(text, []byte{v}) }
	return []oracleCase{
		{"ip saddr", pre, "", []Match{c("ip saddr", OpImplicit, one(addr("198.18.0.1")))}, "ip saddr 198.18.0.1"},
		{"ip daddr neq", in, "", []Match{c("ip daddr", OpNeq, one(addr("198.18.0.1")))}, "ip daddr != 198.18.0.1"},
		{"ip prefix unaligned", pre, "", []Match{c("ip saddr", OpImplicit, pfx("198.18.0.0/15"))}, "ip saddr 198.18.0.0/15"},
		{"ip prefix aligned", pre, "", []Match{c("ip saddr", OpImplicit, pfx("198.18.0.0/16"))}, "ip saddr 198.18.0.0/16"},
		{"ip prefix neq", fwd, "", []Match{c("ip daddr", OpNeq, pfx("198.19.0.0/16"))}, "ip daddr != 198.19.0.0/16"},
		{"ip prefix unaligned neq", fwd, "", []Match{c("ip daddr", OpNeq, pfx("198.18.0.0/23"))}, "ip daddr != 198.18.0.0/23"},
		{"ip range", pre, "", []Match{c("ip saddr", OpImplicit, rng(addr("198.18.0.1"), addr("198.18.0.9")))}, "ip saddr 198.18.0.1-198.18.0.9"},
		{"ip range neq", pre, "", []Match{c("ip saddr", OpNeq, rng(addr("198.18.0.1"), addr("198.18.0.9")))}, "ip saddr != 198.18.0.1-198.18.0.9"},
		{"ip set mixed", pre, "", []Match{c("ip daddr", OpImplicit, set(one(addr("198.18.0.1")), pfx("198.18.1.0/24"), rng(addr("198.18.2.1"), addr("198.18.2.9"))))}, "ip daddr { 198.18.0.1, 198.18.1.0/24, 198.18.2.1-198.18.2.9 }"},
		{"ip set neq", pre, "", []Match{c("ip saddr", OpNeq, set(one(addr("198.18.0.1")), one(addr("198.18.0.2"))))}, "ip saddr != { 198.18.0.1, 198.18.0.2 }"},
		{"ip protocol", pre, "", []Match{c("ip protocol", OpImplicit, one(u8("tcp", 6)))}, "ip protocol tcp"},
		{"ip protocol set", pre, "", []Match{c("ip protocol", OpImplicit, set(one(u8("tcp", 6)), one(u8("udp", 17))))}, "ip protocol { tcp, udp }"},
		{"ip6 saddr", pre, "", []Match{c("ip6 saddr", OpImplicit, one(addr("2001:db8::1")))}, "ip6 saddr 2001:db8::1"},
		{"ip6 prefix aligned", pre, "", []Match{c("ip6 daddr", OpImplicit, pfx("2001:db8::/32"))}, "ip6 daddr 2001:db8::/32"},
		{"ip6 prefix unaligned", pre, "", []Match{c("ip6 saddr", OpImplicit, pfx("2001:db8::/33"))}, "ip6 saddr 2001:db8::/33"},
		{"ip6 nexthdr", out, "", []Match{c("ip6 nexthdr", OpImplicit, one(u8("udp", 17)))}, "ip6 nexthdr udp"},
		{"ip6 set", pre, "", []Match{c("ip6 daddr", OpImplicit, set(one(addr("2001:db8::1")), pfx("2001:db8:1::/48")))}, "ip6 daddr { 2001:db8::1, 2001:db8:1::/48 }"},
		{"tcp dport", pre, "", []Match{c("tcp dport", OpImplicit, one(port(443)))}, "tcp dport 443"},
		{"tcp sport neq", out, "", []Match{c("tcp sport", OpNeq, one(port(22)))}, "tcp sport != 22"},
		{"tcp dport range", pre, "", []Match{c("tcp dport", OpImplicit, rng(port(1000), port(2000)))}, "tcp dport 1000-2000"},
		{"tcp dport range neq", pre, "", []Match{c("tcp dport", OpNeq, rng(port(1000), port(2000)))}, "tcp dport != 1000-2000"},
		{"tcp dport lt", pre, "", []Match{c("tcp dport", OpLt, one(port(1024)))}, "tcp dport < 1024"},
		{"tcp dport gte", pre, "", []Match{c("tcp dport", OpGte, one(port(1024)))}, "tcp dport >= 1024"},
		{"tcp dport set", pre, "", []Match{c("tcp dport", OpImplicit, set(one(port(80)), one(port(443)), rng(port(8000), port(8080))))}, "tcp dport { 80, 443, 8000-8080 }"},
		{"tcp dport set neq", pre, "", []Match{c("tcp dport", OpNeq, set(one(port(80)), one(port(443))))}, "tcp dport != { 80, 443 }"},
		{"udp sport", post, "", []Match{c("udp sport", OpImplicit, one(port(53)))}, "udp sport 53"},
		{"udp dport set", post, "", []Match{c("udp dport", OpImplicit, set(one(port(53)), one(port(123))))}, "udp dport { 53, 123 }"},
		{"tcp flags implicit", pre, "", []Match{c("tcp flags", OpImplicit, one(tcpFlags("syn", 0x02)))}, "tcp flags syn"},
		{"tcp flags mask", pre, "", []Match{&Compare{Field: fld(t, "tcp flags"), Mask: &Datum{Text: "(syn|ack)", Bytes: []byte{0x12}}, Op: OpEq, Value: one(tcpFlags("syn", 0x02))}}, "tcp flags syn / syn,ack"},
		{"tcp flags eq", pre, "", []Match{c("tcp flags", OpEq, one(tcpFlags("syn|ack", 0x12)))}, "tcp flags == 0x12"},
		{"icmp type", in, "", []Match{c("icmp type", OpImplicit, one(u8("echo-request", 8)))}, "icmp type echo-request"},
		{"icmp type set", in, "", []Match{c("icmp type", OpImplicit, set(one(u8("echo-request", 8)), one(u8("echo-reply", 0))))}, "icmp type { echo-reply, echo-request }"},
		{"icmpv6 type", in, "", []Match{c("icmpv6 type", OpImplicit, one(u8("nd-neighbor-solicit", 135)))}, "icmpv6 type nd-neighbor-solicit"},
		{"meta l4proto", pre, "", []Match{c("meta l4proto", OpImplicit, one(u8("udp", 17)))}, "meta l4proto udp"},
		{"meta l4proto set", pre, "", []Match{c("meta l4proto", OpImplicit, set(one(u8("tcp", 6)), one(u8("udp", 17))))}, "meta l4proto { tcp, udp }"},
		{"meta mark", pre, "", []Match{c("meta mark", OpImplicit, one(mark(1)))}, "meta mark 0x00000001"},
		{"meta mark mask", pre, "", []Match{&Compare{Field: fld(t, "meta mark"), Mask: &Datum{Text: "0xff00", Bytes: h32(0xff00)}, Op: OpEq, Value: one(mark(0x100))}}, "meta mark & 0x0000ff00 == 0x00000100"},
		{"meta mark neq", pre, "", []Match{c("meta mark", OpNeq, one(mark(2)))}, "meta mark != 0x00000002"},
		{"meta mark gt", pre, "", []Match{c("meta mark", OpGt, one(mark(0x10)))}, "meta mark > 0x00000010"},
		{"meta mark range", pre, "", []Match{c("meta mark", OpImplicit, rng(mark(1), mark(5)))}, "meta mark 0x00000001-0x00000005"},
		{"iifname", pre, "", []Match{c("meta iifname", OpImplicit, one(ifn("eth0")))}, `iifname "eth0"`},
		{"iifname wildcard", pre, "", []Match{c("meta iifname", OpImplicit, one(ifn("eth*")))}, `iifname "eth*"`},
		{"oifname neq", out, "", []Match{c("meta oifname", OpNeq, one(ifn("eth0")))}, `oifname != "eth0"`},
		// Sets of host-order values other than ct state (interface names,
		// meta mark, ct mark) are left out: google/nftables marks every
		// anonymous set's key as big-endian in the set's userdata, so nft
		// lists them byte-swapped ("iifname { "", "" }", "meta mark {
		// 0x01000000 }") although the kernel matches them right.
		{"ct state neq", pre, "", []Match{c("ct state", OpNeq, one(ctState("established", 2)))}, "ct state != established"},
		{"meta mark interval set", pre, "", []Match{c("meta mark", OpImplicit, set(rng(mark(1), mark(5)), one(mark(0x100))))}, "meta mark { 0x00000001-0x00000005, 0x00000100 }"},
		{"ct mark one-range set", pre, "", []Match{c("ct mark", OpImplicit, set(rng(mark(2), mark(3))))}, "ct mark 0x00000002-0x00000003"},
		{"one-element set", pre, "", []Match{c("tcp dport", OpImplicit, set(one(port(80))))}, "tcp dport 80"},
		{"one-element set neq", pre, "", []Match{c("udp dport", OpNeq, set(one(port(53))))}, "udp dport != 53"},
		{"one-prefix set", pre, "", []Match{c("ip saddr", OpImplicit, set(pfx("198.18.0.0/15")))}, "ip saddr 198.18.0.0/15"},
		{"ct mark mask neq", pre, "", []Match{&Compare{Field: fld(t, "ct mark"), Mask: &Datum{Text: "0xf", Bytes: h32(0xf)}, Op: OpNeq, Value: one(mark(3))}}, "ct mark & 0x0000000f != 0x00000003"},
		{"icmpv6 in forward", fwd, "", []Match{c("ip6 saddr", OpImplicit, pfx("2001:db8::/32")), c("icmpv6 type", OpImplicit, one(u8("echo-request", 128)))}, "ip6 saddr 2001:db8::/32 icmpv6 type echo-request"},
		{"iif", in, "", []Match{c("meta iif", OpImplicit, one(dat(`"eth0"`, nil)))}, `iif "eth0"`},
		{"oif", post, "", []Match{c("meta oif", OpImplicit, one(dat(`"eth1"`, nil)))}, `oif "eth1"`},
		{"pkttype", pre, "", []Match{c("meta pkttype", OpImplicit, one(u8("broadcast", 1)))}, "meta pkttype broadcast"},
		{"meta protocol", pre, "", []Match{c("meta protocol", OpImplicit, one(dat("ip6", be16(0x86dd))))}, "meta protocol ip6"},
		{"ct state implicit", pre, "", []Match{c("ct state", OpImplicit, one(ctState("established,related", 6)))}, "ct state established,related"},
		{"ct state new", pre, "", []Match{c("ct state", OpImplicit, one(ctState("new", 8)))}, "ct state new"},
		{"ct state set", pre, "", []Match{c("ct state", OpImplicit, set(one(ctState("established", 2)), one(ctState("related", 4))))}, "ct state { established, related }"},
		{"ct state eq", pre, "", []Match{c("ct state", OpEq, one(ctState("new", 8)))}, "ct state == new"},
		{"ct mark", pre, "", []Match{c("ct mark", OpImplicit, one(mark(5)))}, "ct mark 0x00000005"},
		{"limit", pre, "", []Match{&Limit{Rate: 10, Unit: PerSecond}}, "limit rate 10/second"},
		{"limit over burst", pre, "", []Match{&Limit{Over: true, Rate: 100, Unit: PerMinute, Burst: 20}}, "limit rate over 100/minute burst 20 packets"},
		{"numgen lt", pre, "", []Match{&Sample{Mod: 100, Op: OpLt, Value: 5}}, "numgen random mod 100 < 5"},
		{"numgen eq", pre, "", []Match{&Sample{Mod: 2, Op: OpImplicit, Value: 0}}, "numgen random mod 2 0"},
		{"two deps", pre, "", []Match{c("ip saddr", OpImplicit, one(addr("198.18.0.1"))), c("tcp dport", OpImplicit, one(port(22)))}, "ip saddr 198.18.0.1 tcp dport 22"},
		{"explicit l4proto", pre, "", []Match{c("meta l4proto", OpImplicit, one(u8("tcp", 6))), c("tcp dport", OpImplicit, one(port(80)))}, "tcp dport 80"},
		{"ip protocol then tcp", pre, "", []Match{c("ip protocol", OpImplicit, one(u8("tcp", 6))), c("tcp dport", OpImplicit, one(port(22)))}, "ip protocol tcp tcp dport 22"},
		{"ip6 nexthdr then udp", pre, "", []Match{c("ip6 nexthdr", OpImplicit, one(u8("udp", 17))), c("udp dport", OpImplicit, one(port(53)))}, "ip6 nexthdr udp udp dport 53"},
		{"netdev ether type then ip", HookIngress, "eth0", []Match{c("ether type", OpImplicit, one(dat("ip", be16(0x0800)))), c("ip saddr", OpImplicit, one(addr("198.18.0.1")))}, "ip saddr 198.18.0.1"}, // nft hides the dependency it would add itself
		{"netdev ether saddr", HookIngress, "eth0", []Match{c("ether saddr", OpImplicit, one(dat("02:00:00:00:00:01", []byte{2, 0, 0, 0, 0, 1})))}, "ether saddr 02:00:00:00:00:01"},
		{"netdev ether type", HookIngress, "eth0", []Match{c("ether type", OpImplicit, one(dat("arp", be16(0x0806))))}, "ether type arp"},
		{"netdev vlan id", HookIngress, "eth0", []Match{c("vlan id", OpImplicit, one(dat("10", be16(10))))}, "vlan id 10"},
		{"netdev ip saddr", HookIngress, "eth0", []Match{c("ip saddr", OpImplicit, one(addr("198.18.0.1")))}, "ip saddr 198.18.0.1"},
		{"netdev egress ip6", HookEgress, "eth1", []Match{c("ip6 daddr", OpImplicit, one(addr("2001:db8::1")))}, "ip6 daddr 2001:db8::1"},
		{"netdev egress tcp", HookEgress, "eth1", []Match{c("tcp dport", OpImplicit, one(port(22)))}, "tcp dport 22"},
		{"netdev ct-free set", HookIngress, "eth0", []Match{c("udp dport", OpImplicit, set(one(port(53)), rng(port(100), port(200))))}, "udp dport { 53, 100-200 }"},
	}
}

func TestOracle(t *testing.T) {
	o := newOracleNS(t)
	for _, tc := range oracleCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			rs := &Ruleset{Blocks: []*Block{{Hook: tc.hook, Device: tc.dev, Rules: []*Rule{rule(1, tc.ms...)}}}}
			p, err := Compile(rs, Options{Ifindex: o.ifindex(t)})
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			if err := p.Install(o.conn); err != nil {
				t.Fatalf("Install: %v\n%s", err, p.NFT())
			}
			ours := o.list(t, "nfmirror")
			if !ownerFlag.MatchString(ours) {
				t.Errorf("installed table has no owner:\n%s", ours)
			}
			ours = zeroCounters(ownerFlag.ReplaceAllString(ours, "\n"))
			if err := Uninstall(o.conn, "nfmirror"); err != nil {
				t.Fatalf("Uninstall: %v", err)
			}
			if _, errOut, err := o.Run(p.NFT(), "nft", "-f", "-"); err != nil {
				t.Fatalf("nft -f of NFT(): %v: %s\n%s", err, errOut, p.NFT())
			}
			theirs := zeroCounters(o.list(t, "nfmirror"))
			for _, fam := range []string{"inet", "netdev"} {
				o.Run("", "nft", "delete", "table", fam, "nfmirror")
			}
			if ours != theirs {
				t.Errorf("listings differ\nnfmirror installed:\n%s\nnft -f installed:\n%s\nNFT():\n%s", ours, theirs, p.NFT())
			}
			want := "\t\t" + tc.want + " counter packets 0 bytes 0 log prefix \"nfm:0\" group 6000 comment \"nfm:0\"\n"
			if !strings.Contains(ours, want) {
				t.Errorf("listing lacks %q:\n%s", want, ours)
			}
		})
	}
}
