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
func pfx(s string) *Prefix                { return &Prefix{Prefix: netip.MustParsePrefix(s).Masked()} }
func ctState(text string, v uint32) Datum { return dat(text, h32(v)) }

func cmpv(t testing.TB, field string, op Op, v Value) *Compare {
	return &Compare{Field: fld(t, field), Op: op, Value: v}
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
			rule(3, &Compare{Pos: Pos{File: "f", Line: 3, Col: 5}, Field: Fields["meta iif"], Value: one(Datum{Pos: Pos{File: "f", Line: 3, Col: 9}, Text: `"nope0"`})}),
		}}}}, `f:3:9: meta iif "nope0": no such interface`},
		{"ip and ip6", &Ruleset{Blocks: []*Block{{Hook: HookInput, Rules: []*Rule{
			rule(4, cmpv(t, "ip saddr", OpImplicit, one(addr("198.18.0.1"))),
				&Compare{Pos: Pos{File: "f", Line: 4, Col: 20}, Field: Fields["ip6 saddr"], Value: one(addr("2001:db8::1"))}),
		}}}}, "f:4:20: ip6 saddr conflicts with ip"},
		{"lossless netdev", &Ruleset{Blocks: []*Block{{Hook: HookIngress, Device: "eth0", Rules: []*Rule{
			{Pos: Pos{File: "f", Line: 5}, Mirrors: []*Mirror{{Pos: Pos{File: "f", Line: 5, Col: 3}, Dest: "span0", Lossless: true}}},
		}}}}, "f:5:3: lossless is not supported in ingress blocks"},
		{"range with <", &Ruleset{Blocks: []*Block{{Hook: HookInput, Rules: []*Rule{
			rule(6, &Compare{Pos: Pos{File: "f", Line: 6, Col: 1}, Field: Fields["tcp dport"], Op: OpLt, Value: rng(port(1), port(2))}),
		}}}}, "f:6:1: operator < cannot compare with a range"},
		{"overlapping set", &Ruleset{Blocks: []*Block{{Hook: HookInput, Rules: []*Rule{
			rule(7, &Compare{Field: Fields["tcp dport"], Value: &Set{Pos: Pos{File: "f", Line: 7, Col: 11}, Elems: []Value{rng(port(1), port(20)), one(port(10))}}}),
		}}}}, "f:7:11: set elements { 1-20, 10 } overlap"},
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
		"type filter hook forward priority 10; policy accept;",
		`type filter hook egress device "eth1" priority 10; policy accept;`,
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
		{"wildcard compares the prefix only", HookInput, []Match{cmpv(t, "meta iifname", OpImplicit, one(ifn("eth*")))},
			[]expr.Any{meta(expr.MetaKeyIIFNAME), eq('e', 't', 'h')}},
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
