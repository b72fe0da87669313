package nfrules

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/google/nftables/expr"
)

// maxIfnameLen is the longest interface name Linux accepts (IFNAMSIZ-1).
const maxIfnameLen = 15

// checkIfname returns why name is not a valid interface name, or "".
// wildcard allows a trailing '*'.
func checkIfname(name string, wildcard bool) string {
	base := name
	if wildcard {
		base = strings.TrimSuffix(name, "*")
	}
	switch {
	case name == "":
		return "interface name is empty"
	case len(base) > maxIfnameLen:
		return fmt.Sprintf("interface name %q is %d bytes long: at most %d are allowed", name, len(base), maxIfnameLen)
	case base == "" && wildcard:
		return "interface wildcard \"*\" needs a prefix, such as \"eth*\""
	case base == "." || base == "..":
		return fmt.Sprintf("%q is not a valid interface name", name)
	}
	for i := 0; i < len(base); i++ {
		c := base[i]
		switch {
		case c == '*':
			if wildcard {
				return fmt.Sprintf("interface name %q: '*' is only allowed at the end", name)
			}
			return fmt.Sprintf("interface name %q: wildcards are not allowed here", name)
		case c == '/' || c == ':' || c <= ' ' || c == 0x7f || c == '"':
			return fmt.Sprintf("interface name %q contains %q, which Linux does not allow", name, c)
		}
	}
	return ""
}

// encodeUint encodes n at the field's length and byte order.
func encodeUint(f *Field, n uint64) []byte {
	b := make([]byte, 8)
	if f.HostOrder {
		binary.NativeEndian.PutUint64(b, n)
		if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 { // little-endian: low bytes first
			return b[:f.Len]
		}
		return b[8-f.Len:]
	}
	binary.BigEndian.PutUint64(b, n)
	return b[8-f.Len:]
}

// bitsOf returns how many bits a value of f may use.
func bitsOf(f *Field) int {
	if f.Type == TypeVlanID {
		return 12
	}
	return int(f.Len) * 8
}

// atom is one typed literal, with a big-endian key for ordering ranges.
type atom struct {
	d   Datum
	key []byte
	num uint64
}

// typeAtom types the literal v for field f. It returns a message instead of
// reporting it, so callers can try other readings ("ipv6-icmp" is a name,
// "1-5" is a range).
func typeAtom(f *Field, v *rawVal) (atom, string) {
	s := v.Text
	d := Datum{Pos: v.Pos}
	switch f.Type {
	case TypeIfname, TypeIfindex:
		wild := f.Type == TypeIfname
		if msg := checkIfname(s, wild); msg != "" {
			return atom{}, msg
		}
		d.Text = `"` + s + `"`
		switch {
		case f.Type == TypeIfindex:
			d.Bytes = []byte(s)
		case strings.HasSuffix(s, "*"):
			d.Bytes = []byte(strings.TrimSuffix(s, "*"))
		default:
			d.Bytes = make([]byte, 16)
			copy(d.Bytes, s)
		}
		return atom{d: d, key: d.Bytes}, ""
	}
	if v.Quoted {
		return atom{}, fmt.Sprintf("%s expects %s, not the string \"%s\"", f.Name, typeNames[f.Type], s)
	}
	switch f.Type {
	case TypeIPv4Addr, TypeIPv6Addr:
		a, err := netip.ParseAddr(s)
		want4 := f.Type == TypeIPv4Addr
		if err != nil || a.Zone() != "" {
			return atom{}, fmt.Sprintf("%s expects %s, not %q", f.Name, typeNames[f.Type], s)
		}
		if want4 && !a.Is4() {
			return atom{}, fmt.Sprintf("%s expects an IPv4 address, not the IPv6 address %s (use ip6 %s)", f.Name, s, strings.TrimPrefix(f.Name, "ip "))
		}
		if !want4 && !a.Is6() {
			return atom{}, fmt.Sprintf("%s expects an IPv6 address, not the IPv4 address %s (use ip %s)", f.Name, s, strings.TrimPrefix(f.Name, "ip6 "))
		}
		d.Bytes = a.AsSlice()
		d.Text = a.String()
		return atom{d: d, key: d.Bytes}, ""
	case TypeEtherAddr:
		hw, err := net.ParseMAC(s)
		if err != nil || len(hw) != 6 {
			return atom{}, fmt.Sprintf("%s expects an Ethernet address such as 02:00:00:00:00:01, not %q", f.Name, s)
		}
		d.Bytes = []byte(hw)
		d.Text = hw.String()
		return atom{d: d, key: d.Bytes}, ""
	}
	syms := symbolsOf(f.Type)
	var n uint64
	var text string
	if isDigit(s[0]) {
		var ok bool
		n, ok = parseUint(s, bitsOf(f))
		if _, valid := parseUint(s, 64); !valid {
			if syms != nil {
				if sv, found := syms.lookup(strings.ToLower(s)); found {
					n, ok, text = sv, true, syms.name(sv)
				}
			}
			if text == "" {
				return atom{}, fmt.Sprintf("%s expects %s, not %q", f.Name, typeNames[f.Type], s)
			}
		}
		if !ok {
			what := "value"
			if f.Type == TypePort {
				what = "port"
			}
			return atom{}, fmt.Sprintf("%s %s %s out of range: at most %d", f.Name, what, s, uint64(1)<<bitsOf(f)-1)
		}
		if text == "" {
			text = strings.ToLower(s)
			if f.Type == TypePort || f.Type == TypeVlanID {
				text = strconv.FormatUint(n, 10)
			}
		}
	} else {
		sv, found := syms.lookup(strings.ToLower(s))
		if syms == nil || !found {
			hint := ""
			if syms != nil {
				hint = suggest(strings.ToLower(s), syms.names())
			}
			return atom{}, fmt.Sprintf("%s expects %s, not %q%s", f.Name, typeNames[f.Type], s, hint)
		}
		n, text = sv, syms.name(sv)
		if f.Type == TypePort {
			text = strconv.FormatUint(n, 10)
		}
	}
	d.Bytes = encodeUint(f, n)
	d.Text = text
	key := make([]byte, 8)
	binary.BigEndian.PutUint64(key, n)
	return atom{d: d, key: key, num: n}, ""
}

// isBitmask reports whether a type's implicit match means "any of these bits".
func isBitmask(t Type) bool { return t == TypeTCPFlags || t == TypeCtState }

// ordered reports whether <, >, ranges and the like make sense for t.
func ordered(t Type) bool {
	switch t {
	case TypeIfname, TypeIfindex, TypeTCPFlags, TypeCtState, TypePkttype:
		return false
	}
	return true
}

// typeSingle types a single value or a bitmask list into one Datum.
func (p *parser) typeSingle(f *Field, v *rawVal) (Datum, bool) {
	switch v.Kind {
	case rvAtom:
		a, msg := typeAtom(f, v)
		if msg != "" {
			p.errorf(v.Pos, "%s", msg)
			return Datum{}, false
		}
		return a.d, true
	case rvList:
		if !isBitmask(f.Type) && f.Type != TypeMark && f.Type != TypeInteger {
			p.errorf(v.Pos, "%s takes one value: write several values as a set { a, b }", f.Name)
			return Datum{}, false
		}
		var bits uint64
		var texts []string
		for _, e := range v.Elems {
			if e.Kind != rvAtom {
				p.errorf(e.Pos, "%s: a list of flags holds single values only", f.Name)
				return Datum{}, false
			}
			a, msg := typeAtom(f, e)
			if msg != "" {
				p.errorf(e.Pos, "%s", msg)
				return Datum{}, false
			}
			bits |= a.num
			texts = append(texts, a.d.Text)
		}
		return Datum{Pos: v.Pos, Bytes: encodeUint(f, bits), Text: strings.Join(texts, ",")}, true
	}
	p.errorf(v.Pos, "%s expects a single value here", f.Name)
	return Datum{}, false
}

// typeValue types the right-hand side of a compare.
func (p *parser) typeValue(f *Field, op Op, v *rawVal) (Value, bool) {
	relational := op != OpImplicit && op != OpEq && op != OpNeq
	switch v.Kind {
	case rvSet:
		if relational {
			p.errorf(v.Pos, "%s cannot be used with a set: use ==, != or no operator", op)
			return nil, false
		}
		set := &Set{Pos: v.Pos}
		for _, e := range v.Elems {
			if e.Kind == rvList {
				p.errorf(e.Pos, "a set element must be one value, a range or a prefix")
				return nil, false
			}
			if f.Type == TypeIfname && e.Kind == rvAtom && strings.HasSuffix(e.Text, "*") {
				p.errorf(e.Pos, "interface wildcard %q cannot be a set element: use a separate rule", e.Text)
				return nil, false
			}
			ev, ok := p.typeValue(f, OpImplicit, e)
			if !ok {
				return nil, false
			}
			set.Elems = append(set.Elems, ev)
		}
		return set, true
	case rvList:
		d, ok := p.typeSingle(f, v)
		if !ok {
			return nil, false
		}
		return &Single{V: d}, true
	case rvPrefix:
		return p.typePrefix(f, op, v)
	case rvRange:
		return p.typeRange(f, op, v.Lo, v.Hi)
	}
	// An atom: a value, or a range written without spaces ("1024-65535").
	a, msg := typeAtom(f, v)
	if msg != "" {
		if f.Type != TypeIfname && f.Type != TypeIfindex && strings.Contains(v.Text, "-") && !v.Quoted {
			for i := strings.Index(v.Text, "-"); i >= 0; {
				lo := &rawVal{Kind: rvAtom, Pos: v.Pos, Text: v.Text[:i]}
				hi := &rawVal{Kind: rvAtom, Pos: Pos{File: v.Pos.File, Line: v.Pos.Line, Col: v.Pos.Col + i + 1}, Text: v.Text[i+1:]}
				if lo.Text != "" && hi.Text != "" {
					_, m1 := typeAtom(f, lo)
					_, m2 := typeAtom(f, hi)
					if m1 == "" && m2 == "" {
						return p.typeRange(f, op, lo, hi)
					}
				}
				j := strings.Index(v.Text[i+1:], "-")
				if j < 0 {
					break
				}
				i += j + 1
			}
		}
		p.errorf(v.Pos, "%s", msg)
		return nil, false
	}
	if relational && !ordered(f.Type) {
		p.errorf(v.Pos, "%s cannot be compared with %s", f.Name, op)
		return nil, false
	}
	if f.Type == TypeIfname && strings.HasSuffix(v.Text, "*") && op != OpImplicit && op != OpEq && op != OpNeq {
		p.errorf(v.Pos, "interface wildcard %q only works with == or !=", v.Text)
		return nil, false
	}
	return &Single{V: a.d}, true
}

func (p *parser) typeRange(f *Field, op Op, lo, hi *rawVal) (Value, bool) {
	if op != OpImplicit && op != OpEq && op != OpNeq {
		p.errorf(lo.Pos, "a range cannot be used with %s: use ==, != or no operator", op)
		return nil, false
	}
	if !ordered(f.Type) {
		p.errorf(lo.Pos, "%s values cannot form a range", f.Name)
		return nil, false
	}
	a, msg := typeAtom(f, lo)
	if msg != "" {
		p.errorf(lo.Pos, "%s", msg)
		return nil, false
	}
	b, msg := typeAtom(f, hi)
	if msg != "" {
		p.errorf(hi.Pos, "%s", msg)
		return nil, false
	}
	if bytes.Compare(a.key, b.key) > 0 {
		p.errorf(lo.Pos, "range %s-%s is empty: the low end is above the high end", a.d.Text, b.d.Text)
		return nil, false
	}
	return &Range{Lo: a.d, Hi: b.d}, true
}

func (p *parser) typePrefix(f *Field, op Op, v *rawVal) (Value, bool) {
	if f.Type != TypeIPv4Addr && f.Type != TypeIPv6Addr {
		p.errorf(v.Pos, "%s does not take a prefix: only ip and ip6 addresses do", f.Name)
		return nil, false
	}
	if op != OpImplicit && op != OpEq && op != OpNeq {
		p.errorf(v.Pos, "a prefix cannot be used with %s: use ==, != or no operator", op)
		return nil, false
	}
	a, msg := typeAtom(f, v.Lo)
	if msg != "" {
		p.errorf(v.Pos, "%s", msg)
		return nil, false
	}
	addr, _ := netip.AddrFromSlice(a.d.Bytes)
	maxBits := addr.BitLen()
	bits, ok := parseUint(v.Bits, 16)
	if !ok || int(bits) > maxBits || v.Bits[0] == '0' && len(v.Bits) > 1 {
		p.errorf(v.Pos, "bad prefix length /%s: an %s prefix is 0 to %d bits", v.Bits, map[bool]string{true: "IPv4", false: "IPv6"}[maxBits == 32], maxBits)
		return nil, false
	}
	pfx := netip.PrefixFrom(addr, int(bits))
	if m := pfx.Masked(); m.Addr() != addr {
		p.errorf(v.Pos, "prefix %s/%d has host bits set: did you mean %s?", addr, bits, m)
		return nil, false
	}
	return &Prefix{Pos: v.Pos, Prefix: pfx}, true
}

// protoState tracks what protocols a rule's matches require, to find
// matches no packet can satisfy together.
type protoState struct {
	l3, l3Why string // "ip", "ip6" or a non-IP ethertype; the match that needs it
	l4        uint64
	l4Set     bool
	l4Why     string
	eth       uint64
	ethSet    bool
	ethWhy    string
}

// needL3 records that why needs network protocol l3; it returns the match it
// conflicts with, or "".
func (s *protoState) needL3(l3, why string) string {
	if s.l3 != "" && s.l3 != l3 {
		return s.l3Why
	}
	if s.l4Set && l3 != "ip" && l3 != "ip6" {
		return s.l4Why
	}
	if s.l3 == "" {
		s.l3, s.l3Why = l3, why
	}
	return ""
}

func (s *protoState) needL4(l4 uint64, why string) string {
	if s.l4Set && s.l4 != l4 {
		return s.l4Why
	}
	if s.l3 != "" && s.l3 != "ip" && s.l3 != "ip6" {
		return s.l3Why
	}
	if (l4 == 1 && s.l3 == "ip6") || (l4 == 58 && s.l3 == "ip") {
		return s.l3Why
	}
	if !s.l4Set {
		s.l4, s.l4Set, s.l4Why = l4, true, why
	}
	return ""
}

func (s *protoState) needEther(t uint64, why string) string {
	if s.ethSet && s.eth != t {
		return s.ethWhy
	}
	if !s.ethSet {
		s.eth, s.ethSet, s.ethWhy = t, true, why
	}
	return ""
}

// l3OfEtherType maps an ethertype to what needL3 tracks; "" for VLAN tags,
// which say nothing about the network protocol inside.
func l3OfEtherType(t uint64) string {
	switch t {
	case 0x0800:
		return "ip"
	case 0x86dd:
		return "ip6"
	case 0x8100, 0x88a8:
		return ""
	}
	if n := etherTypes.name(t); n != "" {
		return n
	}
	return fmt.Sprintf("ethertype 0x%04x", t)
}

// checkRule checks what parsing alone cannot: fields a hook does not have,
// matches that contradict each other, mirror destinations.
func (p *parser) checkRule(b *Block, r *Rule) bool {
	ok := true
	fail := func(pos Pos, format string, args ...any) {
		p.errorf(pos, format, args...)
		ok = false
	}
	var ps protoState
	for _, m := range r.Matches {
		c, isCmp := m.(*Compare)
		if !isCmp {
			continue
		}
		f := c.Field
		if msg := hookForbids(b.Hook, f); msg != "" {
			fail(c.Pos, "%s", msg)
			continue
		}
		why := f.Name
		conflict := ""
		switch f.Proto {
		case "ip", "ip6":
			conflict = ps.needL3(f.Proto, why)
		case "tcp":
			conflict = ps.needL4(6, why)
		case "udp":
			conflict = ps.needL4(17, why)
		case "icmp":
			if conflict = ps.needL3("ip", why); conflict == "" {
				conflict = ps.needL4(1, why)
			}
		case "icmpv6":
			if conflict = ps.needL3("ip6", why); conflict == "" {
				conflict = ps.needL4(58, why)
			}
		case "vlan":
			conflict = ps.needEther(0x8100, why)
		}
		if sv, single := c.Value.(*Single); conflict == "" && single && c.Mask == nil && (c.Op == OpImplicit || c.Op == OpEq) {
			n := beUint(f, sv.V.Bytes)
			why = f.Name + " " + sv.V.Text
			switch f.Name {
			case "ether type":
				if conflict = ps.needEther(n, why); conflict == "" {
					if l3 := l3OfEtherType(n); l3 != "" {
						conflict = ps.needL3(l3, why)
					}
				}
			case "meta protocol":
				if l3 := l3OfEtherType(n); l3 != "" {
					conflict = ps.needL3(l3, why)
				}
			case "meta l4proto", "ip protocol", "ip6 nexthdr":
				conflict = ps.needL4(n, why)
			}
		}
		if conflict != "" {
			fail(c.Pos, "conflicting protocols: %s cannot match together with %s in one rule", why, conflict)
		}
	}
	for _, m := range r.Matches {
		if c, isCmp := m.(*Compare); isCmp {
			if conflict := ps.excludes(c); conflict != "" {
				fail(c.Pos, "conflicting protocols: %s %s %s cannot match together with %s in one rule", c.Field.Name, c.Op, valueSource(c.Value), conflict)
			}
		}
	}
	seen := map[string]bool{}
	for _, m := range r.Mirrors {
		if b.Device != "" && m.Dest == b.Device {
			fail(m.Pos, "mirror to %q: that is the device this %s block reads; copies would be mirrored again", m.Dest, b.Hook)
		} else if seen[m.Dest] {
			fail(m.Pos, "mirror to %q twice in one rule", m.Dest)
		}
		seen[m.Dest] = true
	}
	return ok
}

// excludes checks a protocol match that does not pin a protocol itself (a
// set, a range, "!=") against the protocols the rule's other matches need:
// "meta l4proto != tcp" with "tcp dport", "meta l4proto { udp, icmp }" with
// "tcp dport". It returns the match c contradicts, or "".
func (s *protoState) excludes(c *Compare) string {
	f := c.Field
	if c.Mask != nil || (c.Op != OpImplicit && c.Op != OpEq && c.Op != OpNeq) {
		return ""
	}
	if _, single := c.Value.(*Single); single && c.Op != OpNeq {
		return "" // pins the protocol: checked as it was read
	}
	var holds func(v uint64) bool
	var why string
	switch f.Name {
	case "ether type":
		if s.ethSet {
			holds, why = func(v uint64) bool { return v == s.eth }, s.ethWhy
			break
		}
		fallthrough
	case "meta protocol":
		if s.l3 == "" {
			return ""
		}
		holds, why = func(v uint64) bool { return l3OfEtherType(v) == s.l3 }, s.l3Why
	case "meta l4proto", "ip protocol", "ip6 nexthdr":
		if !s.l4Set {
			return ""
		}
		holds, why = func(v uint64) bool { return v == s.l4 }, s.l4Why
	default:
		return ""
	}
	if why == c.Field.Name+" "+valueSource(c.Value) {
		return ""
	}
	in := valueHolds(f, c.Value, holds)
	if c.Op == OpNeq && in || c.Op != OpNeq && !in {
		return why
	}
	return ""
}

// valueHolds reports whether some value v matches holds.
func valueHolds(f *Field, v Value, holds func(uint64) bool) bool {
	switch v := v.(type) {
	case *Single:
		return holds(beUint(f, v.V.Bytes))
	case *Range:
		for n := beUint(f, v.Lo.Bytes); n <= beUint(f, v.Hi.Bytes); n++ {
			if holds(n) {
				return true
			}
			if n == 1<<16 { // protocols and ethertypes are at most 16 bits
				break
			}
		}
	case *Set:
		for _, e := range v.Elems {
			if valueHolds(f, e, holds) {
				return true
			}
		}
	}
	return false
}

// valueSource renders a typed value as nft text, for messages and listings.
func valueSource(v Value) string {
	switch v := v.(type) {
	case *Single:
		return v.V.Text
	case *Range:
		return v.Lo.Text + "-" + v.Hi.Text
	case *Prefix:
		return v.Prefix.String()
	case *Set:
		parts := make([]string, len(v.Elems))
		for i, e := range v.Elems {
			parts[i] = valueSource(e)
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	}
	return ""
}

// beUint decodes a Datum's bytes as the number they encode for f.
func beUint(f *Field, b []byte) uint64 {
	var n uint64
	if f.HostOrder {
		full := make([]byte, 8)
		if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 {
			copy(full, b)
		} else {
			copy(full[8-len(b):], b)
		}
		return binary.NativeEndian.Uint64(full)
	}
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return n
}

// hookForbids says why field f is not available at hook h, or "".
func hookForbids(h Hook, f *Field) string {
	switch {
	case f.Kind == KindCt && h.Family() == FamilyNetdev:
		return fmt.Sprintf("%s is not available in a netdev %s block: connection tracking runs later", f.Name, h)
	case (f.Meta == expr.MetaKeyOIF || f.Meta == expr.MetaKeyOIFNAME) && f.Kind == KindMeta && (h == HookPrerouting || h == HookInput || h == HookIngress):
		return fmt.Sprintf("%s is not available at %s: the output interface is not known yet", f.Name, h)
	case (f.Meta == expr.MetaKeyIIF || f.Meta == expr.MetaKeyIIFNAME) && f.Kind == KindMeta && h == HookOutput:
		return fmt.Sprintf("%s is not available at output: locally generated packets have no input interface", f.Name)
	case (f.Proto == "ether" || f.Proto == "vlan") && (h == HookOutput || h == HookPostrouting):
		return fmt.Sprintf("%s is not available at %s: the Ethernet header is not built yet", f.Name, h)
	}
	return ""
}
