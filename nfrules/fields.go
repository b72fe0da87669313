package nfrules

import "github.com/google/nftables/expr"

// FieldKind says where a field's value is loaded from.
type FieldKind int

// The places a field can be loaded from.
const (
	KindPayload FieldKind = iota // packet bytes: expr.Payload
	KindMeta                     // packet metadata: expr.Meta
	KindCt                       // conntrack: expr.Ct
)

// Type is the data type of a field: it decides which literals are accepted
// and how they are encoded.
type Type int

// The data types fields use.
const (
	TypeIPv4Addr   Type = iota // 198.18.0.1, prefixes and ranges
	TypeIPv6Addr               // 2001:db8::1, prefixes and ranges
	TypeInetProto              // tcp, udp, icmp, ipv6-icmp, ... or 0-255
	TypePort                   // 0-65535, or a service name (http, https, ssh, domain, ...)
	TypeIfname                 // "eth0", "eth*" (wildcard), at most 15 bytes
	TypeIfindex                // an interface name resolved to its index when compiled
	TypeMark                   // 32-bit integer, host byte order
	TypePkttype                // host, unicast, broadcast, multicast, other
	TypeTCPFlags               // bitmask: fin, syn, rst, psh, ack, urg, ecn, cwr
	TypeICMPType               // echo-request, echo-reply, ... or 0-255
	TypeICMPv6Type             // echo-request, nd-neighbor-solicit, ... or 0-255
	TypeCtState                // bitmask: invalid, established, related, new, untracked
	TypeEtherAddr              // 02:00:00:00:00:01
	TypeEtherType              // ip, ip6, arp, vlan, or a 16-bit number
	TypeVlanID                 // 0-4095
	TypeInteger                // plain unsigned integer of the field's length
)

// Field describes one packet field a rule can match, with everything the
// parser needs to type its values and the compiler needs to load it.
type Field struct {
	Name string // the canonical nft spelling: "tcp dport", "meta mark", "ct state"
	Type Type
	Kind FieldKind
	Len  uint32 // bytes loaded into the register

	// Payload fields.
	Base   expr.PayloadBase
	Offset uint32
	// BitMask is applied to payload fields that are not byte-aligned (vlan
	// id: 0x0fff); nil otherwise.
	BitMask []byte

	// Meta and ct fields.
	Meta expr.MetaKey
	Ct   expr.CtKey

	// HostOrder is true for values the kernel keeps in host byte order
	// (meta mark, ct mark, ct state, ifindex); payload values are big-endian.
	HostOrder bool

	// Proto is the protocol the field belongs to, which decides its implicit
	// dependency (nft adds "meta l4proto tcp" before "tcp dport", "meta nfproto
	// ipv4" before "ip saddr" in inet, "ether type ip" in netdev) and what it
	// conflicts with: "ip", "ip6", "tcp", "udp", "icmp", "icmpv6", "ether",
	// "vlan", or "" for metadata that needs none.
	Proto string
}

// Fields lists every field nfmirror accepts, keyed by every spelling a user
// may write ("mark" and "meta mark" both name meta mark).
var Fields = map[string]*Field{}

func addField(f *Field, aliases ...string) {
	Fields[f.Name] = f
	for _, a := range aliases {
		Fields[a] = f
	}
}

func init() {
	nh, th, ll := expr.PayloadBaseNetworkHeader, expr.PayloadBaseTransportHeader, expr.PayloadBaseLLHeader
	addField(&Field{Name: "ip saddr", Type: TypeIPv4Addr, Kind: KindPayload, Len: 4, Base: nh, Offset: 12, Proto: "ip"})
	addField(&Field{Name: "ip daddr", Type: TypeIPv4Addr, Kind: KindPayload, Len: 4, Base: nh, Offset: 16, Proto: "ip"})
	addField(&Field{Name: "ip protocol", Type: TypeInetProto, Kind: KindPayload, Len: 1, Base: nh, Offset: 9, Proto: "ip"})
	addField(&Field{Name: "ip6 saddr", Type: TypeIPv6Addr, Kind: KindPayload, Len: 16, Base: nh, Offset: 8, Proto: "ip6"})
	addField(&Field{Name: "ip6 daddr", Type: TypeIPv6Addr, Kind: KindPayload, Len: 16, Base: nh, Offset: 24, Proto: "ip6"})
	addField(&Field{Name: "ip6 nexthdr", Type: TypeInetProto, Kind: KindPayload, Len: 1, Base: nh, Offset: 6, Proto: "ip6"})

	addField(&Field{Name: "tcp sport", Type: TypePort, Kind: KindPayload, Len: 2, Base: th, Offset: 0, Proto: "tcp"})
	addField(&Field{Name: "tcp dport", Type: TypePort, Kind: KindPayload, Len: 2, Base: th, Offset: 2, Proto: "tcp"})
	addField(&Field{Name: "tcp flags", Type: TypeTCPFlags, Kind: KindPayload, Len: 1, Base: th, Offset: 13, Proto: "tcp"})
	addField(&Field{Name: "udp sport", Type: TypePort, Kind: KindPayload, Len: 2, Base: th, Offset: 0, Proto: "udp"})
	addField(&Field{Name: "udp dport", Type: TypePort, Kind: KindPayload, Len: 2, Base: th, Offset: 2, Proto: "udp"})
	addField(&Field{Name: "icmp type", Type: TypeICMPType, Kind: KindPayload, Len: 1, Base: th, Offset: 0, Proto: "icmp"})
	addField(&Field{Name: "icmpv6 type", Type: TypeICMPv6Type, Kind: KindPayload, Len: 1, Base: th, Offset: 0, Proto: "icmpv6"})

	addField(&Field{Name: "ether saddr", Type: TypeEtherAddr, Kind: KindPayload, Len: 6, Base: ll, Offset: 6, Proto: "ether"})
	addField(&Field{Name: "ether daddr", Type: TypeEtherAddr, Kind: KindPayload, Len: 6, Base: ll, Offset: 0, Proto: "ether"})
	addField(&Field{Name: "ether type", Type: TypeEtherType, Kind: KindPayload, Len: 2, Base: ll, Offset: 12, Proto: "ether"})
	addField(&Field{Name: "vlan id", Type: TypeVlanID, Kind: KindPayload, Len: 2, Base: ll, Offset: 14, BitMask: []byte{0x0f, 0xff}, Proto: "vlan"})

	addField(&Field{Name: "meta l4proto", Type: TypeInetProto, Kind: KindMeta, Len: 1, Meta: expr.MetaKeyL4PROTO}, "l4proto")
	addField(&Field{Name: "meta protocol", Type: TypeEtherType, Kind: KindMeta, Len: 2, Meta: expr.MetaKeyPROTOCOL})
	addField(&Field{Name: "meta mark", Type: TypeMark, Kind: KindMeta, Len: 4, Meta: expr.MetaKeyMARK, HostOrder: true}, "mark")
	addField(&Field{Name: "meta iifname", Type: TypeIfname, Kind: KindMeta, Len: 16, Meta: expr.MetaKeyIIFNAME}, "iifname")
	addField(&Field{Name: "meta oifname", Type: TypeIfname, Kind: KindMeta, Len: 16, Meta: expr.MetaKeyOIFNAME}, "oifname")
	addField(&Field{Name: "meta iif", Type: TypeIfindex, Kind: KindMeta, Len: 4, Meta: expr.MetaKeyIIF, HostOrder: true}, "iif")
	addField(&Field{Name: "meta oif", Type: TypeIfindex, Kind: KindMeta, Len: 4, Meta: expr.MetaKeyOIF, HostOrder: true}, "oif")
	addField(&Field{Name: "meta pkttype", Type: TypePkttype, Kind: KindMeta, Len: 1, Meta: expr.MetaKeyPKTTYPE}, "pkttype")

	addField(&Field{Name: "ct state", Type: TypeCtState, Kind: KindCt, Len: 4, Ct: expr.CtKeySTATE, HostOrder: true})
	addField(&Field{Name: "ct mark", Type: TypeMark, Kind: KindCt, Len: 4, Ct: expr.CtKeyMARK, HostOrder: true})
}
