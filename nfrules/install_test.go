package nfrules

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
)

func mustParse(t *testing.T, src string) *Ruleset {
	t.Helper()
	rs, err := Parse("t.nft", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %s", Describe(err))
	}
	return rs
}

// queueTargets counts the xt NFQUEUE v3 targets (bypass on) in nfmirror's
// inet table.
func (o *oracleNS) queueTargets(t *testing.T) int {
	t.Helper()
	tbl := &nftables.Table{Name: "nfmirror", Family: nftables.TableFamilyINet}
	chains, err := o.conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatalf("list chains: %v", err)
	}
	n := 0
	for _, ch := range chains {
		if ch.Table.Name != "nfmirror" {
			continue
		}
		rules, err := o.conn.GetRules(tbl, ch)
		if err != nil {
			t.Fatalf("list rules: %v", err)
		}
		for _, r := range rules {
			for _, e := range r.Exprs {
				tg, ok := e.(*expr.Target)
				if !ok {
					continue
				}
				info, _ := tg.Info.(*xt.Unknown)
				if tg.Name != "NFQUEUE" || tg.Rev != 3 || info == nil || len(*info) != 8 ||
					binary.NativeEndian.Uint16((*info)[2:]) != 1 || binary.NativeEndian.Uint16((*info)[4:]) != nfqFlagBypass {
					t.Errorf("chain %s: target %+v is not NFQUEUE v3 with bypass", ch.Name, tg)
					continue
				}
				n++
			}
		}
	}
	return n
}

func (o *oracleNS) compile(t *testing.T, rs *Ruleset) *Plan {
	t.Helper()
	p, err := Compile(rs, Options{Ifindex: o.ifindex(t)})
	if err != nil {
		t.Fatalf("Compile: %s", Describe(err))
	}
	return p
}

// TestInstallFiles installs every rules file of testdata (the example
// among them): what "nfmirror check" prints (Plan.NFT) must be what the
// kernel lists back, rule for rule and chain for chain; the golden file of
// each good file too; every source rule shows up with its comment, lossless
// rules as the xt NFQUEUE target; and files without lossless rules list
// exactly like nft's own load of Plan.NFT().
func TestInstallFiles(t *testing.T) {
	o := newOracleNS(t)
	files, _ := filepath.Glob("testdata/good/*.nft")
	top, _ := filepath.Glob("testdata/*.nft")
	files = append(files, top...)
	if len(files) < 4 {
		t.Fatalf("found %d test files", len(files))
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			rs, err := ParseFile(f)
			if err != nil {
				t.Fatalf("ParseFile: %s", Describe(err))
			}
			p := o.compile(t, rs)
			// What "nfmirror check" prints must pass nft's own check, lossless
			// rules included.
			if _, errOut, err := o.Run(p.NFT(), "nft", "-c", "-f", "-"); err != nil {
				t.Errorf("nft -c -f of NFT(): %v: %s", err, errOut)
			}
			if err := p.Install(o.conn); err != nil {
				t.Fatalf("Install: %v\n%s", err, p.NFT())
			}
			listing := o.list(t, "nfmirror")
			ours := zeroCounters(ownerFlag.ReplaceAllString(listing, "\n"))
			if got, want := listingText(p.NFT()), listingText(listing); got != want {
				t.Errorf("check prints what the kernel does not hold\ncheck:\n%s\nkernel:\n%s", got, want)
			}
			if strings.HasPrefix(f, "testdata/good/") {
				golden := filepath.Join("testdata", "golden", strings.TrimSuffix(filepath.Base(f), ".nft")+".golden")
				g, err := os.ReadFile(golden)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := listingText(string(g)), listingText(listing); got != want {
					t.Errorf("%s is not what the kernel holds\ngolden:\n%s\nkernel:\n%s", golden, got, want)
				}
			}
			lossless := 0
			for _, r := range p.Rules {
				if !strings.Contains(ours, `comment "`+ruleComment(r.ID)+`"`) {
					t.Errorf("rule %d (%s) missing from listing:\n%s", r.ID, r.Text, ours)
				}
				for _, ci := range r.Channels {
					if p.Channels[ci].Kind == ChannelNFQUEUE {
						lossless++
					}
				}
			}
			// nft 1.0.6 here is built without libxtables and lists xt
			// targets as nothing: read them back through netlink.
			if got := o.queueTargets(t); got != lossless {
				t.Errorf("kernel has %d NFQUEUE targets, want %d", got, lossless)
			}
			if err := Uninstall(o.conn, "nfmirror"); err != nil {
				t.Fatalf("Uninstall: %v", err)
			}
			if lossless > 0 {
				return
			}
			if _, errOut, err := o.Run(p.NFT(), "nft", "-f", "-"); err != nil {
				t.Fatalf("nft -f of NFT(): %v: %s", err, errOut)
			}
			theirs := zeroCounters(o.list(t, "nfmirror"))
			o.dropTables("nfmirror")
			if ours != theirs {
				t.Errorf("listings differ\nnfmirror installed:\n%s\nnft -f installed:\n%s", ours, theirs)
			}
		})
	}
}

// TestInstallSwap installs twice: the second Install replaces the first plan
// in one kernel transaction (the ruleset generation moves by exactly one),
// and Uninstall leaves foreign tables byte-identical, even one of the same
// name in another family.
func TestInstallSwap(t *testing.T) {
	o := newOracleNS(t)
	foreign := `table inet other {
	chain c {
		type filter hook input priority 0; policy accept;
		tcp dport 22 counter
	}
}
table ip nfmirror {
	chain c {
		type filter hook prerouting priority 0; policy accept;
		udp dport 53 counter
	}
}
`
	if _, errOut, err := o.Run(foreign, "nft", "-f", "-"); err != nil {
		t.Fatalf("load foreign tables: %v: %s", err, errOut)
	}
	listForeign := func() string {
		return o.MustRun(t, "nft", "list", "table", "inet", "other") + o.MustRun(t, "nft", "list", "table", "ip", "nfmirror")
	}
	before := listForeign()

	a := o.compile(t, mustParse(t, "input {\n    tcp dport 80 mirror to span0\n}\ningress \"eth0\" {\n    ether type arp mirror to span0\n}\n"))
	b := o.compile(t, mustParse(t, "output {\n    udp dport 53 mirror to span1 snaplen 64\n}\n"))
	if err := a.Install(o.conn); err != nil {
		t.Fatalf("Install a: %v", err)
	}
	if got := o.list(t, "nfmirror"); !strings.Contains(got, "tcp dport 80") || !strings.Contains(got, "table netdev nfmirror") {
		t.Fatalf("plan a not installed:\n%s", got)
	}
	g0, err := o.conn.GetGen()
	if err != nil {
		t.Fatalf("GetGen: %v", err)
	}
	if err := b.Install(o.conn); err != nil {
		t.Fatalf("Install b: %v", err)
	}
	g1, err := o.conn.GetGen()
	if err != nil {
		t.Fatalf("GetGen: %v", err)
	}
	if g1.ID != g0.ID+1 {
		t.Errorf("second Install took generations %d -> %d, want one transaction", g0.ID, g1.ID)
	}
	got := o.list(t, "nfmirror")
	if strings.Contains(got, "tcp dport 80") || strings.Contains(got, "ingress_eth0") || strings.Contains(got, "port_span0") ||
		!strings.Contains(got, "udp dport 53 counter packets") || !strings.Contains(got, "chain port_span1") {
		t.Errorf("after the swap the listing is not plan b alone:\n%s", got)
	}
	if err := Uninstall(o.conn, "nfmirror"); err != nil {
		t.Fatalf("Uninstall: %v", err)
	}
	if got := o.list(t, "nfmirror"); got != "" {
		t.Errorf("Uninstall left:\n%s", got)
	}
	if after := listForeign(); after != before {
		t.Errorf("foreign tables changed\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if err := Uninstall(o.conn, "nfmirror"); err != nil {
		t.Errorf("second Uninstall: %v", err)
	}
}

// TestInstallKernelError: a plan the kernel refuses (a netdev chain on a
// device name longer than IFNAMSIZ, which the parser would refuse) changes
// nothing: the previous plan stays. A missing iif device never gets that far:
// Compile resolves it and fails.
func TestInstallKernelError(t *testing.T) {
	o := newOracleNS(t)
	good := o.compile(t, mustParse(t, "prerouting {\n    tcp dport 80 mirror to span0\n}\n"))
	if err := good.Install(o.conn); err != nil {
		t.Fatalf("Install: %v", err)
	}
	before := o.ruleset(t)
	if _, err := Compile(mustParse(t, "input {\n    iif \"eth0\" mirror to span0\n}\n"), Options{Ifindex: func(string) (uint32, error) { return 0, errNoSuchIf }}); err == nil {
		t.Errorf("Compile of iif on a missing device succeeded")
	}
	bad := o.compile(t, &Ruleset{Blocks: []*Block{
		{Hook: HookPrerouting, Rules: []*Rule{rule(2, cmpv(t, "tcp dport", OpImplicit, one(port(81))))}},
		{Hook: HookIngress, Device: "a-device-name-far-too-long", Rules: []*Rule{rule(5)}},
	}})
	if err := bad.Install(o.conn); err == nil {
		t.Fatalf("Install of a chain on a missing device succeeded:\n%s", o.ruleset(t))
	}
	if after := o.ruleset(t); after != before {
		t.Errorf("a refused Install changed the ruleset\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestReadCounters sends three pings and reads them back per rule ID.
func TestReadCounters(t *testing.T) {
	o := newOracleNS(t)
	o.MustRun(t, "ip", "addr", "add", "198.18.0.1/24", "dev", "eth0")
	p := o.compile(t, mustParse(t, "output {\n    udp dport 9 mirror to span0\n    icmp type echo-request mirror to span0\n}\n"))
	if err := p.Install(o.conn); err != nil {
		t.Fatalf("Install: %v", err)
	}
	o.MustRun(t, "ping", "-c", "3", "-i", "0.2", "-W", "1", "-s", "56", "198.18.0.1")
	got, err := ReadCounters(o.conn, "nfmirror")
	if err != nil {
		t.Fatalf("ReadCounters: %v", err)
	}
	// 56 bytes of data + 8 ICMP + 20 IP = 84 bytes per echo request.
	want := map[int]Counter{0: {}, 1: {Packets: 3, Bytes: 3 * 84}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("ReadCounters = %v, want %v", got, want)
	}
	if err := Uninstall(o.conn, "nfmirror"); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadCounters(o.conn, "nfmirror"); err != nil || len(got) != 0 {
		t.Errorf("ReadCounters after Uninstall = %v, %v; want empty", got, err)
	}
}

// TestLosslessFailOpen: with no NFQUEUE reader, lossless rules let packets
// through (bypass), and a second lossless rule still sees the packets the
// first one queued, because each sits in a base chain of its own.
func TestLosslessFailOpen(t *testing.T) {
	o := newOracleNS(t)
	o.MustRun(t, "ip", "addr", "add", "198.18.0.1/24", "dev", "eth0")
	p := o.compile(t, mustParse(t, "output {\n    icmp type echo-request mirror to span0 lossless\n    ip daddr 198.18.0.1 icmp type echo-request mirror to span1 lossless\n    icmp type echo-request mirror to span0\n}\n"))
	if err := p.Install(o.conn); err != nil {
		t.Fatalf("Install: %v", err)
	}
	if got := o.queueTargets(t); got != 2 {
		t.Fatalf("kernel has %d NFQUEUE targets, want 2", got)
	}
	if _, errOut, err := o.Run("", "ping", "-c", "3", "-i", "0.2", "-W", "1", "198.18.0.1"); err != nil {
		t.Fatalf("ping through lossless rules without a reader failed (not fail-open): %v: %s", err, errOut)
	}
	got, err := ReadCounters(o.conn, "nfmirror")
	if err != nil {
		t.Fatalf("ReadCounters: %v", err)
	}
	for id := 0; id < 3; id++ {
		if got[id].Packets != 3 {
			t.Errorf("rule %d counted %d packets, want 3 (all: %v)", id, got[id].Packets, got)
		}
	}
}

// TestHostOrderSetsMatch: sets of interface names and marks (host-order
// keys) match in the kernel and list as written: three pings with mark 7
// out through lo are counted by both rules, and none by the rule for other
// values.
func TestHostOrderSetsMatch(t *testing.T) {
	o := newOracleNS(t)
	o.MustRun(t, "ip", "addr", "add", "198.18.0.1/24", "dev", "eth0")
	p := o.compile(t, mustParse(t, `output {
    meta mark { 0x1, 0x7 } icmp type echo-request mirror to span0
    oifname { "lo", "eth1" } icmp type echo-request mirror to span0
    meta mark { 0x2, 0x3 } oifname { "eth0", "eth1" } mirror to span0
}
`))
	if err := p.Install(o.conn); err != nil {
		t.Fatalf("Install: %v", err)
	}
	o.MustRun(t, "ping", "-c", "3", "-i", "0.2", "-W", "1", "-m", "7", "198.18.0.1")
	got, err := ReadCounters(o.conn, "nfmirror")
	if err != nil {
		t.Fatalf("ReadCounters: %v", err)
	}
	if got[0].Packets != 3 || got[1].Packets != 3 || got[2].Packets != 0 {
		t.Errorf("counters %v, want 3, 3 and 0 packets", got)
	}
	listing := o.list(t, "nfmirror")
	for _, want := range []string{
		"meta mark { 0x00000001, 0x00000007 } icmp type echo-request counter",
		`oifname { "lo", "eth1" } icmp type echo-request counter`,
		`meta mark { 0x00000002, 0x00000003 } oifname { "eth0", "eth1" } counter`,
	} {
		if !strings.Contains(listing, want) {
			t.Errorf("listing lacks %q:\n%s", want, listing)
		}
	}
}

// TestIssue9Examples installs the rules of issue 9's table, which nfmirror
// once installed with set elements in the wrong byte order, and checks what
// the kernel lists: nft's own listing of the same text.
func TestIssue9Examples(t *testing.T) {
	o := newOracleNS(t)
	tests := []struct{ hook, rule, want string }{
		{"forward", `oifname { "eth0", "wg0" }`, `oifname { "wg0", "eth0" }`},
		{"forward", `iifname != { "lo", "docker0" }`, `iifname != { "lo", "docker0" }`},
		{"input", `iif { "eth0", "lo" }`, `iif { "lo", "eth0" }`},
		{"input", `meta mark { 0x1, 0x2 }`, `meta mark { 0x00000001, 0x00000002 }`},
		{"input", `ct mark { 0x1, 0x2 }`, `ct mark { 0x00000001, 0x00000002 }`},
		{"input", `iifname { "eth*", "wg0" }`, `iifname { "eth*", "wg0" }`},
		{"input", `ip saddr { 10.0.0.0/24, 10.0.1.0/24 }`, `ip saddr { 10.0.0.0/23 }`},
		{"input", `ip saddr . tcp dport { 198.18.1.2 . 80 }`, `ip saddr . tcp dport { 198.18.1.2 . 80 }`},
		{"input", `tcp flags & (syn|ack) == syn`, `tcp flags syn / syn,ack`},
		{"input", `limit rate 10 mbytes/second`, `limit rate 10 mbytes/second`},
	}
	var src strings.Builder
	for _, tt := range tests {
		fmt.Fprintf(&src, "%s {\n\t%s mirror to span0\n}\n", tt.hook, tt.rule)
	}
	p := o.compile(t, mustParse(t, src.String()))
	if err := p.Install(o.conn); err != nil {
		t.Fatalf("Install: %v", err)
	}
	listing := o.list(t, "nfmirror")
	check := p.NFT()
	for i, tt := range tests {
		want := fmt.Sprintf("%s counter packets 0 bytes 0 log prefix \"nfm:%d\"", tt.want, i)
		if !strings.Contains(zeroCounters(listing), want) {
			t.Errorf("%s: kernel listing lacks %q:\n%s", tt.rule, want, listing)
		}
		if want := fmt.Sprintf("%s counter log prefix \"nfm:%d\"", tt.want, i); !strings.Contains(check, want) {
			t.Errorf("%s: check lacks %q:\n%s", tt.rule, want, check)
		}
	}
}
