package nfrules

import (
	"strings"

	"github.com/google/nftables/expr"
)

// FieldKind says where a field's value is loaded from.
type FieldKind int

// The places a field can be loaded from.
const (
	KindPayload FieldKind = iota // packet bytes: expr.Payload
	KindMeta                     // packet metadata: expr.Meta
	KindCt                       // conntrack: expr.Ct
)

// Forms is a set of the forms of match a field admits.
type Forms uint16

// The forms of match.
const (
	FormEq       Forms = 1 << iota // a single value, with or without ==
	FormNeq                        // != a single value
	FormRel                        // <, >, <=, >=
	FormRange                      // lo-hi, == or !=
	FormPrefix                     // addr/len, == or !=
	FormMask                       // & MASK or | BITS before the operator
	FormSet                        // { a, b-c, ... }
	FormNegSet                     // != { ... }
	FormConcat                     // a part of "f1 . f2 { v1 . v2, ... }"
	FormFlags                      // a flag list: syn,ack (any of these bits), v / mask
	FormWildcard                   // a name ending in "*"
)

var formNames = []struct {
	f    Forms
	name string
}{
	{FormEq, "a value"}, {FormNeq, "!="}, {FormRel, "<, >, <=, >="}, {FormRange, "ranges lo-hi"},
	{FormPrefix, "prefixes addr/len"}, {FormMask, "masks (& and |)"}, {FormSet, "sets { a, b }"},
	{FormNegSet, "negated sets != { a, b }"}, {FormConcat, "concatenations (a . b)"},
	{FormFlags, "flag lists (a,b)"}, {FormWildcard, "wildcards (\"eth*\")"},
}

// String lists the forms in words, for error messages.
func (f Forms) String() string {
	var parts []string
	for _, n := range formNames {
		if f&n.f != 0 {
			parts = append(parts, n.name)
		}
	}
	return strings.Join(parts, ", ")
}

// HookSet is a set of hooks.
type HookSet uint16

// Has reports whether h is in the set.
func (s HookSet) Has(h Hook) bool { return s&(1<<h) != 0 }

// Hooks lists the hooks of the set in order.
func (s HookSet) Hooks() []Hook {
	var out []Hook
	for h := HookPrerouting; h <= HookEgress; h++ {
		if s.Has(h) {
			out = append(out, h)
		}
	}
	return out
}

func hooks(hs ...Hook) HookSet {
	var s HookSet
	for _, h := range hs {
		s |= 1 << h
	}
	return s
}

var (
	allHooks   = hooks(HookPrerouting, HookInput, HookForward, HookOutput, HookPostrouting, HookIngress, HookEgress)
	inetHooks  = hooks(HookPrerouting, HookInput, HookForward, HookOutput, HookPostrouting)
	llHooks    = hooks(HookPrerouting, HookInput, HookForward, HookIngress, HookEgress) // an Ethernet header is there
	netdevOnly = hooks(HookIngress, HookEgress)
	inHooks    = allHooks &^ hooks(HookOutput)                             // an input interface is known
	outHooks   = allHooks &^ hooks(HookPrerouting, HookInput, HookIngress) // an output interface is known
	ctHooks    = inetHooks                                                 // connection tracking has run
	nfHooks    = inetHooks                                                 // meta nfproto: inet only
)

// Field describes one field a rule can match: one row of the table that
// drives parsing, type checking, the encoding of values and set elements,
// compiling and printing.
type Field struct {
	// Name is the spelling users write and nft's own: "tcp dport", "meta
	// mark", "ct original ip saddr".
	Name string
	// List is how nft lists the field: "iifname" for meta iifname.
	List string
	// Proto is the protocol header the field is in ("ether", "vlan", "arp",
	// "ip", "ip6", "icmp", "icmpv6", "tcp", "udp", "udplite", "sctp", "th"),
	// or "" for meta and ct fields. It decides the implicit dependency nft
	// adds ("meta l4proto tcp" before "tcp dport").
	Proto string
	Type  *Datatype
	// Order is the byte order of the value in the register.
	Order ByteOrder
	// Bits is the width of a value.
	Bits int
	Kind FieldKind

	// Payload fields: the header and the bit offset in it, and the index of
	// the field in nft's description of the header (proto.c), which nft
	// records in a set's userdata.
	Base     expr.PayloadBase
	Offset   int
	Template int

	// Meta and ct fields.
	Meta expr.MetaKey
	Ct   expr.CtKey
	Dir  int // ct direction of ct original/reply fields: 0 original, 1 reply; -1 none

	// Hooks lists the hooks the field exists at.
	Hooks HookSet
	// Forms lists the forms of match the field admits.
	Forms Forms
	// Need is the match on another field of the same header nft adds
	// before this one ("icmp id" needs an echo type): the field and its
	// values.
	Need *need
}

// need is an extra dependency: field Field must be one of Values.
type need struct {
	Field  string
	Values []uint64
}

// Len returns the number of bytes the field occupies in a register: the
// bytes a payload field is loaded from, or the meta/ct key's size.
func (f *Field) Len() uint32 {
	if f.Kind != KindPayload {
		return uint32((f.Bits + 7) / 8)
	}
	first := f.Offset / 8
	last := (f.Offset + f.Bits - 1) / 8
	return uint32(last - first + 1)
}

// loadOffset is the byte offset a payload field is loaded from.
func (f *Field) loadOffset() uint32 { return uint32(f.Offset / 8) }

// shift is how far a sub-byte payload field's value sits from the low bit
// of the loaded bytes.
func (f *Field) shift() int {
	if f.Kind != KindPayload {
		return 0
	}
	return int(f.Len())*8 - f.Offset%8 - f.Bits
}

// bitMask returns the mask a field not aligned on bytes is loaded with, or
// nil.
func (f *Field) bitMask() []byte {
	if f.Kind != KindPayload || (f.Offset%8 == 0 && f.Bits%8 == 0) {
		return nil
	}
	n := int(f.Len())
	m := make([]byte, n)
	for b := 0; b < f.Bits; b++ {
		pos := f.shift() + b // from the low bit
		m[n-1-pos/8] |= 1 << (pos % 8)
	}
	return m
}

// aligned reports whether the field covers whole bytes.
func (f *Field) aligned() bool { return f.bitMask() == nil }

// valueLen is the number of bytes of a value of f (big-endian, unshifted).
func (f *Field) valueLen() int { return (f.Bits + 7) / 8 }

// Fields lists every field nfmirror accepts, keyed by every spelling a user
// may write ("mark" and "meta mark" both name meta mark).
var Fields = map[string]*Field{}

// FieldList lists the fields in table order, each once.
var FieldList []*Field

// forms every field admits.
const formsAll = FormEq | FormNeq | FormSet | FormNegSet

// formsFor returns the forms a field of type t admits.
func formsFor(f *Field) Forms {
	fs := formsAll
	t := f.Type
	if t.ordered() {
		fs |= FormRel | FormRange
	}
	switch t.kind {
	case kindIPv4, kindIPv6:
		fs |= FormPrefix
	case kindBitmask:
		fs |= FormFlags
	case kindString:
		if f.Kind == KindMeta {
			fs |= FormWildcard
		}
	}
	if f.aligned() {
		fs |= FormConcat
		switch t.kind {
		case kindInteger, kindBitmask, kindIPv4, kindIPv6:
			fs |= FormMask
		case kindSymbolic:
			if t.numeric {
				fs |= FormMask
			}
		}
	}
	return fs
}

// row builders for the table below.
func payload(proto, name string, tmpl int, base expr.PayloadBase, off, bits int, t *Datatype, hs HookSet) *Field {
	return &Field{Name: proto + " " + name, List: proto + " " + name, Proto: proto, Type: t, Bits: bits,
		Kind: KindPayload, Base: base, Offset: off, Dir: -1, Hooks: hs, Template: tmpl}
}

func meta(name, list string, key expr.MetaKey, bits int, order ByteOrder, t *Datatype, hs HookSet) *Field {
	return &Field{Name: "meta " + name, List: list, Type: t, Bits: bits, Order: order,
		Kind: KindMeta, Meta: key, Dir: -1, Hooks: hs}
}

func ct(name string, key expr.CtKey, dir, bits int, order ByteOrder, t *Datatype) *Field {
	return &Field{Name: "ct " + name, List: "ct " + name, Type: t, Bits: bits, Order: order,
		Kind: KindCt, Ct: key, Dir: dir, Hooks: ctHooks}
}

func addField(f *Field, aliases ...string) {
	if f.Forms == 0 {
		f.Forms = formsFor(f)
	}
	Fields[f.Name] = f
	for _, a := range aliases {
		Fields[a] = f
	}
	FieldList = append(FieldList, f)
}

// noForms removes forms from a field.
func noForms(f *Field, fs Forms) *Field {
	f.Forms = formsFor(f) &^ fs
	return f
}

func init() {
	ll, nh, th := expr.PayloadBaseLLHeader, expr.PayloadBaseNetworkHeader, expr.PayloadBaseTransportHeader
	i := typeInteger

	// Ethernet and VLAN (nft's proto.c: proto_eth, proto_vlan).
	addField(payload("ether", "daddr", 1, ll, 0, 48, typeEther, llHooks))
	addField(payload("ether", "saddr", 2, ll, 48, 48, typeEther, llHooks))
	addField(payload("ether", "type", 3, ll, 96, 16, typeEtherType, llHooks))
	addField(payload("vlan", "pcp", 1, ll, 112, 3, i, llHooks))
	addField(payload("vlan", "dei", 3, ll, 115, 1, i, llHooks), "vlan cfi")
	addField(payload("vlan", "id", 4, ll, 116, 12, i, llHooks))
	addField(payload("vlan", "type", 5, ll, 128, 16, typeEtherType, llHooks))

	// ARP (netdev only: the inet family sees IPv4 and IPv6 alone).
	addField(payload("arp", "htype", 1, nh, 0, 16, i, netdevOnly))
	addField(payload("arp", "ptype", 2, nh, 16, 16, typeEtherType, netdevOnly))
	addField(payload("arp", "hlen", 3, nh, 32, 8, i, netdevOnly))
	addField(payload("arp", "plen", 4, nh, 40, 8, i, netdevOnly))
	addField(payload("arp", "operation", 5, nh, 48, 16, typeARPOp, netdevOnly))
	addField(payload("arp", "saddr ether", 6, nh, 64, 48, typeEther, netdevOnly))
	addField(payload("arp", "saddr ip", 7, nh, 112, 32, typeIPv4, netdevOnly))
	addField(payload("arp", "daddr ether", 8, nh, 144, 48, typeEther, netdevOnly))
	addField(payload("arp", "daddr ip", 9, nh, 192, 32, typeIPv4, netdevOnly))

	// IPv4.
	addField(payload("ip", "version", 1, nh, 0, 4, i, allHooks))
	addField(payload("ip", "hdrlength", 2, nh, 4, 4, i, allHooks))
	addField(payload("ip", "dscp", 3, nh, 8, 6, typeDSCP, allHooks))
	addField(payload("ip", "ecn", 4, nh, 14, 2, typeECN, allHooks))
	addField(payload("ip", "length", 5, nh, 16, 16, i, allHooks))
	addField(payload("ip", "id", 6, nh, 32, 16, i, allHooks))
	addField(payload("ip", "frag-off", 7, nh, 48, 16, i, allHooks))
	addField(payload("ip", "ttl", 8, nh, 64, 8, i, allHooks))
	addField(payload("ip", "protocol", 9, nh, 72, 8, typeInetProto, allHooks))
	addField(payload("ip", "checksum", 10, nh, 80, 16, i, allHooks))
	addField(payload("ip", "saddr", 11, nh, 96, 32, typeIPv4, allHooks))
	addField(payload("ip", "daddr", 12, nh, 128, 32, typeIPv4, allHooks))

	// IPv6.
	addField(payload("ip6", "version", 1, nh, 0, 4, i, allHooks))
	addField(payload("ip6", "dscp", 2, nh, 4, 6, typeDSCP, allHooks))
	addField(payload("ip6", "ecn", 3, nh, 10, 2, typeECN, allHooks))
	addField(payload("ip6", "flowlabel", 4, nh, 12, 20, i, allHooks))
	addField(payload("ip6", "length", 5, nh, 32, 16, i, allHooks))
	addField(payload("ip6", "nexthdr", 6, nh, 48, 8, typeInetProto, allHooks))
	addField(payload("ip6", "hoplimit", 7, nh, 56, 8, i, allHooks))
	addField(payload("ip6", "saddr", 8, nh, 64, 128, typeIPv6, allHooks))
	addField(payload("ip6", "daddr", 9, nh, 192, 128, typeIPv6, allHooks))

	// ICMP and ICMPv6. Fields of some message types only come with a match
	// on the type, which nft adds.
	echo4 := &need{"icmp type", []uint64{0, 8}}
	echo6 := &need{"icmpv6 type", []uint64{128, 129}}
	addField(payload("icmp", "type", 1, th, 0, 8, typeICMPType, allHooks))
	addField(payload("icmp", "code", 2, th, 8, 8, typeICMPCode, allHooks))
	addField(payload("icmp", "checksum", 3, th, 16, 16, i, allHooks))
	f := payload("icmp", "id", 4, th, 32, 16, i, allHooks)
	f.Need = echo4
	addField(f)
	f = payload("icmp", "sequence", 5, th, 48, 16, i, allHooks)
	f.Need = echo4
	addField(f)
	f = payload("icmp", "gateway", 6, th, 32, 32, typeGateway, allHooks)
	f.Need = &need{"icmp type", []uint64{5}}
	addField(f)
	f = payload("icmp", "mtu", 7, th, 48, 16, i, allHooks)
	f.Need = &need{"icmp type", []uint64{3}}
	addField(f)
	addField(payload("icmpv6", "type", 1, th, 0, 8, typeICMPv6Type, allHooks))
	addField(payload("icmpv6", "code", 2, th, 8, 8, typeICMPv6Code, allHooks))
	addField(payload("icmpv6", "checksum", 3, th, 16, 16, i, allHooks))
	f = payload("icmpv6", "mtu", 5, th, 32, 32, i, allHooks)
	f.Need = &need{"icmpv6 type", []uint64{2}}
	addField(f)
	f = payload("icmpv6", "id", 6, th, 32, 16, i, allHooks)
	f.Need = echo6
	addField(f)
	f = payload("icmpv6", "sequence", 7, th, 48, 16, i, allHooks)
	f.Need = echo6
	addField(f)
	f = payload("icmpv6", "max-delay", 8, th, 32, 16, i, allHooks)
	f.Need = &need{"icmpv6 type", []uint64{130}}
	addField(f)

	// Transport headers.
	addField(payload("tcp", "sport", 1, th, 0, 16, typePort, allHooks))
	addField(payload("tcp", "dport", 2, th, 16, 16, typePort, allHooks))
	addField(payload("tcp", "sequence", 3, th, 32, 32, i, allHooks))
	addField(payload("tcp", "ackseq", 4, th, 64, 32, i, allHooks))
	addField(payload("tcp", "doff", 5, th, 96, 4, i, allHooks))
	addField(payload("tcp", "flags", 7, th, 104, 8, typeTCPFlags, allHooks))
	addField(payload("tcp", "window", 8, th, 112, 16, i, allHooks))
	addField(payload("tcp", "checksum", 9, th, 128, 16, i, allHooks))
	addField(payload("tcp", "urgptr", 10, th, 144, 16, i, allHooks))
	addField(payload("udp", "sport", 1, th, 0, 16, typePort, allHooks))
	addField(payload("udp", "dport", 2, th, 16, 16, typePort, allHooks))
	addField(payload("udp", "length", 3, th, 32, 16, i, allHooks))
	addField(payload("udp", "checksum", 4, th, 48, 16, i, allHooks))
	addField(payload("udplite", "sport", 1, th, 0, 16, typePort, allHooks))
	addField(payload("udplite", "dport", 2, th, 16, 16, typePort, allHooks))
	addField(payload("udplite", "csumcov", 3, th, 32, 16, i, allHooks))
	addField(payload("udplite", "checksum", 4, th, 48, 16, i, allHooks))
	addField(payload("sctp", "sport", 1, th, 0, 16, typePort, allHooks))
	addField(payload("sctp", "dport", 2, th, 16, 16, typePort, allHooks))
	addField(payload("sctp", "vtag", 3, th, 32, 32, i, allHooks))
	addField(payload("sctp", "checksum", 4, th, 64, 32, i, allHooks))
	addField(payload("th", "sport", 1, th, 0, 16, typePort, allHooks))
	addField(payload("th", "dport", 2, th, 16, 16, typePort, allHooks))

	// Packet metadata (nft's meta.c). nft lists iif, oif, iifname and
	// oifname without "meta".
	addField(meta("length", "meta length", expr.MetaKeyLEN, 32, HostEndian, i, allHooks))
	addField(meta("protocol", "meta protocol", expr.MetaKeyPROTOCOL, 16, BigEndian, typeEtherType, allHooks))
	addField(meta("nfproto", "meta nfproto", expr.MetaKeyNFPROTO, 8, HostEndian, typeNFProto, nfHooks))
	addField(meta("l4proto", "meta l4proto", expr.MetaKeyL4PROTO, 8, HostEndian, typeInetProto, allHooks), "l4proto")
	addField(meta("mark", "meta mark", expr.MetaKeyMARK, 32, HostEndian, typeMark, allHooks), "mark")
	addField(meta("iif", "iif", expr.MetaKeyIIF, 32, HostEndian, typeIfindex, inHooks), "iif")
	addField(meta("oif", "oif", expr.MetaKeyOIF, 32, HostEndian, typeIfindex, outHooks), "oif")
	addField(meta("iifname", "iifname", expr.MetaKeyIIFNAME, 128, BigEndian, typeIfname, inHooks), "iifname")
	addField(meta("oifname", "oifname", expr.MetaKeyOIFNAME, 128, BigEndian, typeIfname, outHooks), "oifname")
	addField(meta("iiftype", "meta iiftype", expr.MetaKeyIIFTYPE, 16, HostEndian, typeIfaceType, inHooks), "iiftype")
	addField(meta("oiftype", "meta oiftype", expr.MetaKeyOIFTYPE, 16, HostEndian, typeIfaceType, outHooks), "oiftype")
	addField(meta("pkttype", "meta pkttype", expr.MetaKeyPKTTYPE, 8, HostEndian, typePkttype, allHooks), "pkttype")
	addField(meta("cpu", "meta cpu", expr.MetaKeyCPU, 32, HostEndian, i, allHooks), "cpu")

	// Connection tracking (nft's ct.c).
	addField(ct("state", expr.CtKeySTATE, -1, 32, HostEndian, typeCtState))
	addField(ct("status", expr.CtKeySTATUS, -1, 32, HostEndian, typeCtStatus))
	addField(ct("direction", expr.CtKeyDIRECTION, -1, 8, HostEndian, typeCtDir))
	addField(ct("mark", expr.CtKeyMARK, -1, 32, HostEndian, typeMark))
	addField(ct("l3proto", expr.CtKeyL3PROTOCOL, -1, 8, HostEndian, typeNFProto))
	addField(ct("protocol", expr.CtKeyPROTOCOL, -1, 8, BigEndian, typeInetProto))
	addField(ct("zone", expr.CtKeyZONE, -1, 16, HostEndian, i))
	addField(ct("packets", expr.CtKeyPKTS, -1, 64, HostEndian, i))
	addField(ct("bytes", expr.CtKeyBYTES, -1, 64, HostEndian, i))
	addField(ct("avgpkt", expr.CtKeyAVGPKT, -1, 64, HostEndian, i))
	addField(noForms(ct("helper", expr.CtKeyHELPER, -1, 128, BigEndian, typeString), FormConcat))
	for dir, d := range []string{"original", "reply"} {
		addField(ct(d+" ip saddr", expr.CtKeySRCIP, dir, 32, BigEndian, typeIPv4))
		addField(ct(d+" ip daddr", expr.CtKeyDSTIP, dir, 32, BigEndian, typeIPv4))
		addField(ct(d+" ip6 saddr", expr.CtKeySRCIP6, dir, 128, BigEndian, typeIPv6))
		addField(ct(d+" ip6 daddr", expr.CtKeyDSTIP6, dir, 128, BigEndian, typeIPv6))
	}

	for name := range Fields {
		for i := range len(name) {
			if name[i] == ' ' {
				fieldNamePrefixes[name[:i]] = true
			}
		}
	}
}

// fieldNamePrefixes holds every proper beginning of a field name ("ct",
// "ct original", "ct original ip"), built with the table.
var fieldNamePrefixes = map[string]bool{}

// fieldPrefix reports whether words (joined by spaces) is a field name, and
// whether it is the beginning of a longer one.
func fieldPrefix(words string) (full bool, partial bool) {
	_, full = Fields[words]
	return full, fieldNamePrefixes[words]
}
