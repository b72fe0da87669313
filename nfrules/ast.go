package nfrules

import (
	"fmt"
	"strings"
)

// Pos is a position in a rules file. Line and Col count from 1; Col counts
// bytes. The zero Pos means "no position".
type Pos struct {
	File string
	Line int
	Col  int
}

// IsValid reports whether p names a real position.
func (p Pos) IsValid() bool { return p.Line > 0 }

// String formats p as file:line:col, the form editors and compilers use.
func (p Pos) String() string {
	if !p.IsValid() {
		if p.File != "" {
			return p.File
		}
		return "-"
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Family is an nftables address family that nfmirror installs a table in.
type Family int

// The families nfmirror uses.
const (
	FamilyInet   Family = iota // IPv4 and IPv6 at the netfilter hooks
	FamilyNetdev               // every frame at a device's ingress or egress
)

// String returns the family's nft keyword.
func (f Family) String() string {
	switch f {
	case FamilyInet:
		return "inet"
	case FamilyNetdev:
		return "netdev"
	}
	return fmt.Sprintf("family(%d)", int(f))
}

// Hook is the netfilter hook a block is attached to.
type Hook int

// The hooks a block may name.
const (
	HookPrerouting Hook = iota
	HookInput
	HookForward
	HookOutput
	HookPostrouting
	HookIngress // netdev, needs a device
	HookEgress  // netdev, needs a device
)

var hookNames = [...]string{"prerouting", "input", "forward", "output", "postrouting", "ingress", "egress"}

// String returns the hook's nft keyword.
func (h Hook) String() string {
	if h >= 0 && int(h) < len(hookNames) {
		return hookNames[h]
	}
	return fmt.Sprintf("hook(%d)", int(h))
}

// Family returns the family whose table holds chains for h.
func (h Hook) Family() Family {
	if h == HookIngress || h == HookEgress {
		return FamilyNetdev
	}
	return FamilyInet
}

// LookupHook returns the hook named by an nft keyword.
func LookupHook(name string) (Hook, bool) {
	for i, n := range hookNames {
		if n == name {
			return Hook(i), true
		}
	}
	return 0, false
}

// Ruleset is a checked rules file: its blocks in file order, with every
// variable expanded and every include read.
type Ruleset struct {
	Blocks []*Block
}

// Block is one hook block. A hook may have several blocks; the compiler keeps
// their rules in file order.
type Block struct {
	Pos    Pos
	Hook   Hook
	Device string // the device of an ingress or egress block; empty for inet hooks
	Rules  []*Rule
}

// Rule is one rule: matches that must all hold, then one or more mirror
// statements (several mean fan-out to several destinations).
type Rule struct {
	Pos     Pos
	Text    string  // the rule's source text on one line, for listings and status
	Matches []Match // in source order
	Mirrors []*Mirror
}

// Mirror is one "mirror to DEST [snaplen N] [lossless]" statement.
type Mirror struct {
	Pos      Pos
	Dest     string // mirror interface name, at most 15 bytes
	Snaplen  uint32 // bytes of each packet to copy; 0 copies whole packets
	Lossless bool   // copy through NFQUEUE (fail-open) instead of NFLOG
	// Shared: the destination also carries the host's own traffic, as the
	// operator says with "shared"; nfmirror then leaves its flags alone and
	// guards no port there.
	Shared bool
	// To says what Dest is when it is not a local port: a remote collector
	// or a capture file (Dest is then To.Key()). Its zero value means the
	// local port Dest.
	To Destination
}

// Target is the destination of the statement.
func (m *Mirror) Target() Destination {
	if m.To.Kind == DestPort && m.To.Port == "" {
		return Destination{Kind: DestPort, Port: m.Dest}
	}
	return m.To
}

// Shared reports whether a mirror statement of rs says its destination dest
// is shared with the host's own traffic.
func (rs *Ruleset) Shared(dest string) bool {
	for _, b := range rs.Blocks {
		for _, r := range b.Rules {
			for _, m := range r.Mirrors {
				if m.Dest == dest && m.Shared {
					return true
				}
			}
		}
	}
	return false
}

// Match is one match expression of a rule: *Compare, *Limit or *Sample.
type Match interface {
	MatchPos() Pos
	isMatch()
}

// Op is a relational operator.
type Op int

// The relational operators. OpImplicit is a match written without an
// operator: equality, or for bitmask types (ct state, tcp flags) "any of
// these bits set", exactly as nft reads it.
const (
	OpImplicit Op = iota
	OpEq
	OpNeq
	OpLt
	OpGt
	OpLte
	OpGte
)

var opNames = [...]string{"", "==", "!=", "<", ">", "<=", ">="}

// String returns the operator as written in nft syntax.
func (o Op) String() string {
	if o >= 0 && int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", int(o))
}

// Compare matches packet fields against a value: "tcp dport { 80, 443 }",
// "ip saddr != 198.18.0.0/15", "meta mark & 0xff00 == 0x100",
// "ip saddr . tcp dport { 198.18.0.1 . 80 }".
type Compare struct {
	Pos Pos
	// Fields holds the field matched, or the parts of a concatenation.
	Fields []*Field
	// Bits is the bitwise operation applied to the field before comparing
	// ("& 0xff00", "| 0x10"); nil if none.
	Bits *BitOp
	Op   Op
	// Value is a *Single, *Range, *Prefix or *Set; a concatenation's is a
	// *Set of *Concat.
	Value Value
}

// Field returns the field matched (the first part of a concatenation).
func (c *Compare) Field() *Field { return c.Fields[0] }

// BitOp is the bitwise operation "& MASK" or "| BITS" (or a chain of them,
// folded) that a Compare applies to its field: the register value v becomes
// (v & Mask) ^ Xor, as nft's bitwise expression computes it. Mask and Xor
// are register bytes, in the field's byte order.
type BitOp struct {
	Pos  Pos
	Mask []byte
	Xor  []byte
}

// Limit is "limit rate [over] N/UNIT [burst M packets]" or, counting bytes,
// "limit rate [over] N [kbytes|mbytes|bytes]/UNIT [burst M bytes]".
type Limit struct {
	Pos   Pos
	Over  bool
	Rate  uint64 // packets, or bytes when Bytes is set
	Unit  LimitUnit
	Burst uint32 // 0 means nft's default (5 packets; no burst for bytes)
	Bytes bool   // the rate counts bytes
}

// LimitUnit is the time unit of a limit rate.
type LimitUnit int

// The units a limit rate may use.
const (
	PerSecond LimitUnit = iota
	PerMinute
	PerHour
	PerDay
	PerWeek
)

var unitNames = [...]string{"second", "minute", "hour", "day", "week"}

// String returns the unit's nft keyword.
func (u LimitUnit) String() string {
	if u >= 0 && int(u) < len(unitNames) {
		return unitNames[u]
	}
	return fmt.Sprintf("unit(%d)", int(u))
}

// Sample is "numgen random mod N OP M": it selects a pseudo-random share of
// the packets, e.g. "numgen random mod 100 < 5" for 5%.
type Sample struct {
	Pos   Pos
	Mod   uint32
	Op    Op
	Value uint32
}

func (c *Compare) MatchPos() Pos { return c.Pos } //nolint:revive // documented on Match
func (l *Limit) MatchPos() Pos   { return l.Pos }
func (s *Sample) MatchPos() Pos  { return s.Pos }
func (*Compare) isMatch()        {}
func (*Limit) isMatch()          {}
func (*Sample) isMatch()         {}

// Value is the right-hand side of a Compare: *Single, *Range, *Prefix,
// *Concat or *Set.
type Value interface {
	ValuePos() Pos
	isValue()
}

// Datum is one typed constant: its bytes exactly as the kernel compares them
// in a register (the field's length and byte order; a sub-byte field's
// value shifted into place; an interface name NUL-padded) and the canonical
// text nft accepts for it ("8080", "198.18.0.1", "ipv6-icmp", "\"eth0\"",
// "established"), for messages. The bytes of an interface index (meta iif,
// oif) are the interface name until Compile resolves it.
type Datum struct {
	Pos   Pos
	Bytes []byte
	Text  string
}

// Single is one value, e.g. 443 or "eth0" or syn,ack (bitmask values are
// or-ed together into one Datum).
type Single struct{ V Datum }

// Range is an inclusive range "lo-hi".
type Range struct{ Lo, Hi Datum }

// Prefix is a value whose first Len bits must match: an address prefix
// "addr/len", or an interface name wildcard "eth*" (the name's bytes).
// V holds the value with the other bits zero.
type Prefix struct {
	Pos Pos
	V   Datum
	Len int
}

// Concat is one element of a set matched by a concatenation: one value,
// range or prefix per field.
type Concat struct {
	Pos   Pos
	Parts []Value
}

// Set is an anonymous set "{ a, b-c, d/len }". Its elements are *Single,
// *Range, *Prefix or *Concat, never *Set.
type Set struct {
	Pos   Pos
	Elems []Value
}

func (v *Single) ValuePos() Pos { return v.V.Pos }
func (v *Range) ValuePos() Pos  { return v.Lo.Pos }
func (v *Prefix) ValuePos() Pos { return v.Pos }
func (v *Concat) ValuePos() Pos { return v.Pos }
func (v *Set) ValuePos() Pos    { return v.Pos }
func (*Single) isValue()        {}
func (*Range) isValue()         {}
func (*Prefix) isValue()        {}
func (*Concat) isValue()        {}
func (*Set) isValue()           {}

// InterfaceNames returns the interfaces the ruleset's iif, oif, iifname and
// oifname matches name, as written (a wildcard keeps its '*'), each with the
// position of its first use: devices the operator selects traffic on.
func (rs *Ruleset) InterfaceNames() map[string]Pos {
	out := map[string]Pos{}
	add := func(d Datum) {
		name := strings.Trim(d.Text, `"`)
		if _, ok := out[name]; !ok && name != "" {
			out[name] = d.Pos
		}
	}
	var walk func(v Value)
	walk = func(v Value) {
		switch v := v.(type) {
		case *Single:
			add(v.V)
		case *Prefix:
			add(v.V)
		case *Set:
			for _, e := range v.Elems {
				walk(e)
			}
		}
	}
	for _, b := range rs.Blocks {
		for _, r := range b.Rules {
			for _, m := range r.Matches {
				c, ok := m.(*Compare)
				if !ok || len(c.Fields) != 1 {
					continue
				}
				if t := c.Field().Type; t != typeIfname && t != typeIfindex {
					continue
				}
				walk(c.Value)
			}
		}
	}
	return out
}

// MatchesInterface reports whether the name as InterfaceNames returns it (a
// wildcard "eth*" or a plain name) covers the device dev.
func MatchesInterface(name, dev string) bool {
	if prefix, ok := strings.CutSuffix(name, "*"); ok {
		return strings.HasPrefix(dev, prefix)
	}
	return name == dev
}
