package nfrules

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
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

// atom is one typed literal.
type atom struct {
	d    Datum
	val  []byte // the value, big-endian (an interface name's bytes)
	num  uint64 // the value as a number, for values of at most 64 bits
	wild bool   // an interface name ending in "*": val holds the prefix
}

// typeAtom types the literal v for field f. It returns a message instead of
// reporting it, so callers can try other readings ("ipv6-icmp" is a name,
// "1-5" is a range).
func typeAtom(f *Field, v *rawVal) (atom, string) {
	s := v.Text
	d := Datum{Pos: v.Pos}
	t := f.Type
	switch t.kind {
	case kindString, kindIfindex:
		wild := f.Forms&FormWildcard != 0
		if f.Type == typeString {
			if s == "" || len(s) > maxIfnameLen || strings.ContainsAny(s, "\"\x00") {
				return atom{}, fmt.Sprintf("%s expects a name of 1 to %d bytes, not %q", f.Name, maxIfnameLen, s)
			}
		} else if msg := checkIfname(s, wild); msg != "" {
			return atom{}, msg
		}
		d.Text = strconv.Quote(s)
		if t.kind == kindIfindex {
			d.Bytes = []byte(s) // resolved to an index by Compile
			return atom{d: d, val: []byte(s)}, ""
		}
		if base, ok := strings.CutSuffix(s, "*"); ok && wild {
			d.Bytes = f.encode([]byte(base))
			return atom{d: d, val: []byte(base), wild: true}, ""
		}
		d.Bytes = f.encode([]byte(s))
		return atom{d: d, val: []byte(s)}, ""
	}
	if s == "" {
		return atom{}, fmt.Sprintf("%s expects %s, not an empty string", f.Name, t.Desc)
	}
	val, msg := t.parseValue(s, v.Quoted, f.Bits)
	if msg != "" {
		if strings.HasPrefix(msg, "value ") && t == typePort {
			msg = "port " + strings.TrimPrefix(msg, "value ")
		}
		if strings.HasPrefix(msg, "expects an IPv") && strings.Contains(msg, "not the IPv") && f.Proto != "" {
			other := map[string]string{"ip": "ip6", "ip6": "ip"}[f.Proto]
			if other != "" {
				msg += fmt.Sprintf(" (use %s %s)", other, strings.TrimPrefix(f.Name, f.Proto+" "))
			}
		}
		return atom{}, f.Name + " " + msg
	}
	d.Bytes = f.encode(val)
	d.Text = canonicalText(f, val, s)
	a := atom{d: d, val: val}
	if len(val) <= 8 {
		a.num = bytesUint(val)
	}
	return a, ""
}

// canonicalText is the text nft accepts for a value, for messages.
func canonicalText(f *Field, val []byte, src string) string {
	switch f.Type.kind {
	case kindIPv4, kindIPv6, kindEther:
		return f.Type.format(val, inValue, nil)
	}
	n := bytesUint(val)
	if f.Type.numeric || f.Type.kind == kindInteger && f.Type.hex == 0 {
		return strconv.FormatUint(n, 10)
	}
	if name := f.Type.syms.name(n); name != "" {
		return name
	}
	return strings.ToLower(src)
}

// orable reports whether values of t may be or-ed together (syn|ack, a,b).
func orable(t *Datatype) bool {
	return t.kind == kindBitmask || t.kind == kindInteger
}

// typeScalar types one value: an atom, or (for flags and integers) values
// or-ed together with "," or "|".
func (p *parser) typeScalar(f *Field, v *rawVal) (atom, bool) {
	switch v.Kind {
	case rvAtom:
		a, msg := typeAtom(f, v)
		if msg != "" {
			p.errorf(v.Pos, "%s", msg)
			return atom{}, false
		}
		return a, true
	case rvList, rvOr:
		if !orable(f.Type) {
			p.errorf(v.Pos, "%s takes one value: write several values as a set { a, b }", f.Name)
			return atom{}, false
		}
		var n uint64
		var texts []string
		for _, e := range v.Elems {
			if e.Kind != rvAtom {
				p.errorf(e.Pos, "%s: a list of flags holds single values only", f.Name)
				return atom{}, false
			}
			a, msg := typeAtom(f, e)
			if msg != "" {
				p.errorf(e.Pos, "%s", msg)
				return atom{}, false
			}
			n |= a.num
			texts = append(texts, a.d.Text)
		}
		val := uintBytes(n, f.valueLen())
		sep := ","
		if v.Kind == rvOr {
			sep = "|"
		}
		return atom{d: Datum{Pos: v.Pos, Bytes: f.encode(val), Text: strings.Join(texts, sep)}, val: val, num: n}, true
	}
	p.errorf(v.Pos, "%s expects a single value here", f.Name)
	return atom{}, false
}

// formError reports that f does not admit a form, saying which it does.
func (p *parser) formError(pos Pos, f *Field, format string, args ...any) {
	p.errorf(pos, "%s: %s takes %s", fmt.Sprintf(format, args...), f.Name, f.Forms)
}

func isEquality(op Op) bool { return op == OpImplicit || op == OpEq || op == OpNeq }

// typeCompare types the right-hand side of c (its fields, bit operation and
// operator are set) from the raw value v.
func (p *parser) typeCompare(c *Compare, v *rawVal) bool {
	if len(c.Fields) > 1 {
		return p.typeConcat(c, v)
	}
	f := c.Field()
	op := c.Op
	if c.Bits != nil && v.Kind != rvAtom && v.Kind != rvList && v.Kind != rvOr {
		p.errorf(v.Pos, "%s: a masked match compares with one value", f.Name)
		return false
	}
	switch v.Kind {
	case rvSet:
		if !isEquality(op) {
			p.errorf(v.Pos, "%s cannot be used with a set: use ==, != or no operator", op)
			return false
		}
		if op == OpNeq && f.Forms&FormNegSet == 0 {
			p.formError(v.Pos, f, "%s cannot match a negated set", f.Name)
			return false
		}
		set := &Set{Pos: v.Pos}
		for _, e := range v.Elems {
			var ev Value
			var ok bool
			switch e.Kind {
			case rvList:
				p.errorf(e.Pos, "a set element must be one value, a range or a prefix")
				return false
			case rvConcat:
				p.errorf(e.Pos, "%s is one field: a set element of a . b needs a concatenation such as ip saddr . tcp dport", f.Name)
				return false
			case rvMasked:
				p.errorf(e.Pos, "a set element cannot be value / mask")
				return false
			default:
				ev, ok = p.typeValue(f, OpImplicit, e)
			}
			if !ok {
				return false
			}
			set.Elems = append(set.Elems, ev)
		}
		if msg := flagSetListable(f, set); msg != "" {
			p.errorf(v.Pos, "%s %s: %s", f.Name, valueSource(set), msg)
			return false
		}
		c.Value = set
		return true
	case rvMasked:
		return p.typeFlagMask(c, v)
	case rvConcat:
		p.errorf(v.Pos, "%s is one field: a value a . b needs a concatenation such as ip saddr . tcp dport", f.Name)
		return false
	}
	val, ok := p.typeValue(f, op, v)
	c.Value = val
	return ok
}

// typeValue types a range, a prefix or one value of field f.
func (p *parser) typeValue(f *Field, op Op, v *rawVal) (Value, bool) {
	switch v.Kind {
	case rvRange:
		return p.typeRange(f, op, v.Lo, v.Hi)
	case rvPrefix:
		return p.typePrefix(f, op, v)
	}
	return p.typeSingle(f, op, v)
}

// typeSingle types one value, or a range written without spaces ("1024-65535").
func (p *parser) typeSingle(f *Field, op Op, v *rawVal) (Value, bool) {
	if v.Kind == rvAtom {
		a, msg := typeAtom(f, v)
		if msg != "" {
			if r, ok := p.tryRange(f, op, v); ok {
				return r, true
			}
			p.errorf(v.Pos, "%s", msg)
			return nil, false
		}
		if a.wild {
			if !isEquality(op) {
				p.errorf(v.Pos, "interface wildcard %q only works with == or !=", strings.Trim(a.d.Text, `"`))
				return nil, false
			}
			return &Prefix{Pos: v.Pos, V: a.d, Len: 8 * len(a.val)}, true
		}
		if !isEquality(op) && f.Forms&FormRel == 0 {
			p.formError(v.Pos, f, "%s cannot be compared with %s", f.Name, op)
			return nil, false
		}
		return &Single{V: a.d}, true
	}
	a, ok := p.typeScalar(f, v)
	if !ok {
		return nil, false
	}
	if !isEquality(op) && f.Forms&FormRel == 0 {
		p.formError(v.Pos, f, "%s cannot be compared with %s", f.Name, op)
		return nil, false
	}
	return &Single{V: a.d}, true
}

// tryRange reads an atom such as "1024-65535" or "ssh-http" as a range.
func (p *parser) tryRange(f *Field, op Op, v *rawVal) (Value, bool) {
	if f.Type.kind == kindString || f.Type.kind == kindIfindex || v.Quoted || !strings.Contains(v.Text, "-") {
		return nil, false
	}
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
	return nil, false
}

func (p *parser) typeRange(f *Field, op Op, lo, hi *rawVal) (Value, bool) {
	if !isEquality(op) {
		p.errorf(lo.Pos, "a range cannot be used with %s: use ==, != or no operator", op)
		return nil, false
	}
	if f.Forms&FormRange == 0 {
		p.formError(lo.Pos, f, "%s values cannot form a range", f.Name)
		return nil, false
	}
	if lo.Kind != rvAtom || hi.Kind != rvAtom {
		p.errorf(lo.Pos, "a range needs a single value on each side of '-'")
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
	if bytes.Compare(a.val, b.val) > 0 {
		p.errorf(lo.Pos, "range %s-%s is empty: the low end is above the high end", a.d.Text, b.d.Text)
		return nil, false
	}
	return &Range{Lo: a.d, Hi: b.d}, true
}

func (p *parser) typePrefix(f *Field, op Op, v *rawVal) (Value, bool) {
	if f.Forms&FormPrefix == 0 {
		p.formError(v.Pos, f, "%s does not take a prefix: only addresses do", f.Name)
		return nil, false
	}
	if !isEquality(op) {
		p.errorf(v.Pos, "a prefix cannot be used with %s: use ==, != or no operator", op)
		return nil, false
	}
	a, msg := typeAtom(f, v.Lo)
	if msg != "" {
		p.errorf(v.Pos, "%s", msg)
		return nil, false
	}
	if v.Bits == "" || !isDigit(v.Bits[0]) {
		p.errorf(v.Pos, "expected a prefix length after '/', found %q", v.Bits)
		return nil, false
	}
	addr, _ := netip.AddrFromSlice(a.val)
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
	return &Prefix{Pos: v.Pos, V: a.d, Len: int(bits)}, true
}

// typeFlagMask types "VALUE / MASK" of a bitmask field: the bits of MASK
// must equal VALUE, nft's own way of listing "& MASK == VALUE".
func (p *parser) typeFlagMask(c *Compare, v *rawVal) bool {
	f := c.Field()
	if f.Forms&FormFlags == 0 {
		p.formError(v.Pos, f, "%s does not take VALUE / MASK", f.Name)
		return false
	}
	if c.Bits != nil {
		p.errorf(v.Pos, "%s: VALUE / MASK cannot follow a mask", f.Name)
		return false
	}
	if c.Op != OpImplicit && c.Op != OpEq && c.Op != OpNeq {
		p.errorf(v.Pos, "VALUE / MASK cannot be used with %s: use == or !=", c.Op)
		return false
	}
	val, ok := p.typeScalar(f, v.Lo)
	if !ok {
		return false
	}
	mask, ok := p.typeScalar(f, v.Hi)
	if !ok {
		return false
	}
	c.Bits = &BitOp{Pos: v.Hi.Pos, Mask: mask.d.Bytes, Xor: make([]byte, len(mask.d.Bytes))}
	if c.Op == OpImplicit {
		c.Op = OpEq
	}
	c.Value = &Single{V: val.d}
	return true
}

// typeConcat types the set matched by a concatenation.
func (p *parser) typeConcat(c *Compare, v *rawVal) bool {
	names := make([]string, len(c.Fields))
	for i, f := range c.Fields {
		names[i] = f.Name
	}
	what := strings.Join(names, " . ")
	if v.Kind != rvSet {
		p.errorf(v.Pos, "%s: a concatenation matches a set, such as { v1 . v2, ... }", what)
		return false
	}
	if !isEquality(c.Op) {
		p.errorf(v.Pos, "%s cannot be used with a set: use ==, != or no operator", c.Op)
		return false
	}
	set := &Set{Pos: v.Pos}
	for _, e := range v.Elems {
		if e.Kind != rvConcat || len(e.Elems) != len(c.Fields) {
			p.errorf(e.Pos, "%s: each element needs %d values joined by \".\"", what, len(c.Fields))
			return false
		}
		cv := &Concat{Pos: e.Pos}
		for i, part := range e.Elems {
			f := c.Fields[i]
			var pv Value
			var ok bool
			switch part.Kind {
			case rvRange:
				pv, ok = p.typeRange(f, OpImplicit, part.Lo, part.Hi)
			case rvPrefix:
				pv, ok = p.typePrefix(f, OpImplicit, part)
			default:
				pv, ok = p.typeSingle(f, OpImplicit, part)
				if _, isPfx := pv.(*Prefix); ok && isPfx {
					p.errorf(part.Pos, "a wildcard cannot be part of a concatenation")
					return false
				}
			}
			if !ok {
				return false
			}
			cv.Parts = append(cv.Parts, pv)
		}
		set.Elems = append(set.Elems, cv)
	}
	if msg := concatListable(c.Fields, set); msg != "" {
		p.errorf(v.Pos, "%s: %s", what, msg)
		return false
	}
	c.Value = set
	return true
}

// flagSetListable says why nft cannot list a set of flag values the same
// way twice, or "". nft sorts such a set by each element's lowest flag;
// elements that share it keep the order the kernel returns them in, which
// for 32-bit keys (ct state, ct status) is a hash order that changes with
// every load.
func flagSetListable(f *Field, set *Set) string {
	if !f.Type.bitmask() || f.Len() == 1 {
		return ""
	}
	seen := map[uint64]string{}
	for _, e := range set.Elems {
		sv, ok := e.(*Single)
		if !ok {
			continue
		}
		v := valueUint(f, sv.V.Bytes)
		low := v & -v
		if other, dup := seen[low]; dup && other != sv.V.Text {
			return fmt.Sprintf("%s and %s share their lowest flag: nft lists such elements in an order that changes with every load; match them in separate rules, or with a mask such as %s & (%s) == %s", other, sv.V.Text, f.Name, strings.ReplaceAll(sv.V.Text, ",", "|"), other)
		}
		seen[low] = sv.V.Text
	}
	return ""
}

// concatListable says why nft 1.0.6 cannot list a set of a concatenation
// back, or "". In a set with ranges or prefixes, nft converts host-order
// parts (meta mark, ct zone, ...) to big-endian and then records no
// description of the key's parts; it then lists parts of integer type (ip
// ttl, ct zone, meta length, ...) as garbage ("ip ttl . meta mark { 0 .
// 0x05000000 }").
func concatListable(fields []*Field, set *Set) string {
	interval := false
	for _, e := range set.Elems {
		for _, part := range e.(*Concat).Parts {
			if _, single := part.(*Single); !single {
				interval = true
			}
		}
	}
	if !interval {
		return ""
	}
	var host, integer *Field
	for _, f := range fields {
		if f.Order == HostEndian && f.Len() > 1 && host == nil {
			host = f
		}
		if (f.Type == typeInteger || f.Type == typeGateway) && integer == nil {
			integer = f
		}
	}
	if host != nil && integer != nil {
		return fmt.Sprintf("with ranges or prefixes, nft 1.0.6 lists %s wrongly when %s is in the same concatenation: use single values, or match %s in a separate set", integer.Name, host.Name, integer.Name)
	}
	return ""
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

// l3OfNFProto maps a meta nfproto value to what needL3 tracks.
func l3OfNFProto(v uint64) string {
	switch v {
	case 2:
		return "ip"
	case 10:
		return "ip6"
	}
	return fmt.Sprintf("family %d", v)
}

// l4Numbers are the IP protocol numbers of the transport headers.
var l4Numbers = map[string]uint64{"tcp": 6, "udp": 17, "udplite": 136, "sctp": 132, "icmp": 1, "icmpv6": 58}

// singleValue returns the value of an equality match on one value.
func singleValue(c *Compare) (uint64, string, bool) {
	sv, single := c.Value.(*Single)
	if !single || len(c.Fields) != 1 || c.Bits != nil || (c.Op != OpImplicit && c.Op != OpEq) || c.Field().Type.bitmask() {
		return 0, "", false
	}
	return valueUint(c.Field(), sv.V.Bytes), sv.V.Text, true
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
		bad := false
		for _, f := range c.Fields {
			if msg := hookForbids(b.Hook, f); msg != "" {
				fail(c.Pos, "%s", msg)
				bad = true
				break
			}
		}
		if bad {
			continue
		}
		conflict, why := "", ""
		for _, f := range c.Fields {
			why = f.Name
			switch f.Proto {
			case "ip", "ip6", "arp":
				conflict = ps.needL3(f.Proto, why)
			case "tcp", "udp", "udplite", "sctp":
				conflict = ps.needL4(l4Numbers[f.Proto], why)
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
			if conflict != "" {
				break
			}
		}
		if n, text, single := singleValue(c); conflict == "" && single {
			f := c.Field()
			why = f.Name + " " + text
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
			case "meta nfproto":
				conflict = ps.needL3(l3OfNFProto(n), why)
			case "meta l4proto", "ip protocol", "ip6 nexthdr":
				conflict = ps.needL4(n, why)
			}
		}
		if conflict != "" {
			fail(c.Pos, "conflicting protocols: %s cannot match together with %s in one rule", why, conflict)
		}
	}
	for _, m := range r.Matches {
		if c, isCmp := m.(*Compare); isCmp && len(c.Fields) == 1 {
			if conflict := ps.excludes(c); conflict != "" {
				fail(c.Pos, "conflicting protocols: %s %s %s cannot match together with %s in one rule", c.Field().Name, c.Op, valueSource(c.Value), conflict)
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
	f := c.Field()
	if c.Bits != nil || !isEquality(c.Op) {
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
	case "meta nfproto":
		if s.l3 == "" {
			return ""
		}
		holds, why = func(v uint64) bool { return l3OfNFProto(v) == s.l3 }, s.l3Why
	case "meta l4proto", "ip protocol", "ip6 nexthdr":
		if !s.l4Set {
			return ""
		}
		holds, why = func(v uint64) bool { return v == s.l4 }, s.l4Why
	default:
		return ""
	}
	if why == f.Name+" "+valueSource(c.Value) {
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
		return holds(valueUint(f, v.V.Bytes))
	case *Range:
		for n := valueUint(f, v.Lo.Bytes); n <= valueUint(f, v.Hi.Bytes); n++ {
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

// valueSource renders a typed value as nft text, for messages.
func valueSource(v Value) string {
	switch v := v.(type) {
	case *Single:
		return v.V.Text
	case *Range:
		return v.Lo.Text + "-" + v.Hi.Text
	case *Prefix:
		if strings.HasPrefix(v.V.Text, `"`) {
			return v.V.Text
		}
		return fmt.Sprintf("%s/%d", v.V.Text, v.Len)
	case *Concat:
		parts := make([]string, len(v.Parts))
		for i, e := range v.Parts {
			parts[i] = valueSource(e)
		}
		return strings.Join(parts, " . ")
	case *Set:
		parts := make([]string, len(v.Elems))
		for i, e := range v.Elems {
			parts[i] = valueSource(e)
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	}
	return ""
}

// valueUint decodes register bytes of f as the number they hold.
func valueUint(f *Field, reg []byte) uint64 {
	return bytesUint(f.decodeReg(reg))
}

// hookForbids says why field f is not available at hook h, or "".
func hookForbids(h Hook, f *Field) string {
	if f.Hooks.Has(h) {
		return ""
	}
	var at []string
	for _, o := range f.Hooks.Hooks() {
		at = append(at, o.String())
	}
	where := "; it is available at " + strings.Join(at, ", ")
	switch {
	case f.Kind == KindCt && h.Family() == FamilyNetdev:
		return fmt.Sprintf("%s is not available in a netdev %s block: connection tracking runs later", f.Name, h)
	case f.Proto == "arp":
		return fmt.Sprintf("%s is not available at %s: the inet family sees only IPv4 and IPv6, ARP is seen in ingress and egress blocks", f.Name, h)
	case f.Proto == "ether" || f.Proto == "vlan":
		return fmt.Sprintf("%s is not available at %s: the Ethernet header is not built yet%s", f.Name, h, where)
	case f.Kind == KindMeta && h == HookOutput && f.Hooks == inHooks:
		return fmt.Sprintf("%s is not available at output: locally generated packets have no input interface%s", f.Name, where)
	case f.Kind == KindMeta && f.Hooks == outHooks:
		return fmt.Sprintf("%s is not available at %s: the output interface is not known yet%s", f.Name, h, where)
	}
	return fmt.Sprintf("%s is not available at %s%s", f.Name, h, where)
}
