package nfrules

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// This file prints compiled expressions back as nft 1.0.6 lists them (its
// netlink_delinearize.c and the print functions of each expression and data
// type): "check" shows what the kernel holds, not what the file says. It
// reads only the expressions and sets Compile made, and the field table.

// dmatch is one relational statement read back from expressions: loads,
// bitwise operations, then a comparison, range or set lookup.
type dmatch struct {
	loads  []expr.Any // *expr.Payload, *expr.Meta, *expr.Ct or *expr.Numgen
	bits   []*expr.Bitwise
	hton   bool
	op     expr.CmpOp
	isCmp  bool
	data   []byte
	isRng  bool // cmp gte + cmp lte, or a range expression
	rngNeq bool
	lo, hi []byte
	set    *anonSet
	invert bool

	// resolved
	field   *Field
	fields  []*Field // a concatenation
	loadLen uint32
}

// dstmt is one statement of a rule as listed.
type dstmt struct {
	m      *dmatch
	text   string
	hidden bool
}

// decoder holds the protocol context while a rule is read back, as nft's
// delinearization does: what the matches so far have established, and the
// matches that are dependencies a later match makes implicit.
type decoder struct {
	fam   Family
	names func(uint32) string
	ether bool
	vlan  bool
	net   string
	l4    string
	// indexes of the statements that may be dependencies, -1 for none
	depLL, depVlan, depNet, depL4, depNeed int
	needValue                              uint64
	icmpTypes                              []uint64 // the ICMP types the rule has pinned
	l4ByHeader                             bool     // ip protocol or ip6 nexthdr pinned the transport protocol
	stmts                                  []*dstmt
}

// decodeExprs returns the nft listing of a rule's expressions (statements
// other than matches included). sets are the anonymous sets the *setRef
// placeholders in exprs point to; names resolves interface indexes.
func decodeExprs(fam Family, exprs []expr.Any, sets []*anonSet, names func(uint32) string) string {
	d := &decoder{fam: fam, names: names, depLL: -1, depVlan: -1, depNet: -1, depL4: -1, depNeed: -1}
	d.group(exprs, sets)
	for i, s := range d.stmts {
		if s.m != nil {
			s.text = d.matchText(i, s.m)
		}
	}
	var parts []string
	for _, s := range d.stmts {
		if !s.hidden && s.text != "" {
			parts = append(parts, s.text)
		}
	}
	return strings.Join(parts, " ")
}

// group splits expressions into statements.
func (d *decoder) group(exprs []expr.Any, sets []*anonSet) {
	var cur *dmatch
	flush := func() {
		if cur != nil {
			d.stmts = append(d.stmts, &dstmt{m: cur})
			cur = nil
		}
	}
	for i := 0; i < len(exprs); i++ {
		switch e := exprs[i].(type) {
		case *expr.Payload, *expr.Meta, *expr.Ct, *expr.Numgen:
			if cur != nil && (cur.isCmp || cur.isRng || cur.set != nil || len(cur.bits) > 0) {
				flush()
			}
			if cur == nil {
				cur = &dmatch{}
			}
			cur.loads = append(cur.loads, e)
		case *expr.Bitwise:
			if cur == nil {
				d.stmts = append(d.stmts, &dstmt{text: fmt.Sprintf("# bitwise without a load %+v", e)})
				continue
			}
			cur.bits = append(cur.bits, e)
		case *expr.Byteorder:
			if cur != nil {
				cur.hton = true
			}
		case *expr.Cmp:
			if cur == nil {
				d.stmts = append(d.stmts, &dstmt{text: fmt.Sprintf("# cmp without a load %+v", e)})
				continue
			}
			if e.Op == expr.CmpOpGte && i+1 < len(exprs) {
				if next, ok := exprs[i+1].(*expr.Cmp); ok && next.Op == expr.CmpOpLte {
					cur.isRng, cur.lo, cur.hi = true, e.Data, next.Data
					i++
					flush()
					continue
				}
			}
			cur.isCmp, cur.op, cur.data = true, e.Op, e.Data
			flush()
		case *expr.Range:
			if cur == nil {
				continue
			}
			cur.isRng, cur.rngNeq, cur.lo, cur.hi = true, e.Op == expr.CmpOpNeq, e.FromData, e.ToData
			flush()
		case *setRef:
			if cur == nil || e.idx >= len(sets) {
				continue
			}
			cur.set, cur.invert = sets[e.idx], e.Invert
			flush()
		default:
			flush()
			d.stmts = append(d.stmts, &dstmt{text: statementText(e)})
		}
	}
	flush()
}

// statementText prints a statement that is not a match.
func statementText(e expr.Any) string {
	switch e := e.(type) {
	case *expr.Counter:
		return "counter"
	case *expr.Log:
		return logStatement(e)
	case *expr.Limit:
		return limitStatement(e)
	case *expr.Verdict:
		switch e.Kind {
		case expr.VerdictAccept:
			return "accept"
		case expr.VerdictDrop:
			return "drop"
		case expr.VerdictReturn:
			return "return"
		case expr.VerdictContinue:
			return "continue"
		case expr.VerdictJump:
			return "jump " + e.Chain
		case expr.VerdictGoto:
			return "goto " + e.Chain
		}
	case *expr.Target:
		// nft 1.0.6 built without libxtables lists an xt target as
		// nothing; Plan.NFT says what is installed in a comment.
		return ""
	}
	return fmt.Sprintf("# unknown expression %T", e)
}

// logStatement prints a log expression as nft lists it: prefix, then group,
// snaplen and queue-threshold, or level and flags.
func logStatement(e *expr.Log) string {
	has := func(attr int) bool { return e.Key&(1<<attr) != 0 }
	s := "log"
	if has(unix.NFTA_LOG_PREFIX) {
		s += fmt.Sprintf(" prefix %q", string(e.Data))
	}
	if has(unix.NFTA_LOG_GROUP) {
		s += fmt.Sprintf(" group %d", e.Group)
		if has(unix.NFTA_LOG_SNAPLEN) {
			s += fmt.Sprintf(" snaplen %d", e.Snaplen)
		}
		if has(unix.NFTA_LOG_QTHRESHOLD) {
			s += fmt.Sprintf(" queue-threshold %d", e.QThreshold)
		}
		return s
	}
	levels := []string{"emerg", "alert", "crit", "err", "warn", "notice", "info", "debug", "audit"}
	if has(unix.NFTA_LOG_LEVEL) && e.Level != 4 && int(e.Level) < len(levels) {
		s += " level " + levels[e.Level]
	}
	return s
}

// byteRate prints a number of bytes with the largest of bytes, kbytes and
// mbytes that divides it, as nft does.
func byteRate(n uint64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d mbytes", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d kbytes", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

var limitUnitNames = map[expr.LimitTime]string{
	expr.LimitTimeSecond: "second", expr.LimitTimeMinute: "minute", expr.LimitTimeHour: "hour",
	expr.LimitTimeDay: "day", expr.LimitTimeWeek: "week",
}

func limitStatement(e *expr.Limit) string {
	s := "limit rate "
	if e.Over {
		s += "over "
	}
	unit := limitUnitNames[e.Unit]
	if e.Type == expr.LimitTypePktBytes {
		s += byteRate(e.Rate) + "/" + unit
		if e.Burst != 0 {
			s += " burst " + byteRate(uint64(e.Burst))
		}
		return s
	}
	s += fmt.Sprintf("%d/%s", e.Rate, unit)
	if e.Burst != 5 && e.Burst != 0 {
		s += fmt.Sprintf(" burst %d packets", e.Burst)
	}
	return s
}

// resolve finds the field a statement loads, in the current protocol
// context, and consumes a sub-byte field's mask.
func (d *decoder) resolve(m *dmatch) {
	for i, l := range m.loads {
		f, n := d.fieldOf(l, m, i == 0)
		if f == nil {
			return
		}
		m.fields = append(m.fields, f)
		if i == 0 {
			m.field, m.loadLen = f, n
		}
	}
}

// fieldOf returns the field a load expression reads and the bytes loaded.
func (d *decoder) fieldOf(l expr.Any, m *dmatch, first bool) (*Field, uint32) {
	switch l := l.(type) {
	case *expr.Meta:
		for _, f := range FieldList {
			if f.Kind == KindMeta && f.Meta == l.Key {
				return f, f.Len()
			}
		}
	case *expr.Ct:
		dir := -1
		if l.OptDirection || isDirKey(l.Key) {
			dir = int(l.Direction)
		}
		for _, f := range FieldList {
			if f.Kind == KindCt && f.Ct == l.Key && f.Dir == dir {
				return f, f.Len()
			}
		}
	case *expr.Payload:
		protos := d.protosAt(l.Base)
		var mask []byte
		if first && len(m.bits) > 0 {
			mask = m.bits[0].Mask
		}
		// A field loaded whole, with its own mask if it is not byte-aligned.
		for _, proto := range protos {
			var found []*Field
			for _, f := range FieldList {
				if f.Kind != KindPayload || f.Proto != proto || f.Base != l.Base || f.loadOffset() != l.Offset || f.Len() != l.Len {
					continue
				}
				if fm := f.bitMask(); fm != nil {
					if mask == nil || !bytes.Equal(fm, mask) {
						continue
					}
				} else if mask != nil && d.hasSubField(proto, l) {
					continue
				}
				found = append(found, f)
			}
			if len(found) == 0 {
				continue
			}
			f := d.pick(found)
			if f.bitMask() != nil {
				m.bits = m.bits[1:]
			}
			return f, l.Len
		}
		// The first bytes of an address: a prefix.
		for _, proto := range protos {
			for _, f := range FieldList {
				if f.Kind == KindPayload && f.Proto == proto && f.Base == l.Base && f.loadOffset() == l.Offset && f.Len() > l.Len && f.Type.prefix {
					return f, l.Len
				}
			}
		}
	}
	return nil, 0
}

// pick chooses among fields at the same place of a header (icmp sequence
// and icmp mtu): the one the ICMP types pinned so far select, as nft does.
func (d *decoder) pick(fs []*Field) *Field {
	for _, f := range fs {
		if f.Need == nil || len(d.icmpTypes) == 0 {
			continue
		}
		all := true
		for _, v := range d.icmpTypes {
			if !slices.Contains(f.Need.Values, v) {
				all = false
			}
		}
		if all {
			return f
		}
	}
	return fs[0]
}

// hasSubField reports whether a field of proto loads the same bytes with a
// mask of its own (tcp doff), so that a masked load is that field.
func (d *decoder) hasSubField(proto string, l *expr.Payload) bool {
	for _, f := range FieldList {
		if f.Kind == KindPayload && f.Proto == proto && f.Base == l.Base && f.loadOffset() == l.Offset && f.Len() == l.Len && f.bitMask() != nil {
			return true
		}
	}
	return false
}

func isDirKey(k expr.CtKey) bool {
	switch k {
	case expr.CtKeySRCIP, expr.CtKeyDSTIP, expr.CtKeySRCIP6, expr.CtKeyDSTIP6, expr.CtKeySRC, expr.CtKeyDST, expr.CtKeyPROTOSRC, expr.CtKeyPROTODST:
		return true
	}
	return false
}

// protosAt lists the protocols whose fields a load from base may be, given
// the context.
func (d *decoder) protosAt(base expr.PayloadBase) []string {
	switch base {
	case expr.PayloadBaseLLHeader:
		return []string{"ether", "vlan"} // told apart by offset
	case expr.PayloadBaseNetworkHeader:
		if d.net != "" {
			return []string{d.net}
		}
	case expr.PayloadBaseTransportHeader:
		if d.l4 != "" {
			return []string{d.l4}
		}
		return []string{"th"}
	}
	return nil
}

// eqSingle returns the number an "== value" statement on one field pins.
func (m *dmatch) eqSingle() (uint64, bool) {
	if m.field == nil || len(m.fields) != 1 || !m.isCmp || m.op != expr.CmpOpEq || len(m.bits) > 0 || m.loadLen != m.field.Len() || m.field.Type.bitmask() {
		return 0, false
	}
	return valueUint(m.field, m.data), true
}

// kill hides the dependency statement at *idx.
func (d *decoder) kill(idx *int) {
	if *idx >= 0 {
		d.stmts[*idx].hidden = true
		*idx = -1
	}
}

// context updates the protocol context with statement i, hiding the
// dependencies it makes implicit, as nft's payload_dependency_kill does.
func (d *decoder) context(i int, m *dmatch) {
	f := m.field
	if f == nil {
		return
	}
	for _, g := range m.fields {
		if g.Name == "vlan type" && m.isCmp && (m.op == expr.CmpOpEq || m.op == expr.CmpOpNeq) {
			continue // nft lists "ether type 8021q vlan type ip"
		}
		d.killDeps(g)
	}
	if (f.Name == "icmp type" || f.Name == "icmpv6 type") && m.set != nil && !m.invert && !m.set.interval {
		d.icmpTypes = nil
		for _, e := range m.set.elems {
			d.icmpTypes = append(d.icmpTypes, valueUint(f, e.Key))
		}
	}
	n, ok := m.eqSingle()
	if !ok {
		return
	}
	switch f.Name {
	case "meta iiftype":
		if n == unix.ARPHRD_ETHER {
			d.ether, d.depLL = true, i
		}
	case "ether type", "meta protocol", "vlan type":
		if f.Name == "ether type" {
			d.ether = true
		}
		switch n {
		case 0x8100:
			if f.Name == "ether type" {
				d.vlan, d.depVlan = true, i
			}
		case 0x0800, 0x86dd, 0x0806:
			d.net = map[uint64]string{0x0800: "ip", 0x86dd: "ip6", 0x0806: "arp"}[n]
			d.depNet = i
		}
	case "meta nfproto":
		switch n {
		case unix.NFPROTO_IPV4:
			d.net, d.depNet = "ip", i
		case unix.NFPROTO_IPV6:
			d.net, d.depNet = "ip6", i
		}
	case "meta l4proto":
		if name := l4Name(n); name != "" {
			d.l4, d.depL4, d.l4ByHeader = name, i, false
		}
	case "ip protocol", "ip6 nexthdr":
		if name := l4Name(n); name != "" {
			d.l4, d.l4ByHeader = name, true
		}
	case "icmp type", "icmpv6 type":
		if !d.l4ByHeader {
			// nft keeps the header's own protocol match as the
			// dependency of the transport header: after "ip protocol
			// icmp" it lists "icmp type redirect icmp gateway 5".
			d.depNeed, d.needValue = i, n
		}
		d.icmpTypes = []uint64{n}
	}
}

func l4Name(n uint64) string {
	for name, v := range l4Numbers {
		if v == n {
			return name
		}
	}
	return ""
}

// killDeps hides the dependencies a field of a header makes implicit.
func (d *decoder) killDeps(f *Field) {
	if f.Kind != KindPayload {
		return
	}
	switch f.Proto {
	case "ether":
		d.kill(&d.depLL)
	case "vlan":
		d.kill(&d.depLL)
		d.kill(&d.depVlan)
	case "ip", "ip6", "arp":
		d.kill(&d.depNet)
	case "icmp", "icmpv6":
		d.kill(&d.depL4)
		d.kill(&d.depNet)
	case "tcp", "udp", "udplite", "sctp":
		d.kill(&d.depL4)
	}
	if f.Need != nil && len(f.Need.Values) == 1 && d.depNeed >= 0 && d.needValue == f.Need.Values[0] {
		d.kill(&d.depNeed)
	}
}

// matchText prints statement i, resolving its field first.
func (d *decoder) matchText(i int, m *dmatch) string {
	if ng, ok := m.loads[0].(*expr.Numgen); ok {
		return numgenText(ng, m)
	}
	d.resolve(m)
	if m.field == nil || len(m.fields) != len(m.loads) {
		return fmt.Sprintf("# unknown load %+v", m.loads[0])
	}
	d.context(i, m)
	if len(m.fields) > 1 {
		return d.concatText(m)
	}
	return d.fieldText(m)
}

func numgenText(ng *expr.Numgen, m *dmatch) string {
	s := fmt.Sprintf("numgen random mod %d", ng.Modulus)
	if !m.isCmp || len(m.data) != 4 {
		return s
	}
	v := binary.NativeEndian.Uint32(m.data)
	if m.hton {
		v = binary.BigEndian.Uint32(m.data)
	}
	if m.op != expr.CmpOpEq {
		s += " " + cmpText(m.op)
	}
	return fmt.Sprintf("%s %d", s, v)
}

func cmpText(op expr.CmpOp) string {
	switch op {
	case expr.CmpOpEq:
		return "=="
	case expr.CmpOpNeq:
		return "!="
	case expr.CmpOpLt:
		return "<"
	case expr.CmpOpLte:
		return "<="
	case expr.CmpOpGt:
		return ">"
	case expr.CmpOpGte:
		return ">="
	}
	return "?"
}

// opPrefix is the operator before a value: nothing for ==.
func opPrefix(op expr.CmpOp) string {
	if op == expr.CmpOpEq {
		return ""
	}
	return cmpText(op) + " "
}

// val prints register bytes of f.
func (d *decoder) val(f *Field, reg []byte, pc printCtx) string {
	return f.Type.format(f.decodeReg(reg), pc, d.names)
}

// flagsText prints a bitmask value as nft does: each set bit, lowest
// first, by name or as a hexadecimal number, joined by sep ("," or " | ").
func flagsText(f *Field, v uint64, sep string) string {
	if v == 0 {
		return f.Type.number(0)
	}
	var parts []string
	for b := uint64(1); b != 0 && b <= v; b <<= 1 {
		if v&b == 0 {
			continue
		}
		if name := f.Type.syms.name(b); name != "" {
			parts = append(parts, name)
		} else {
			parts = append(parts, fmt.Sprintf("0x%x", b))
		}
	}
	return strings.Join(parts, sep)
}

// fieldText prints a statement on one field.
func (d *decoder) fieldText(m *dmatch) string {
	f := m.field
	lhs := f.List
	n := f.Len()

	// A prefix of an address loaded alone, or an interface name's first
	// bytes compared alone.
	if m.isCmp && len(m.bits) == 0 && (m.loadLen < n || uint32(len(m.data)) < n) {
		k := min(m.loadLen, uint32(len(m.data)))
		full := make([]byte, n)
		copy(full, m.data[:k])
		if f.Type.kind == kindString {
			s, _, _ := strings.Cut(string(m.data[:k]), "\x00")
			return lhs + " " + opPrefix(m.op) + strconv.Quote(s+"*")
		}
		return fmt.Sprintf("%s %s%s/%d", lhs, opPrefix(m.op), d.val(f, full, inValue), 8*k)
	}

	var mask, xor []byte
	if len(m.bits) > 0 {
		b := m.bits[len(m.bits)-1]
		mask, xor = b.Mask, b.Xor
		if allOnes(mask) && isZero(xor) {
			mask, xor = nil, nil
		}
	}
	regOf := func(data []byte) []byte {
		if m.hton {
			return f.fromBigEndianKey(data)
		}
		return data
	}

	switch {
	case m.set != nil:
		op := ""
		if m.invert {
			op = "!= "
		}
		return lhs + " " + op + d.setText(m.set)
	case m.isRng:
		op := ""
		if m.rngNeq {
			op = "!= "
		}
		return fmt.Sprintf("%s %s%s-%s", lhs, op, d.val(f, regOf(m.lo), inRange), d.val(f, regOf(m.hi), inRange))
	case !m.isCmp:
		return lhs
	}

	data := regOf(m.data)
	t := f.Type
	if mask == nil {
		if t.bitmask() && (m.op == expr.CmpOpEq || m.op == expr.CmpOpNeq) {
			v := valueUint(f, data)
			switch {
			case bits.OnesCount64(v) == 1:
				return lhs + " " + cmpText(m.op) + " " + flagsText(f, v, ",")
			case v != 0 && f.Kind != KindPayload && flagsNamed(f, v):
				return lhs + " " + opPrefix(m.op) + flagsText(f, v, " | ")
			}
			return lhs + " " + cmpText(m.op) + " " + t.number(v)
		}
		pc := inValue
		if m.hton {
			pc = inRange // converted to big-endian, nft lists the number
		}
		return lhs + " " + opPrefix(m.op) + d.val(f, data, pc)
	}

	// A bitwise operation before the comparison.
	if t.bitmask() && isZero(xor) && (m.op == expr.CmpOpEq || m.op == expr.CmpOpNeq) {
		v, mk := valueUint(f, data), valueUint(f, mask)
		switch {
		case v == 0 && m.op == expr.CmpOpNeq:
			return lhs + " " + flagsText(f, mk, ",")
		case v == 0:
			return lhs + " ! " + flagsText(f, mk, ",")
		case bits.OnesCount64(mk) > 1:
			return lhs + " " + opPrefix(m.op) + flagsText(f, v, ",") + " / " + flagsText(f, mk, ",")
		}
	}
	if t.prefix && isZero(xor) && (m.op == expr.CmpOpEq || m.op == expr.CmpOpNeq) {
		if l, ok := prefixLen(f.bigEndianKey(mask)); ok {
			return fmt.Sprintf("%s %s%s/%d", lhs, opPrefix(m.op), d.val(f, data, inValue), l)
		}
	}
	s := lhs
	and := orBytes(mask, xor)
	if !allOnes(and) {
		s += " & " + d.operand(f, and)
	}
	if !isZero(xor) {
		s += " | " + d.operand(f, xor)
	}
	return s + " " + cmpText(m.op) + " " + d.valOrFlags(f, data)
}

// flagsNamed reports whether every bit of v has a name.
func flagsNamed(f *Field, v uint64) bool {
	for _, s := range f.Type.syms {
		if bits.OnesCount64(s.Value) == 1 {
			v &^= s.Value
		}
	}
	return v == 0
}

// operand prints the operand of a bitwise operation.
func (d *decoder) operand(f *Field, reg []byte) string {
	if f.Type.bitmask() {
		v := valueUint(f, reg)
		if bits.OnesCount64(v) > 1 {
			return "(" + flagsText(f, v, " | ") + ")"
		}
		return flagsText(f, v, " | ")
	}
	return d.val(f, reg, inValue)
}

func (d *decoder) valOrFlags(f *Field, reg []byte) string {
	if f.Type.bitmask() {
		return flagsText(f, valueUint(f, reg), " | ")
	}
	return d.val(f, reg, inValue)
}

// setText prints an anonymous set as nft lists it.
func (d *decoder) setText(s *anonSet) string {
	if len(s.fields) == 0 {
		return "{ }"
	}
	if s.concat {
		return d.concatSetText(s)
	}
	f := s.fields[0]
	var elems []string
	if !s.interval {
		type el struct {
			key  []byte
			text string
		}
		var els []el
		for i := len(s.elems) - 1; i >= 0; i-- { // the kernel returns them last first
			reg := s.elems[i].Key
			els = append(els, el{sortKey(f, reg), d.elemText(f, reg)})
		}
		slices.SortStableFunc(els, func(a, b el) int { return bytes.Compare(a.key, b.key) })
		for _, e := range els {
			elems = append(elems, e.text)
		}
	} else {
		for _, iv := range setIntervals(s) {
			elems = append(elems, d.intervalText(f, iv))
		}
	}
	return "{ " + strings.Join(elems, ", ") + " }"
}

// sortKey is the key nft sorts a set's elements by: the value as a number
// (host-order values and names in host order); for a flag set, its lowest
// flag.
func sortKey(f *Field, reg []byte) []byte {
	k := bytes.Clone(reg)
	if (f.Order == HostEndian || f.Type.kind == kindString) && hostLittleEndian {
		slices.Reverse(k)
	}
	if f.Type.bitmask() {
		v := bytesUint(k)
		low := v & -v
		k = uintBytes(low, len(k))
	}
	return k
}

// elemText prints one element of a plain set.
func (d *decoder) elemText(f *Field, reg []byte) string {
	if f.Type.bitmask() {
		v := valueUint(f, reg)
		if v != 0 && flagsNamed(f, v) {
			return flagsText(f, v, " | ")
		}
		return f.Type.number(v)
	}
	return d.val(f, reg, inValue)
}

// setIntervals reads the intervals of an interval set back from its start
// and end+1 elements: big-endian inclusive ranges.
func setIntervals(s *anonSet) []interval {
	var out []interval
	for i := 0; i < len(s.elems); i++ {
		e := s.elems[i]
		if e.IntervalEnd {
			continue
		}
		iv := interval{lo: e.Key}
		switch {
		case i+1 < len(s.elems) && s.elems[i+1].IntervalEnd:
			iv.hi = decrement(s.elems[i+1].Key)
		default:
			iv.hi = bytes.Repeat([]byte{0xff}, len(e.Key))
		}
		out = append(out, iv)
	}
	slices.SortStableFunc(out, func(a, b interval) int { return bytes.Compare(a.lo, b.lo) })
	return out
}

// intervalText prints one interval of an interval set: a value, a prefix
// (addresses, name wildcards) or a range.
func (d *decoder) intervalText(f *Field, iv interval) string {
	if !f.aligned() {
		// Keys of a field not aligned on bytes: shifted values. nft
		// shifts the ends back without masking them.
		lo, hi := bytesUint(iv.lo)>>f.shift(), bytesUint(iv.hi)>>f.shift()
		w := max(f.valueLen(), len(iv.hi))
		if lo == hi {
			return d.elemText(f, f.encode(uintBytes(lo, f.valueLen())))
		}
		return f.Type.format(uintBytes(lo, w), inRange, d.names) + "-" + f.Type.format(uintBytes(hi, w), inRange, d.names)
	}
	lo, hi := f.fromBigEndianKey(iv.lo), f.fromBigEndianKey(iv.hi)
	if bytes.Equal(iv.lo, iv.hi) {
		return d.elemText(f, lo)
	}
	if f.Type.prefix || f.Type.kind == kindString {
		if l, ok := intervalPrefix(iv); ok {
			if f.Type.kind == kindString {
				s, _, _ := strings.Cut(string(iv.lo[:l/8]), "\x00")
				return strconv.Quote(s + "*")
			}
			return fmt.Sprintf("%s/%d", d.val(f, lo, inValue), l)
		}
	}
	return d.val(f, lo, inRange) + "-" + d.val(f, hi, inRange)
}

// intervalPrefix reports whether an interval is exactly a prefix, and its
// length.
func intervalPrefix(iv interval) (int, bool) {
	diff := xorBytes(iv.lo, iv.hi)
	l, ok := prefixLen(notBytes(diff))
	if !ok {
		return 0, false
	}
	mask := prefixMask(len(iv.lo), l)
	if !bytes.Equal(andBytes(iv.lo, notBytes(mask)), make([]byte, len(iv.lo))) || !allOnes(orBytes(iv.hi, mask)) {
		return 0, false
	}
	return l, true
}

// concatText prints a lookup of a concatenation.
func (d *decoder) concatText(m *dmatch) string {
	names := make([]string, len(m.fields))
	for i, f := range m.fields {
		names[i] = f.List
	}
	lhs := strings.Join(names, " . ")
	if m.set == nil {
		return lhs
	}
	op := ""
	if m.invert {
		op = "!= "
	}
	return lhs + " " + op + d.setText(m.set)
}

// concatSortKey is the key nft sorts a concatenation's elements by: each
// part's value, big-endian.
func concatSortKey(s *anonSet, key []byte) []byte {
	if s.interval {
		return key // already big-endian
	}
	k := bytes.Clone(key)
	var off uint32
	for _, f := range s.fields {
		n := f.Len()
		copy(k[off:], f.bigEndianKey(key[off:off+n]))
		off += pad4(n)
	}
	return k
}

// concatSetText prints the set of a concatenation.
func (d *decoder) concatSetText(s *anonSet) string {
	type el struct {
		key  []byte
		text string
	}
	var els []el
	for i := len(s.elems) - 1; i >= 0; i-- {
		e := s.elems[i]
		var parts []string
		var off uint32
		for _, f := range s.fields {
			n := f.Len()
			lo := e.Key[off : off+n]
			if s.interval && e.KeyEnd != nil {
				hi := e.KeyEnd[off : off+n]
				parts = append(parts, d.intervalText(f, interval{lo, hi}))
			} else {
				parts = append(parts, d.elemText(f, lo))
			}
			off += pad4(n)
		}
		els = append(els, el{concatSortKey(s, e.Key), strings.Join(parts, " . ")})
	}
	slices.SortStableFunc(els, func(a, b el) int { return bytes.Compare(a.key, b.key) })
	texts := make([]string, len(els))
	for i, e := range els {
		texts[i] = e.text
	}
	return "{ " + strings.Join(texts, ", ") + " }"
}
