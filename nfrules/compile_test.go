package nfrules

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
)

// Helpers that build ASTs by hand, the way the parser would, so that the
// compiler is tested on its own.

func fld(t testing.TB, name string) *Field {
	t.Helper()
	f := Fields[name]
	if f == nil {
		t.Fatalf("no field %q", name)
	}
	return f
}

func dat(text string, b []byte) Datum { return Datum{Text: text, Bytes: b} }
func be16(v uint16) []byte            { return binary.BigEndian.AppendUint16(nil, v) }
func h32(v uint32) []byte             { return binary.NativeEndian.AppendUint32(nil, v) }
func port(v uint16) Datum             { return dat(strconv.Itoa(int(v)), be16(v)) }
func u8(text string, v byte) Datum    { return dat(text, []byte{v}) }
func mark(v uint32) Datum             { return dat("0x"+strconv.FormatUint(uint64(v), 16), h32(v)) }
func addr(s string) Datum {
	a := netip.MustParseAddr(s)
	return dat(a.String(), a.AsSlice())
}

// ifn is an interface name: 16 bytes with NULs, or without the trailing
// NULs (and the "*") for a wildcard.
func ifn(name string) Datum {
	if w, ok := strings.CutSuffix(name, "*"); ok {
		return dat(strconv.Quote(name), []byte(w))
	}
	b := make([]byte, 16)
	copy(b, name)
	return dat(strconv.Quote(name), b)
}

func one(d Datum) *Single                 { return &Single{V: d} }
func rng(lo, hi Datum) *Range             { return &Range{Lo: lo, Hi: hi} }
func set(elems ...Value) *Set             { return &Set{Elems: elems} }
func ctState(text string, v uint32) Datum { return dat(text, h32(v)) }

func pfx(s string) *Prefix {
	p := netip.MustParsePrefix(s).Masked()
	return &Prefix{V: addr(p.Addr().String()), Len: p.Bits()}
}

func cmpv(t testing.TB, field string, op Op, v Value) *Compare {
	return &Compare{Fields: []*Field{fld(t, field)}, Op: op, Value: v}
}

func rule(line int, ms ...Match) *Rule {
	return &Rule{Pos: Pos{File: "test.nft", Line: line, Col: 2}, Matches: ms, Mirrors: []*Mirror{{Dest: "span0"}}}
}

func TestCompileChannelsAndRules(t *testing.T) {
	rs := &Ruleset{Blocks: []*Block{
		{Hook: HookPrerouting, Rules: []*Rule{
			rule(2, cmpv(t, "tcp dport", OpImplicit, one(port(80)))),
			{Pos: Pos{Line: 3}, Matches: []Match{cmpv(t, "udp dport", OpImplicit, one(port(53)))},
				Mirrors: []*Mirror{{Dest: "span0"}, {Dest: "span1", Snaplen: 128}}},
			{Pos: Pos{Line: 4}, Mirrors: []*Mirror{{Dest: "span0", Lossless: true}}},
		}},
		{Hook: HookPostrouting, Rules: []*Rule{rule(6)}},
		{Hook: HookIngress, Device: "eth0", Rules: []*Rule{rule(8)}},
	}}
	p, err := Compile(rs, Options{NFLOGBase: 100, QueueBase: 200})
	if err != nil {
		t.Fatal(err)
	}
	type ch struct {
		kind    ChannelKind
		num     uint16
		dest    string
		snaplen uint32
		netdev  bool
		rules   string
	}
	// One NFLOG group per destination, whatever the hook, family or
	// snaplen: copies to a destination keep the kernel's order.
	want := []ch{
		{ChannelNFLOG, 100, "span0", 0, true, "[0 1 3 4]"},
		{ChannelNFLOG, 101, "span1", 0, false, "[1]"},
		{ChannelNFQUEUE, 200, "span0", 0, false, "[2]"},
	}
	if len(p.Channels) != len(want) {
		t.Fatalf("got %d channels %+v, want %d", len(p.Channels), p.Channels, len(want))
	}
	for i, w := range want {
		c := p.Channels[i]
		got := ch{c.Kind, c.Num, c.Dest, c.Snaplen, c.Netdev, fmtInts(c.RuleIDs)}
		if got != w {
			t.Errorf("channel %d = %+v, want %+v", i, got, w)
		}
	}
	wantRules := []string{"[0]", "[0 1]", "[2]", "[0]", "[0]"}
	if len(p.Rules) != 5 {
		t.Fatalf("got %d rules, want 5", len(p.Rules))
	}
	for i, w := range wantRules {
		if p.Rules[i].ID != i || fmtInts(p.Rules[i].Channels) != w {
			t.Errorf("rule %d: ID %d channels %v, want ID %d channels %s", i, p.Rules[i].ID, p.Rules[i].Channels, i, w)
		}
	}
	if p.Rules[4].Device != "eth0" || p.Rules[4].Hook != HookIngress {
		t.Errorf("rule 4 hook %s device %q", p.Rules[4].Hook, p.Rules[4].Device)
	}
}

func fmtInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return "[" + strings.Join(s, " ") + "]"
}

func TestCompileErrors(t *testing.T) {
	noIf := func(string) (uint32, error) { return 0, errNoSuchIf }
	tests := []struct {
		name string
		rs   *Ruleset
		want string
	}{
		{"missing interface", &Ruleset{Blocks: []*Block{{Hook: HookInput, Rules: []*Rule{
			rule(3, &Compare{Pos: Pos{File: "f", Line: 3, Col: 5}, Fields: []*Field{Fields["meta iif"]}, Value: one(Datum{Pos: Pos{File: "f", Line: 3, Col: 9}, Bytes: []byte("nope0"), Text: `"nope0"`})}),
		}}}}, `f:3:9: meta iif "nope0": no such interface`},
		{"ip and ip6", &Ruleset{Blocks: []*Block{{Hook: HookInput, Rules: []*Rule{
			rule(4, cmpv(t, "ip saddr", OpImplicit, one(addr("198.18.0.1"))),
				&Compare{Pos: Pos{File: "f", Line: 4, Col: 20}, Fields: []*Field{Fields["ip6 saddr"]}, Value: one(addr("2001:db8::1"))}),
		}}}}, "f:4:20: ip6 saddr conflicts with ip"},
		{"lossless netdev", &Ruleset{Blocks: []*Block{{Hook: HookIngress, Device: "eth0", Rules: []*Rule{
			{Pos: Pos{File: "f", Line: 5}, Mirrors: []*Mirror{{Pos: Pos{File: "f", Line: 5, Col: 3}, Dest: "span0", Lossless: true}}},
		}}}}, "f:5:3: lossless is not supported in ingress blocks"},
		{"range with <", &Ruleset{Blocks: []*Block{{Hook: HookInput, Rules: []*Rule{
			rule(6, &Compare{Pos: Pos{File: "f", Line: 6, Col: 1}, Fields: []*Field{Fields["tcp dport"]}, Op: OpLt, Value: rng(port(1), port(2))}),
		}}}}, "f:6:1: operator < cannot compare with a range"},
		{"missing interface in a set", &Ruleset{Blocks: []*Block{{Hook: HookInput, Rules: []*Rule{
			rule(7, &Compare{Fields: []*Field{Fields["meta iif"]}, Value: set(one(Datum{Pos: Pos{File: "f", Line: 7, Col: 15}, Bytes: []byte("nope1"), Text: `"nope1"`}), one(dat(`"lo"`, []byte("lo"))))}),
		}}}}, `f:7:15: meta iif "nope1": no such interface`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Compile(tt.rs, Options{Ifindex: noIf})
			if err == nil {
				t.Fatalf("Compile succeeded:\n%s", p.NFT())
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) != 1 {
				t.Errorf("error %#v is not an ErrorList of one", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

type errString string

func (e errString) Error() string { return string(e) }

const errNoSuchIf = errString("no such interface")

func TestCompileDefaultsAndGuards(t *testing.T) {
	rs := &Ruleset{Blocks: []*Block{
		{Hook: HookForward, Rules: []*Rule{rule(2)}},
		{Hook: HookEgress, Device: "eth1", Rules: []*Rule{{Pos: Pos{Line: 4}, Mirrors: []*Mirror{{Dest: "span9"}}}}},
	}}
	p, err := Compile(rs, Options{TableName: "t1", Mark: 0x1234, MarkMask: 0xff00})
	if err != nil {
		t.Fatal(err)
	}
	out := p.NFT()
	for _, w := range []string{
		"table inet t1 {", "table netdev t1 {",
		"type filter hook forward priority filter + 10; policy accept;",
		`type filter hook egress device "eth1" priority filter + 10; policy accept;`,
		"meta mark & 0x0000ff00 == 0x00001200 return",
		`iifname "span0" return`, `oifname "span0" return`,
		`log prefix "nfm:0" group 6000`, `log prefix "nfm:1" group 6001`,
	} {
		if !strings.Contains(out, w) {
			t.Errorf("NFT() lacks %q:\n%s", w, out)
		}
	}
	// netdev chains get the mark guard only.
	netdev := out[strings.Index(out, "table netdev"):]
	if strings.Contains(netdev, "ifname") {
		t.Errorf("netdev table has an interface guard:\n%s", netdev)
	}
}

// TestCompileExprs checks the bytecode of a few rules against what
// "nft --debug=netlink" prints for the same text on nft 1.0.6 (the oracle
// test checks every expression against nft itself, as root).
func TestCompileExprs(t *testing.T) {
	pl := func(base expr.PayloadBase, off, n uint32) *expr.Payload {
		return &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: base, Offset: off, Len: n}
	}
	eq := func(b ...byte) *expr.Cmp { return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b} }
	meta := func(k expr.MetaKey) *expr.Meta { return &expr.Meta{Key: k, Register: 1} }
	nh, th := expr.PayloadBaseNetworkHeader, expr.PayloadBaseTransportHeader
	tests := []struct {
		name string
		hook Hook
		ms   []Match
		want []expr.Any
	}{
		{"tcp dport: l4proto dependency", HookPrerouting, []Match{cmpv(t, "tcp dport", OpImplicit, one(port(80)))},
			[]expr.Any{meta(expr.MetaKeyL4PROTO), eq(6), pl(th, 2, 2), eq(0, 80)}},
		{"aligned prefix loads 2 bytes", HookPrerouting, []Match{cmpv(t, "ip saddr", OpImplicit, pfx("198.18.0.0/16"))},
			[]expr.Any{meta(expr.MetaKeyNFPROTO), eq(2), pl(nh, 12, 2), eq(198, 18)}},
		{"unaligned prefix masks", HookPrerouting, []Match{cmpv(t, "ip saddr", OpImplicit, pfx("198.18.0.0/15"))},
			[]expr.Any{meta(expr.MetaKeyNFPROTO), eq(2), pl(nh, 12, 4),
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 254, 0, 0}, Xor: []byte{0, 0, 0, 0}}, eq(198, 18, 0, 0)}},
		{"range is two cmps", HookPrerouting, []Match{cmpv(t, "tcp dport", OpImplicit, rng(port(1000), port(2000)))},
			[]expr.Any{meta(expr.MetaKeyL4PROTO), eq(6), pl(th, 2, 2),
				&expr.Cmp{Op: expr.CmpOpGte, Register: 1, Data: be16(1000)}, &expr.Cmp{Op: expr.CmpOpLte, Register: 1, Data: be16(2000)}}},
		{"range neq is a range expr", HookPrerouting, []Match{cmpv(t, "tcp dport", OpNeq, rng(port(1000), port(2000)))},
			[]expr.Any{meta(expr.MetaKeyL4PROTO), eq(6), pl(th, 2, 2), &expr.Range{Op: expr.CmpOpNeq, Register: 1, FromData: be16(1000), ToData: be16(2000)}}},
		{"ct state implicit is any bit", HookPrerouting, []Match{cmpv(t, "ct state", OpImplicit, one(ctState("established,related", 6)))},
			[]expr.Any{&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: h32(6), Xor: make([]byte, 4)},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)}}},
		{"host-order relational converts", HookPrerouting, []Match{cmpv(t, "meta mark", OpGt, one(mark(0x10)))},
			[]expr.Any{meta(expr.MetaKeyMARK), &expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4},
				&expr.Cmp{Op: expr.CmpOpGt, Register: 1, Data: []byte{0, 0, 0, 0x10}}}},
		{"netdev ip: meta protocol", HookIngress, []Match{cmpv(t, "ip saddr", OpImplicit, one(addr("198.18.0.1")))},
			[]expr.Any{meta(expr.MetaKeyPROTOCOL), eq(0x08, 0x00), pl(nh, 12, 4), eq(198, 18, 0, 1)}},
		{"wildcard compares the prefix only", HookInput, []Match{&Compare{Fields: []*Field{fld(t, "meta iifname")}, Value: &Prefix{V: ifn("eth0"), Len: 24}}},
			[]expr.Any{meta(expr.MetaKeyIIFNAME), eq('e', 't', 'h')}},
		{"l4proto then tcp: no second dependency", HookInput, []Match{cmpv(t, "meta l4proto", OpImplicit, one(u8("tcp", 6))), cmpv(t, "tcp dport", OpImplicit, one(port(22)))},
			[]expr.Any{meta(expr.MetaKeyL4PROTO), eq(6), pl(th, 2, 2), eq(0, 22)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &Block{Hook: tt.hook, Rules: []*Rule{rule(1, tt.ms...)}}
			if tt.hook.Family() == FamilyNetdev {
				b.Device = "eth0"
			}
			p, err := Compile(&Ruleset{Blocks: []*Block{b}}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			ch := p.tables[0].chains[0]
			got := ch.rules[len(ch.rules)-1].exprs
			if len(got) < len(tt.want) || !reflect.DeepEqual(got[:len(tt.want)], tt.want) {
				t.Errorf("exprs:\n%s\nwant prefix:\n%s", dumpExprs(got), dumpExprs(tt.want))
			}
			if _, ok := got[len(tt.want)].(*expr.Counter); !ok {
				t.Errorf("expression after the matches is %T, want a counter", got[len(tt.want)])
			}
		})
	}
}

func dumpExprs(es []expr.Any) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "  %T %+v\n", e, e)
	}
	return b.String()
}

// lastRule compiles a one-rule file and returns the expressions and sets of
// that rule.
func lastRule(t *testing.T, src string) ([]expr.Any, []*anonSet) {
	t.Helper()
	p, err := Compile(mustParse(t, src), Options{Ifindex: fakeIfindex})
	if err != nil {
		t.Fatalf("Compile: %s", Describe(err))
	}
	ch := p.tables[0].chains[0]
	kr := ch.rules[len(ch.rules)-1]
	return kr.exprs, kr.sets
}

// TestCompileVocabulary checks the bytecode of the newer matches against
// what "nft --debug=netlink" prints for the same text on nft 1.0.6.
func TestCompileVocabulary(t *testing.T) {
	pl := func(base expr.PayloadBase, off, n uint32) *expr.Payload {
		return &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: base, Offset: off, Len: n}
	}
	eq := func(b ...byte) *expr.Cmp { return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b} }
	meta := func(k expr.MetaKey) *expr.Meta { return &expr.Meta{Key: k, Register: 1} }
	and := func(m ...byte) *expr.Bitwise { return bitwise(uint32(len(m)), m, make([]byte, len(m))) }
	look := func(inv bool) *setRef { return &setRef{Lookup: expr.Lookup{SourceRegister: 1, Invert: inv}} }
	ll, nh, th := expr.PayloadBaseLLHeader, expr.PayloadBaseNetworkHeader, expr.PayloadBaseTransportHeader
	ip4 := []expr.Any{meta(expr.MetaKeyNFPROTO), eq(2)}
	tcp := []expr.Any{meta(expr.MetaKeyL4PROTO), eq(6)}
	cat := func(parts ...[]expr.Any) []expr.Any {
		var out []expr.Any
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		rule string
		want []expr.Any
	}{
		{"ip dscp cs1", cat(ip4, []expr.Any{pl(nh, 1, 1), and(0xfc), eq(0x20)})},
		{"ip dscp > 10", cat(ip4, []expr.Any{pl(nh, 1, 1), and(0xfc), &expr.Cmp{Op: expr.CmpOpGt, Register: 1, Data: []byte{0x28}}})},
		{"ip6 dscp ef", []expr.Any{meta(expr.MetaKeyNFPROTO), eq(10), pl(nh, 0, 2), and(0x0f, 0xc0), eq(0x0b, 0x80)}},
		{"ip6 flowlabel 1234", []expr.Any{meta(expr.MetaKeyNFPROTO), eq(10), pl(nh, 1, 3), and(0x0f, 0xff, 0xff), eq(0x00, 0x04, 0xd2)}},
		{"ip frag-off & 0x1fff != 0", cat(ip4, []expr.Any{pl(nh, 6, 2), and(0x1f, 0xff), &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0}}})},
		{"ip ttl < 5", cat(ip4, []expr.Any{pl(nh, 8, 1), &expr.Cmp{Op: expr.CmpOpLt, Register: 1, Data: []byte{5}}})},
		{"tcp doff 5", cat(tcp, []expr.Any{pl(th, 12, 1), and(0xf0), eq(0x50)})},
		{"tcp flags & (syn|ack) == syn", cat(tcp, []expr.Any{pl(th, 13, 1), and(0x12), eq(0x02)})},
		{"tcp flags syn / syn,ack", cat(tcp, []expr.Any{pl(th, 13, 1), and(0x12), eq(0x02)})},
		{"tcp flags != syn", cat(tcp, []expr.Any{pl(th, 13, 1), &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0x02}}})},
		{"th dport { 53, 123 }", []expr.Any{pl(th, 2, 2), look(false)}},
		{"udp length 8", []expr.Any{meta(expr.MetaKeyL4PROTO), eq(17), pl(th, 4, 2), eq(0, 8)}},
		{"icmp code port-unreachable", cat(ip4, []expr.Any{meta(expr.MetaKeyL4PROTO), eq(1), pl(th, 1, 1), eq(3)})},
		{"icmp mtu 5", cat(ip4, []expr.Any{meta(expr.MetaKeyL4PROTO), eq(1), pl(th, 0, 1), eq(3), pl(th, 6, 2), eq(0, 5)})},
		{"icmp id 5", cat(ip4, []expr.Any{meta(expr.MetaKeyL4PROTO), eq(1), pl(th, 0, 1), look(false), pl(th, 4, 2), eq(0, 5)})},
		{"meta length > 1000", []expr.Any{meta(expr.MetaKeyLEN), hton(4), &expr.Cmp{Op: expr.CmpOpGt, Register: 1, Data: []byte{0, 0, 0x03, 0xe8}}}},
		{"ct status dnat", []expr.Any{&expr.Ct{Key: expr.CtKeySTATUS, Register: 1}, bitwise(4, h32(0x20), make([]byte, 4)), &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)}}},
		{"ct direction original", []expr.Any{&expr.Ct{Key: expr.CtKeyDIRECTION, Register: 1}, eq(0)}},
		{"ct original ip saddr 198.18.0.1", []expr.Any{&expr.Ct{Key: expr.CtKeySRCIP, Register: 1, Direction: 0, OptDirection: true}, eq(198, 18, 0, 1)}},
		{"meta nfproto ipv4", []expr.Any{meta(expr.MetaKeyNFPROTO), eq(2)}},
		{"meta iiftype ether", []expr.Any{meta(expr.MetaKeyIIFTYPE), eq(binary.NativeEndian.AppendUint16(nil, 1)...)}},
		{"meta mark | 0x10 == 0x11", []expr.Any{meta(expr.MetaKeyMARK), bitwise(4, h32(0xffffffef), h32(0x10)), eq(h32(0x11)...)}},
		{`iifname "eth*"`, []expr.Any{meta(expr.MetaKeyIIFNAME), eq('e', 't', 'h')}},
		{"ip saddr . tcp dport { 198.18.1.2 . 80 }", cat(ip4, tcp, []expr.Any{pl(nh, 12, 4), &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 9, Base: th, Offset: 2, Len: 2}, look(false)})},
		{`iifname . ip saddr { "eth0" . 198.18.0.1 }`, cat(ip4, []expr.Any{meta(expr.MetaKeyIIFNAME), &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 2, Base: nh, Offset: 12, Len: 4}, look(false)})},
		{"tcp dport . meta mark { 22 . 0x1, 80-443 . 0x2 }", cat(tcp, []expr.Any{pl(th, 2, 2), &expr.Meta{Key: expr.MetaKeyMARK, Register: 9},
			&expr.Byteorder{SourceRegister: 9, DestRegister: 9, Op: expr.ByteorderHton, Len: 4, Size: 4}, look(false)})},
		{"meta mark { 0x1-0x5, 0x100 }", []expr.Any{meta(expr.MetaKeyMARK), hton(4), look(false)}},
		{"ip saddr != 198.18.0.0/15", cat(ip4, []expr.Any{pl(nh, 12, 4), and(255, 254, 0, 0), &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{198, 18, 0, 0}}})},
		{"limit rate 10 mbytes/second", []expr.Any{&expr.Limit{Type: expr.LimitTypePktBytes, Rate: 10 << 20, Unit: expr.LimitTimeSecond}}},
		{"limit rate over 1024 kbytes/minute burst 5 mbytes", []expr.Any{&expr.Limit{Type: expr.LimitTypePktBytes, Rate: 1 << 20, Over: true, Unit: expr.LimitTimeMinute, Burst: 5 << 20}}},
		{"ether type vlan vlan id 10", []expr.Any{meta(expr.MetaKeyIIFTYPE), eq(binary.NativeEndian.AppendUint16(nil, 1)...), pl(ll, 12, 2), eq(0x81, 0x00), pl(ll, 14, 2), and(0x0f, 0xff), eq(0, 10)}},
		{"vlan pcp 3", []expr.Any{meta(expr.MetaKeyIIFTYPE), eq(binary.NativeEndian.AppendUint16(nil, 1)...), pl(ll, 12, 2), eq(0x81, 0x00), pl(ll, 14, 1), and(0xe0), eq(0x60)}},
		{"arp operation request", []expr.Any{meta(expr.MetaKeyPROTOCOL), eq(0x08, 0x06), pl(nh, 6, 2), eq(0, 1)}},
		{"arp daddr ip 198.18.0.0/24", []expr.Any{meta(expr.MetaKeyPROTOCOL), eq(0x08, 0x06), pl(nh, 24, 3), eq(198, 18, 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			hook := "prerouting"
			if strings.HasPrefix(tt.rule, "vlan") || strings.HasPrefix(tt.rule, "ether") || strings.HasPrefix(tt.rule, "arp") {
				hook = `ingress "eth0"`
			}
			got, _ := lastRule(t, fmt.Sprintf("%s {\n\t%s mirror to span0\n}\n", hook, tt.rule))
			for i, e := range got {
				if r, ok := e.(*setRef); ok {
					got[i] = &setRef{Lookup: r.Lookup} // the index is checked below
				}
			}
			if len(got) < len(tt.want) || !reflect.DeepEqual(got[:len(tt.want)], tt.want) {
				t.Errorf("exprs:\n%s\nwant prefix:\n%s", dumpExprs(got), dumpExprs(tt.want))
			}
		})
	}
}

// TestCompileSets checks set elements, flags and userdata against what nft
// 1.0.6 sends for the same text ("nft --debug=netlink,mnl"): elements in
// register byte order, interval sets as start and end+1 keys with nft's
// merging, and the userdata nft's listing reads.
func TestCompileSets(t *testing.T) {
	le := binary.NativeEndian.Uint16([]byte{1, 0}) == 1
	if !le {
		t.Skip("the expected bytes are those of a little-endian machine")
	}
	tests := []struct {
		rule     string
		elems    string // key[-keyend][/end][/open] ...
		interval bool
		concat   bool
		udata    string
	}{
		{"meta mark { 0x1, 0x2 }", "01000000 02000000", false, false, "00 04 01 00 00 00 03 0e 00 04 09 00 00 00 01 06 00 04 03 00 00 00"},
		{`iifname { "eth0", "wg0" }`, "65746830000000000000000000000000 77673000000000000000000000000000", false, false, "00 04 01 00 00 00 03 0e 00 04 09 00 00 00 01 06 00 04 06 00 00 00"},
		{"tcp dport { 80, 443 }", "0050 01bb", false, false, "00 04 02 00 00 00 03 14 00 04 07 00 00 00 01 0c 00 04 08 00 00 00 01 04 02 00 00 00"},
		{"tcp dport { 80, 443-500 }", "0000/end 0050 0051/end 01bb 01f5/end", true, false, "00 04 02 00 00 00 02 04 01 00 00 00 03 14 00 04 07 00 00 00 01 0c 00 04 08 00 00 00 01 04 02 00 00 00"},
		{"ip saddr { 10.0.0.0/24, 10.0.1.0/24 }", "00000000/end 0a000000 0a000200/end", true, false, "00 04 02 00 00 00 02 04 01 00 00 00 03 14 00 04 07 00 00 00 01 0c 00 04 0c 00 00 00 01 04 0b 00 00 00"},
		{"ip saddr { 10.0.0.0/24, 10.0.0.5 }", "00000000/end 0a000000 0a000100/end", true, false, ""},
		{"tcp dport { 1-5, 6-10, 20 }", "0000/end 0001 000b/end 0014 0015/end", true, false, ""},
		{"tcp dport { 0-10, 65535 }", "0000 000b/end ffff/open", true, false, ""},
		{"ct state { new, established }", "08000000 02000000", false, false, "00 04 01 00 00 00 03 14 00 04 0c 00 00 00 01 0c 00 04 00 00 00 00 01 04 ff ff ff ff"},
		{"ip ttl { 1, 2 }", "01 02", false, false, "00 04 02 00 00 00 03 1a 00 04 07 00 00 00 01 12 00 04 0c 00 00 00 01 04 08 00 00 00 04 04 08 00 00 00"},
		{"ip dscp { cs1, ef }", "20 b8", false, false, "00 04 02 00 00 00"},
		{"ip version { 4, 5-6 }", "00/end 40 61/end", true, false, ""},
		{"ip ecn { 0, 1-3 }", "00/open", true, false, ""},
		{"ip dscp { 1-2, 60-63 }", "00/end 04 09/end f0 fd/end", true, false, ""},
		{`iifname { "eth*", "wg0" }`, "00000000000000000000000000000000/end 65746800000000000000000000000000 65746900000000000000000000000000/end 77673000000000000000000000000000 77673000000000000000000000000001/end", true, false,
			"00 04 01 00 00 00 02 04 01 00 00 00 03 0e 00 04 09 00 00 00 01 06 00 04 06 00 00 00"},
		{"meta mark { 0x1-0x5, 0x100 }", "00000000/end 00000001 00000006/end 00000100 00000101/end", true, false, "00 04 01 00 00 00 02 04 01 00 00 00 03 0e 00 04 09 00 00 00 01 06 00 04 03 00 00 00"},
		{"ip saddr . tcp dport { 1.1.1.1 . 80 }", "0101010100500000", false, true,
			"00 04 00 00 00 00 03 34 00 04 0d 00 00 00 01 2c 00 14 00 04 07 00 00 00 01 0c 00 04 0c 00 00 00 01 04 0b 00 00 00 01 14 00 04 07 00 00 00 01 0c 00 04 08 00 00 00 01 04 02 00 00 00"},
		{"tcp dport . meta mark { 22 . 0x1, 80-443 . 0x2 }", "0016000000000001-0016000000000001 0050000000000002-01bb000000000002", true, true,
			"00 04 00 00 00 00 02 04 01 00 00 00 03 1e 00 04 0d 00 00 00 01 16 00 14 00 04 07 00 00 00 01 0c 00 04 08 00 00 00 01 04 02 00 00 00"},
		{"ip ttl . meta mark { 5 . 0x1 }", "0500000001000000", false, true,
			"00 04 00 00 00 00 03 34 00 04 0d 00 00 00 01 2c 00 1a 00 04 07 00 00 00 01 12 00 04 0c 00 00 00 01 04 08 00 00 00 04 04 08 00 00 00 01 0e 00 04 09 00 00 00 01 06 00 04 03 00 00 00"},
		{"meta mark . tcp dport { 0x1 . 80-90 }", "0000000100500000-00000001005a0000", true, true, "00 04 00 00 00 00 02 04 01 00 00 00 03 08 00 04 0d 00 00 00 01 00"},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			_, sets := lastRule(t, fmt.Sprintf("forward {\n\t%s mirror to span0\n}\n", tt.rule))
			s := sets[len(sets)-1]
			var elems []string
			for _, e := range s.elems {
				k := fmt.Sprintf("%x", e.Key)
				if e.KeyEnd != nil {
					k += fmt.Sprintf("-%x", e.KeyEnd)
				}
				if e.IntervalEnd {
					k += "/end"
				}
				if e.IntervalOpen {
					k += "/open"
				}
				elems = append(elems, k)
			}
			if got := strings.Join(elems, " "); got != tt.elems {
				t.Errorf("elements %s, want %s", got, tt.elems)
			}
			if s.interval != tt.interval || s.concat != tt.concat {
				t.Errorf("interval %v concat %v, want %v %v", s.interval, s.concat, tt.interval, tt.concat)
			}
			if tt.udata != "" {
				if got := strings.TrimSpace(fmt.Sprintf("% x", s.userdata())); got != tt.udata {
					t.Errorf("userdata\n%s\nwant\n%s", got, tt.udata)
				}
			}
		})
	}
}
