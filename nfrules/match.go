package nfrules

import (
	"bytes"
	"encoding/binary"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// This file compiles matches to nftables expressions exactly as nft 1.0.6
// does (src/evaluate.c, src/netlink_linearize.c): the same implicit
// dependencies, loads, masks, byte order conversions, comparisons and
// anonymous sets, so that nft lists what nfmirror installs as it lists its
// own compilation of the same text.

// ruleCtx tracks the protocol context of one rule, so that implicit
// dependencies are added once, and only when a match has not already pinned
// the protocol, as nft does.
type ruleCtx struct {
	family   Family
	ether    bool   // the link layer is known to be Ethernet
	vlan     bool   // the frame is known to carry a VLAN tag
	net      string // "ip", "ip6", "arp" once known
	l4       string // "tcp", "udp", ... once known
	icmpType bool   // an icmp or icmpv6 type is pinned
}

type compiledMatches struct {
	exprs []expr.Any
	sets  []*anonSet
}

// compileMatches compiles the matches of r for a chain of family fam. It
// returns the expressions, the anonymous sets they use and the matches in
// nft syntax as nft lists them.
func (c *compiler) compileMatches(fam Family, r *Rule) (compiledMatches, string, bool) {
	var out compiledMatches
	ctx := &ruleCtx{family: fam}
	ok := true
	for _, m := range r.Matches {
		switch m := m.(type) {
		case *Compare:
			if !c.compileCompare(ctx, m, &out) {
				ok = false
			}
		case *Limit:
			l := &expr.Limit{Type: expr.LimitTypePkts, Rate: m.Rate, Over: m.Over, Unit: limitUnits[m.Unit], Burst: m.Burst}
			if m.Bytes {
				l.Type = expr.LimitTypePktBytes
			} else if l.Burst == 0 {
				l.Burst = 5
			}
			out.exprs = append(out.exprs, l)
		case *Sample:
			if m.Mod == 0 {
				c.errorf(m.Pos, "numgen modulus must be at least 1")
				ok = false
				continue
			}
			out.exprs = append(out.exprs, &expr.Numgen{Register: 1, Modulus: m.Mod, Type: unix.NFT_NG_RANDOM})
			val := hostU32(m.Value)
			if isRelational(m.Op) {
				out.exprs = append(out.exprs, &expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4})
				val = binary.BigEndian.AppendUint32(nil, m.Value)
			}
			out.exprs = append(out.exprs, &expr.Cmp{Op: cmpOp(m.Op), Register: 1, Data: val})
		default:
			c.errorf(r.Pos, "unsupported match %T", m)
			ok = false
		}
	}
	if !ok {
		return out, "", false
	}
	return out, decodeExprs(fam, out.exprs, out.sets, c.plan.ifname), true
}

var limitUnits = map[LimitUnit]expr.LimitTime{
	PerSecond: expr.LimitTimeSecond, PerMinute: expr.LimitTimeMinute, PerHour: expr.LimitTimeHour,
	PerDay: expr.LimitTimeDay, PerWeek: expr.LimitTimeWeek,
}

func isRelational(op Op) bool { return op == OpLt || op == OpGt || op == OpLte || op == OpGte }

func cmpOp(op Op) expr.CmpOp {
	switch op {
	case OpNeq:
		return expr.CmpOpNeq
	case OpLt:
		return expr.CmpOpLt
	case OpGt:
		return expr.CmpOpGt
	case OpLte:
		return expr.CmpOpLte
	case OpGte:
		return expr.CmpOpGte
	}
	return expr.CmpOpEq
}

func metaEq(key expr.MetaKey, data []byte) []expr.Any {
	return []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data}}
}

// deps adds the implicit protocol dependencies nft adds before field f.
func (c *compiler) deps(ctx *ruleCtx, pos Pos, f *Field, out *compiledMatches) bool {
	ether := func() {
		if !ctx.ether {
			out.exprs = append(out.exprs, metaEq(expr.MetaKeyIIFTYPE, binary.NativeEndian.AppendUint16(nil, unix.ARPHRD_ETHER))...)
			ctx.ether = true
		}
	}
	netDep := func(proto string) bool {
		if ctx.net == proto {
			return true
		}
		if ctx.net != "" {
			c.errorf(pos, "%s conflicts with %s in the same rule", f.Name, ctx.net)
			return false
		}
		if ctx.family == FamilyInet {
			v := byte(unix.NFPROTO_IPV4)
			if proto == "ip6" {
				v = unix.NFPROTO_IPV6
			}
			out.exprs = append(out.exprs, metaEq(expr.MetaKeyNFPROTO, []byte{v})...)
		} else {
			et := map[string]uint16{"ip": 0x0800, "ip6": 0x86dd, "arp": 0x0806}[proto]
			out.exprs = append(out.exprs, metaEq(expr.MetaKeyPROTOCOL, binary.BigEndian.AppendUint16(nil, et))...)
		}
		ctx.net = proto
		return true
	}
	l4Dep := func(proto string) bool {
		if ctx.l4 == proto {
			return true
		}
		if ctx.l4 != "" {
			c.errorf(pos, "%s conflicts with %s in the same rule", f.Name, ctx.l4)
			return false
		}
		out.exprs = append(out.exprs, metaEq(expr.MetaKeyL4PROTO, []byte{byte(l4Numbers[proto])})...)
		ctx.l4 = proto
		return true
	}
	switch f.Proto {
	case "ether":
		ether()
	case "vlan":
		ether()
		if !ctx.vlan {
			out.exprs = append(out.exprs,
				&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 12, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x81, 0x00}})
			ctx.vlan = true
		}
	case "ip", "ip6", "arp":
		return netDep(f.Proto)
	case "icmp", "icmpv6":
		// Known to be ICMP, the header needs nothing more (nft adds no
		// "meta nfproto" after "meta l4proto icmp").
		if ctx.l4 == f.Proto {
			return true
		}
		return netDep(map[string]string{"icmp": "ip", "icmpv6": "ip6"}[f.Proto]) && l4Dep(f.Proto)
	case "tcp", "udp", "udplite", "sctp":
		return l4Dep(f.Proto)
	}
	return true
}

// need adds the match on another field of the same header that f needs
// ("icmp type { echo-reply, echo-request }" before "icmp id").
func (c *compiler) need(ctx *ruleCtx, f *Field, out *compiledMatches) {
	if f.Need == nil || ctx.icmpType {
		return
	}
	g := Fields[f.Need.Field]
	out.exprs = append(out.exprs, c.load(g, 0))
	if len(f.Need.Values) == 1 {
		out.exprs = append(out.exprs, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: g.encode(uintBytes(f.Need.Values[0], 1))})
		return
	}
	s := &anonSet{keyType: setKeyType(g), fields: []*Field{g}}
	for _, v := range f.Need.Values {
		s.elems = append(s.elems, nftables.SetElement{Key: g.encode(uintBytes(v, 1))})
	}
	out.sets = append(out.sets, s)
	out.exprs = append(out.exprs, &setRef{Lookup: expr.Lookup{SourceRegister: 1}, idx: len(out.sets) - 1})
}

// learn records the protocol context an equality match establishes, so that
// "meta l4proto tcp tcp dport 80" gets no second dependency.
func (ctx *ruleCtx) learn(m *Compare) {
	n, _, ok := singleValue(m)
	if !ok {
		return
	}
	switch m.Field().Name {
	case "meta l4proto", "ip protocol", "ip6 nexthdr":
		for name, v := range l4Numbers {
			if n == v {
				ctx.l4 = name
			}
		}
	case "meta nfproto":
		switch n {
		case unix.NFPROTO_IPV4:
			ctx.net = "ip"
		case unix.NFPROTO_IPV6:
			ctx.net = "ip6"
		}
	case "meta protocol", "ether type", "vlan type":
		switch n {
		case 0x0800:
			ctx.net = "ip"
		case 0x86dd:
			ctx.net = "ip6"
		case 0x0806:
			ctx.net = "arp"
		case 0x8100:
			if m.Field().Name == "ether type" {
				ctx.vlan = true
			}
		}
		if m.Field().Name == "ether type" {
			ctx.ether = true
		}
	case "meta iiftype":
		if n == unix.ARPHRD_ETHER {
			ctx.ether = true
		}
	case "icmp type", "icmpv6 type":
		ctx.icmpType = true
	}
}

// register returns the register a part of a concatenation starting off
// bytes into the key is loaded into: NFT_REG_1..4 on 16-byte boundaries,
// NFT_REG32_00.. otherwise, as nft numbers them.
func register(off uint32) uint32 {
	if off%16 == 0 {
		return unix.NFT_REG_1 + off/16
	}
	return unix.NFT_REG32_00 + off/4
}

// load returns the expression loading f into the register at byte offset
// off of a concatenation (0 for a plain match).
func (c *compiler) load(f *Field, off uint32) expr.Any {
	reg := register(off)
	switch f.Kind {
	case KindMeta:
		return &expr.Meta{Key: f.Meta, Register: reg}
	case KindCt:
		e := &expr.Ct{Key: f.Ct, Register: reg}
		if f.Dir >= 0 {
			e.Direction, e.OptDirection = uint32(f.Dir), true
		}
		return e
	}
	return &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg, Base: f.Base, Offset: f.loadOffset(), Len: f.Len()}
}

// resolve returns the register bytes of d, resolving the interface name of
// an ifindex field.
func (c *compiler) resolve(f *Field, d Datum) ([]byte, bool) {
	if f.Type.kind == kindIfindex {
		name := string(d.Bytes)
		idx, err := c.opt.Ifindex(name)
		if err != nil {
			c.errorf(d.Pos, "%s %q: %s", f.Name, name, err.Error())
			return nil, false
		}
		if c.plan.ifnames == nil {
			c.plan.ifnames = map[uint32]string{}
		}
		c.plan.ifnames[idx] = name
		return hostU32(idx), true
	}
	if len(d.Bytes) == 0 {
		c.errorf(d.Pos, "%s: value %s has no encoding", f.Name, d.Text)
		return nil, false
	}
	return d.Bytes, true
}

func bitwise(n uint32, mask, xor []byte) *expr.Bitwise {
	return &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: xor}
}

func hton(n uint32) *expr.Byteorder {
	return &expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: n, Size: n}
}

func (c *compiler) compileCompare(ctx *ruleCtx, m *Compare, out *compiledMatches) bool {
	if len(m.Fields) == 0 {
		c.errorf(m.Pos, "match without a field")
		return false
	}
	// nft compiles a set of one element as the element itself.
	if s, ok := m.Value.(*Set); ok && len(s.Elems) == 1 && len(m.Fields) == 1 {
		one := *m
		one.Value = s.Elems[0]
		m = &one
	}
	for _, f := range m.Fields {
		if !c.deps(ctx, m.Pos, f, out) {
			return false
		}
		c.need(ctx, f, out)
	}
	defer ctx.learn(m)
	if len(m.Fields) > 1 {
		return c.compileConcat(m, out)
	}

	f := m.Field()
	n := f.Len()
	fieldMask := f.bitMask()
	hostRel := f.Order == HostEndian && n > 1

	// Byte-aligned prefixes of payload fields load only the prefix bytes.
	if p, ok := m.Value.(*Prefix); ok && f.Kind == KindPayload && p.Len%8 == 0 && p.Len > 0 {
		k := uint32(p.Len / 8)
		out.exprs = append(out.exprs,
			&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: f.Base, Offset: f.loadOffset(), Len: k},
			&expr.Cmp{Op: eqOrNeq(m.Op), Register: 1, Data: p.V.Bytes[:k]})
		return true
	}

	out.exprs = append(out.exprs, c.load(f, 0))
	if fieldMask != nil {
		out.exprs = append(out.exprs, bitwise(n, fieldMask, make([]byte, n)))
	}
	if m.Bits != nil {
		out.exprs = append(out.exprs, bitwise(n, m.Bits.Mask, m.Bits.Xor))
	}

	switch v := m.Value.(type) {
	case *Single:
		b, ok := c.resolve(f, v.V)
		if !ok {
			return false
		}
		if m.Op == OpImplicit && f.Type.bitmask() && m.Bits == nil {
			out.exprs = append(out.exprs,
				bitwise(n, b, make([]byte, n)),
				&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, n)})
			return true
		}
		if isRelational(m.Op) && hostRel {
			out.exprs = append(out.exprs, hton(n))
			b = f.bigEndianKey(b)
		}
		out.exprs = append(out.exprs, &expr.Cmp{Op: cmpOp(m.Op), Register: 1, Data: b})
	case *Range:
		lo, ok1 := c.resolve(f, v.Lo)
		hi, ok2 := c.resolve(f, v.Hi)
		if !ok1 || !ok2 {
			return false
		}
		if hostRel {
			out.exprs = append(out.exprs, hton(n))
		}
		lo, hi = f.bigEndianKey(lo), f.bigEndianKey(hi)
		switch m.Op {
		case OpImplicit, OpEq:
			out.exprs = append(out.exprs,
				&expr.Cmp{Op: expr.CmpOpGte, Register: 1, Data: lo},
				&expr.Cmp{Op: expr.CmpOpLte, Register: 1, Data: hi})
		case OpNeq:
			out.exprs = append(out.exprs, &expr.Range{Op: expr.CmpOpNeq, Register: 1, FromData: lo, ToData: hi})
		default:
			c.errorf(m.Pos, "operator %s cannot compare with a range", m.Op)
			return false
		}
	case *Prefix:
		if !isEquality(m.Op) {
			c.errorf(m.Pos, "operator %s cannot compare with a prefix", m.Op)
			return false
		}
		if f.Type.kind == kindString {
			// An interface wildcard compares the name's first bytes.
			out.exprs = append(out.exprs, &expr.Cmp{Op: eqOrNeq(m.Op), Register: 1, Data: v.V.Bytes[:v.Len/8]})
			return true
		}
		mask := prefixMask(int(n), v.Len)
		if f.Kind != KindPayload && v.Len%8 == 0 && v.Len > 0 {
			out.exprs = append(out.exprs, &expr.Cmp{Op: eqOrNeq(m.Op), Register: 1, Data: v.V.Bytes[:v.Len/8]})
			return true
		}
		out.exprs = append(out.exprs,
			bitwise(n, mask, make([]byte, n)),
			&expr.Cmp{Op: eqOrNeq(m.Op), Register: 1, Data: v.V.Bytes})
	case *Set:
		if !isEquality(m.Op) {
			c.errorf(m.Pos, "operator %s cannot compare with a set", m.Op)
			return false
		}
		s, ok := c.set(m.Fields, v)
		if !ok {
			return false
		}
		if s.interval && hostRel {
			// Interval sets keep host-order keys big-endian, as nft does.
			out.exprs = append(out.exprs, hton(n))
		}
		out.sets = append(out.sets, s)
		out.exprs = append(out.exprs, &setRef{Lookup: expr.Lookup{SourceRegister: 1, Invert: m.Op == OpNeq}, idx: len(out.sets) - 1})
	default:
		c.errorf(m.Pos, "unsupported value %T", v)
		return false
	}
	return true
}

func eqOrNeq(op Op) expr.CmpOp {
	if op == OpNeq {
		return expr.CmpOpNeq
	}
	return expr.CmpOpEq
}

// compileConcat compiles "f1 . f2 ... { ... }": each field loaded into the
// registers after the previous one, then one lookup.
func (c *compiler) compileConcat(m *Compare, out *compiledMatches) bool {
	s, ok := m.Value.(*Set)
	if !ok || !isEquality(m.Op) {
		c.errorf(m.Pos, "a concatenation matches a set with ==, != or no operator")
		return false
	}
	as, ok := c.set(m.Fields, s)
	if !ok {
		return false
	}
	var off uint32
	for _, f := range m.Fields {
		out.exprs = append(out.exprs, c.load(f, off))
		if as.interval && f.Order == HostEndian && f.Len() > 1 {
			// Interval keys are big-endian, host-order parts converted.
			reg := register(off)
			out.exprs = append(out.exprs, &expr.Byteorder{SourceRegister: reg, DestRegister: reg, Op: expr.ByteorderHton, Len: f.Len(), Size: f.Len()})
		}
		off += pad4(f.Len())
	}
	out.sets = append(out.sets, as)
	out.exprs = append(out.exprs, &setRef{Lookup: expr.Lookup{SourceRegister: 1, Invert: m.Op == OpNeq}, idx: len(out.sets) - 1})
	return true
}

// pad4 rounds n up to a multiple of 4: concatenated keys align every part
// on a 32-bit register.
func pad4(n uint32) uint32 { return (n + 3) &^ 3 }

// setKeyType returns the set key type of f.
func setKeyType(f *Field) nftables.SetDatatype {
	kt := f.Type.set
	kt.Bytes = f.Len()
	return kt
}

// interval is an inclusive range of big-endian keys.
type interval struct{ lo, hi []byte }

// set builds the anonymous set of a lookup on fields (one field, or the
// parts of a concatenation): elements in register byte order for a plain
// set; for an interval set, big-endian start and end+1 elements with nft's
// merging of overlapping and adjacent intervals.
func (c *compiler) set(fields []*Field, s *Set) (*anonSet, bool) {
	if len(fields) > 1 {
		return c.concatSet(fields, s)
	}
	f := fields[0]
	as := &anonSet{keyType: setKeyType(f), fields: fields}
	var ivs []interval
	for _, e := range s.Elems {
		iv, isInterval, ok := c.elemInterval(f, e)
		if !ok {
			return nil, false
		}
		if isInterval {
			as.interval = true
		}
		ivs = append(ivs, iv)
	}
	if !as.interval {
		seen := map[string]bool{}
		for _, iv := range ivs {
			if seen[string(iv.lo)] {
				continue
			}
			seen[string(iv.lo)] = true
			as.elems = append(as.elems, nftables.SetElement{Key: iv.lo})
		}
		return as, true
	}
	if !f.aligned() {
		as.elems = shiftedIntervals(f, ivs)
		return as, true
	}
	// Interval keys are big-endian (the lookup converts host-order
	// registers first, see compileCompare).
	for i := range ivs {
		ivs[i] = interval{f.bigEndianKey(ivs[i].lo), f.bigEndianKey(ivs[i].hi)}
	}
	ivs = mergeIntervals(ivs)
	if !isZero(ivs[0].lo) {
		as.elems = append(as.elems, nftables.SetElement{Key: make([]byte, len(ivs[0].lo)), IntervalEnd: true})
	}
	for _, iv := range ivs {
		e := nftables.SetElement{Key: iv.lo}
		end, ok := increment(iv.hi)
		if !ok {
			e.IntervalOpen = true
		}
		as.elems = append(as.elems, e)
		if ok {
			as.elems = append(as.elems, nftables.SetElement{Key: end, IntervalEnd: true})
		}
	}
	return as, true
}

// shiftedIntervals returns the elements of an interval set of a field not
// aligned on bytes (ip dscp, vlan id) as nft builds them: intervals merged
// as values, then shifted into place; the end element is the shifted end
// plus one, and an interval reaching the field's largest value has none
// when the field is not shifted (nft 1.0.6 then lists the interval up to
// the largest key: "ip ecn { 0x0-0xff }").
func shiftedIntervals(f *Field, ivs []interval) []nftables.SetElement {
	type span struct{ lo, hi uint64 }
	var spans []span
	for _, iv := range ivs {
		spans = append(spans, span{valueUint(f, iv.lo), valueUint(f, iv.hi)})
	}
	slices.SortStableFunc(spans, func(a, b span) int {
		switch {
		case a.lo < b.lo:
			return -1
		case a.lo > b.lo:
			return 1
		}
		return 0
	})
	var merged []span
	for _, sp := range spans {
		if k := len(merged); k > 0 && sp.lo <= merged[k-1].hi+1 {
			merged[k-1].hi = max(merged[k-1].hi, sp.hi)
			continue
		}
		merged = append(merged, sp)
	}
	n, sh := int(f.Len()), f.shift()
	top := uint64(1)<<f.Bits - 1
	var out []nftables.SetElement
	if merged[0].lo != 0 {
		out = append(out, nftables.SetElement{Key: make([]byte, n), IntervalEnd: true})
	}
	for _, sp := range merged {
		e := nftables.SetElement{Key: uintBytes(sp.lo<<sh, n)}
		if sh == 0 && sp.hi == top {
			e.IntervalOpen = true
			out = append(out, e)
			continue
		}
		out = append(out, e, nftables.SetElement{Key: uintBytes(sp.hi<<sh+1, n), IntervalEnd: true})
	}
	return out
}

// elemInterval returns the register-order range of keys a set element of f
// covers, and whether it needs an interval set.
func (c *compiler) elemInterval(f *Field, e Value) (interval, bool, bool) {
	switch e := e.(type) {
	case *Single:
		b, ok := c.resolve(f, e.V)
		return interval{b, b}, false, ok
	case *Range:
		lo, ok1 := c.resolve(f, e.Lo)
		hi, ok2 := c.resolve(f, e.Hi)
		return interval{lo, hi}, true, ok1 && ok2
	case *Prefix:
		// Prefixes are of big-endian values: addresses and names.
		lo := bytes.Clone(e.V.Bytes)
		hi := orBytes(lo, notBytes(prefixMask(len(lo), e.Len)))
		return interval{lo, hi}, true, true
	}
	c.errorf(e.ValuePos(), "unsupported set element %T", e)
	return interval{}, false, false
}

// mergeIntervals sorts intervals and merges those that overlap or touch, as
// nft does for anonymous sets.
func mergeIntervals(ivs []interval) []interval {
	slices.SortStableFunc(ivs, func(a, b interval) int { return bytes.Compare(a.lo, b.lo) })
	var out []interval
	for _, iv := range ivs {
		if k := len(out); k > 0 {
			last := &out[k-1]
			next, ok := increment(last.hi)
			if !ok || bytes.Compare(iv.lo, next) <= 0 {
				if bytes.Compare(iv.hi, last.hi) > 0 {
					last.hi = iv.hi
				}
				continue
			}
		}
		out = append(out, interval{bytes.Clone(iv.lo), bytes.Clone(iv.hi)})
	}
	return out
}

// concatSet builds the set of a concatenation: keys are the parts' register
// bytes, each padded to 32 bits; with a range or prefix in any part, the set
// is an interval set whose elements carry their start and (inclusive) end.
func (c *compiler) concatSet(fields []*Field, s *Set) (*anonSet, bool) {
	types := make([]nftables.SetDatatype, len(fields))
	for i, f := range fields {
		types[i] = setKeyType(f)
	}
	kt, err := nftables.ConcatSetType(types...)
	if err != nil {
		c.errorf(s.Pos, "%v", err)
		return nil, false
	}
	as := &anonSet{keyType: kt, concat: true, fields: fields}
	type elem struct{ lo, hi []byte }
	var elems []elem
	for _, e := range s.Elems {
		cv, ok := e.(*Concat)
		if !ok || len(cv.Parts) != len(fields) {
			c.errorf(e.ValuePos(), "a set element of a concatenation needs %d parts", len(fields))
			return nil, false
		}
		var lo, hi []byte
		for i, part := range cv.Parts {
			iv, isInterval, ok := c.elemInterval(fields[i], part)
			if !ok {
				return nil, false
			}
			if isInterval {
				as.interval = true
			}
			pad := make([]byte, pad4(fields[i].Len())-fields[i].Len())
			lo = append(append(lo, iv.lo...), pad...)
			hi = append(append(hi, iv.hi...), pad...)
		}
		elems = append(elems, elem{lo, hi})
	}
	for _, e := range elems {
		se := nftables.SetElement{Key: e.lo}
		if as.interval {
			// Big-endian parts, start and inclusive end.
			var off uint32
			for _, f := range fields {
				n := f.Len()
				copy(se.Key[off:], f.bigEndianKey(e.lo[off:off+n]))
				e.hi = bytes.Clone(e.hi)
				copy(e.hi[off:], f.bigEndianKey(e.hi[off:off+n]))
				off += pad4(n)
			}
			se.KeyEnd = e.hi
		}
		as.elems = append(as.elems, se)
	}
	return as, true
}
