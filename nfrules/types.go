package nfrules

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/google/nftables"
)

// ByteOrder is the order in which the kernel keeps a field's value in a
// register: payload fields are big-endian (network order); metadata such as
// meta mark, ct state or an interface index is kept in host order.
type ByteOrder int

// The byte orders.
const (
	BigEndian ByteOrder = iota
	HostEndian
)

// typeKind says how the values of a data type are written and printed.
type typeKind int

const (
	kindInteger  typeKind = iota // numbers, decimal or hexadecimal
	kindSymbolic                 // numbers some of which have names (tcp, echo-request, ef)
	kindBitmask                  // flags or-ed together (syn,ack; established,related)
	kindIPv4                     // 198.18.0.1
	kindIPv6                     // 2001:db8::1
	kindEther                    // 02:00:00:00:00:01
	kindString                   // a NUL-padded string such as an interface name
	kindIfindex                  // an interface name resolved to its index when compiled
)

// Datatype is one of nft's data types: it decides which literals a field
// accepts, how nft prints its values, and the key type of a set of them.
// The names and spellings are those of nft 1.0.6 (src/datatype.c, proto.c,
// meta.c, ct.c).
type Datatype struct {
	Name string // nft's name: "inet_service", "mark", "ct_state", ...
	Desc string // what a value looks like, for error messages
	kind typeKind
	// syms lists the symbolic names; the first listed for a value is the one
	// nft prints, later ones are accepted aliases.
	syms symbolTable
	// hex prints numbers as hexadecimal with at least this many digits
	// (mark: 8, ether type: 4, dscp: 2); -1 means hexadecimal with as many
	// digits as needed (ct state 0x10); 0 means decimal.
	hex int
	// numeric: nft prints numbers even when a name exists (ports).
	numeric bool
	// prefix: nft prints "value & mask" with a contiguous mask as a prefix
	// "value/len" (addresses and marks).
	prefix bool
	// parseOnly are names accepted but never printed (service names).
	parseOnly symbolTable
	set       nftables.SetDatatype
}

// The data types.
var (
	typeIPv4       = &Datatype{Name: "ipv4_addr", Desc: "an IPv4 address", kind: kindIPv4, prefix: true, set: nftables.TypeIPAddr}
	typeIPv6       = &Datatype{Name: "ipv6_addr", Desc: "an IPv6 address", kind: kindIPv6, prefix: true, set: nftables.TypeIP6Addr}
	typeEther      = &Datatype{Name: "ether_addr", Desc: "an Ethernet address such as 02:00:00:00:00:01", kind: kindEther, set: nftables.TypeEtherAddr}
	typeInetProto  = &Datatype{Name: "inet_proto", Desc: "an IP protocol (tcp, udp, icmp, ... or 0-255)", kind: kindSymbolic, syms: inetProtos, set: nftables.TypeInetProto}
	typePort       = &Datatype{Name: "inet_service", Desc: "a port (0-65535 or a service name)", kind: kindSymbolic, numeric: true, parseOnly: services, set: nftables.TypeInetService}
	typeIfname     = &Datatype{Name: "ifname", Desc: "an interface name", kind: kindString, set: nftables.TypeIFName}
	typeIfindex    = &Datatype{Name: "iface_index", Desc: "an interface name", kind: kindIfindex, set: nftables.TypeIFIndex}
	typeString     = &Datatype{Name: "string", Desc: "a quoted name", kind: kindString, set: nftables.TypeString}
	typeMark       = &Datatype{Name: "mark", Desc: "a 32-bit mark", kind: kindInteger, hex: 8, prefix: true, set: nftables.TypeMark}
	typePkttype    = &Datatype{Name: "pkt_type", Desc: "a packet type (host, broadcast, multicast, other)", kind: kindSymbolic, syms: pktTypes, set: nftables.TypePktType}
	typeTCPFlags   = &Datatype{Name: "tcp_flag", Desc: "TCP flags (fin, syn, rst, psh, ack, urg, ecn, cwr)", kind: kindBitmask, syms: tcpFlags, hex: -1, set: nftables.TypeTCPFlag}
	typeICMPType   = &Datatype{Name: "icmp_type", Desc: "an ICMP type (echo-request, ... or 0-255)", kind: kindSymbolic, syms: icmpTypes, set: nftables.TypeICMPType}
	typeICMPCode   = &Datatype{Name: "icmp_code", Desc: "an ICMP code (port-unreachable, ... or 0-255)", kind: kindSymbolic, syms: icmpCodes, set: nftables.TypeICMPCode}
	typeICMPv6Type = &Datatype{Name: "icmpv6_type", Desc: "an ICMPv6 type (echo-request, nd-neighbor-solicit, ... or 0-255)", kind: kindSymbolic, syms: icmpv6Types, set: nftables.TypeICMP6Type}
	typeICMPv6Code = &Datatype{Name: "icmpv6_code", Desc: "an ICMPv6 code (no-route, port-unreachable, ... or 0-255)", kind: kindSymbolic, syms: icmpv6Codes, set: nftables.TypeICMPV6Code}
	typeCtState    = &Datatype{Name: "ct_state", Desc: "a conntrack state (invalid, established, related, new, untracked)", kind: kindBitmask, syms: ctStates, hex: -1, set: nftables.TypeCTState}
	typeCtStatus   = &Datatype{Name: "ct_status", Desc: "a conntrack status (expected, seen-reply, assured, confirmed, snat, dnat, dying)", kind: kindBitmask, syms: ctStatuses, hex: -1, set: nftables.TypeCTStatus}
	typeCtDir      = &Datatype{Name: "ct_dir", Desc: "a conntrack direction (original, reply)", kind: kindSymbolic, syms: ctDirs, set: nftables.TypeCTDir}
	typeEtherType  = &Datatype{Name: "ether_type", Desc: "an ethertype (ip, ip6, arp, vlan, ... or a 16-bit number)", kind: kindSymbolic, syms: etherTypes, hex: 4, set: nftables.TypeEtherType}
	typeARPOp      = &Datatype{Name: "arp_op", Desc: "an ARP operation (request, reply, ...)", kind: kindSymbolic, syms: arpOps, set: nftables.TypeARPOp}
	typeNFProto    = &Datatype{Name: "nf_proto", Desc: "a family (ipv4, ipv6)", kind: kindSymbolic, syms: nfProtos, set: nftables.TypeNFProto}
	typeIfaceType  = &Datatype{Name: "iface_type", Desc: "an interface type (ether, loopback, ppp, ...)", kind: kindSymbolic, syms: ifaceTypes, set: nftables.TypeARPHRD}
	typeDSCP       = &Datatype{Name: "dscp", Desc: "a DSCP class (ef, cs0-cs7, af11-af43, ... or 0-63)", kind: kindSymbolic, syms: dscpClasses, hex: 2, set: nftables.TypeDSCP}
	typeECN        = &Datatype{Name: "ecn", Desc: "an ECN codepoint (not-ect, ect1, ect0, ce)", kind: kindSymbolic, syms: ecnCodes, hex: -1, set: nftables.TypeECN}
	typeInteger    = &Datatype{Name: "integer", Desc: "an integer", kind: kindInteger, set: nftables.TypeInteger}
	// typeGateway is icmp gateway's integer type, which nft 1.0.6 lists
	// "& 0xffff0000 == 0x10000" as a prefix ("65536/16"), unlike other
	// integers.
	typeGateway = &Datatype{Name: "integer", Desc: "an integer", kind: kindInteger, prefix: true, set: nftables.TypeInteger}
)

// bitmask reports whether a plain match of the type means "any of these
// bits" (tcp flags syn,ack), as nft reads it.
func (t *Datatype) bitmask() bool { return t.kind == kindBitmask }

// ordered reports whether <, >, ranges and intervals make sense for t.
func (t *Datatype) ordered() bool {
	switch t.kind {
	case kindString, kindIfindex, kindBitmask:
		return false
	}
	return t != typePkttype && t != typeCtDir && t != typeNFProto
}

// symbol is one symbolic constant of a data type.
type symbol struct {
	Name  string
	Value uint64
}

// symbolTable is the ordered list of a type's symbolic constants.
type symbolTable []symbol

// lookup returns the value of name.
func (s symbolTable) lookup(name string) (uint64, bool) {
	for _, sym := range s {
		if sym.Name == name {
			return sym.Value, true
		}
	}
	return 0, false
}

// name returns nft's spelling of v, or "" if v has no symbol.
func (s symbolTable) name(v uint64) string {
	for _, sym := range s {
		if sym.Value == v {
			return sym.Name
		}
	}
	return ""
}

// names lists the symbols' names, for "did you mean" suggestions.
func (s symbolTable) names() []string {
	out := make([]string, len(s))
	for i, sym := range s {
		out[i] = sym.Name
	}
	return out
}

// inetProtos are the IP protocols as Debian's /etc/protocols names them: nft
// prints a protocol with getprotobynumber(3). "icmpv6" is accepted as an
// alias of ipv6-icmp, as nft does.
var inetProtos = symbolTable{
	{"ip", 0}, {"hopopt", 0}, {"icmp", 1}, {"igmp", 2}, {"ggp", 3}, {"ipencap", 4}, {"st", 5},
	{"tcp", 6}, {"egp", 8}, {"igp", 9}, {"pup", 12}, {"udp", 17}, {"hmp", 20},
	{"xns-idp", 22}, {"rdp", 27}, {"iso-tp4", 29}, {"dccp", 33}, {"xtp", 36}, {"ddp", 37},
	{"idpr-cmtp", 38}, {"ipv6", 41}, {"ipv6-route", 43}, {"ipv6-frag", 44}, {"idrp", 45},
	{"rsvp", 46}, {"gre", 47}, {"esp", 50}, {"ah", 51}, {"skip", 57}, {"ipv6-icmp", 58},
	{"icmpv6", 58}, {"ipv6-nonxt", 59}, {"ipv6-opts", 60}, {"rspf", 73}, {"vmtp", 81},
	{"eigrp", 88}, {"ospf", 89}, {"ax.25", 93}, {"ipip", 94}, {"etherip", 97},
	{"encap", 98}, {"pim", 103}, {"ipcomp", 108}, {"vrrp", 112}, {"l2tp", 115},
	{"isis", 124}, {"sctp", 132}, {"fc", 133}, {"mobility-header", 135}, {"udplite", 136},
	{"mpls-in-ip", 137}, {"manet", 138}, {"hip", 139}, {"shim6", 140}, {"wesp", 141},
	{"rohc", 142}, {"ethernet", 143},
}

// etherTypes are the ethertypes nft knows by name.
var etherTypes = symbolTable{
	{"ip", 0x0800}, {"arp", 0x0806}, {"ip6", 0x86dd}, {"8021q", 0x8100},
	{"vlan", 0x8100}, {"8021ad", 0x88a8},
}

// icmpTypes are the ICMP (IPv4) message types.
var icmpTypes = symbolTable{
	{"echo-reply", 0}, {"destination-unreachable", 3}, {"source-quench", 4},
	{"redirect", 5}, {"echo-request", 8}, {"router-advertisement", 9},
	{"router-solicitation", 10}, {"time-exceeded", 11}, {"parameter-problem", 12},
	{"timestamp-request", 13}, {"timestamp-reply", 14}, {"info-request", 15},
	{"info-reply", 16}, {"address-mask-request", 17}, {"address-mask-reply", 18},
}

// icmpCodes are the ICMP destination-unreachable codes nft names.
var icmpCodes = symbolTable{
	{"net-unreachable", 0}, {"host-unreachable", 1}, {"prot-unreachable", 2},
	{"port-unreachable", 3}, {"frag-needed", 4}, {"net-prohibited", 9},
	{"host-prohibited", 10}, {"admin-prohibited", 13},
}

// icmpv6Types are the ICMPv6 message types.
var icmpv6Types = symbolTable{
	{"destination-unreachable", 1}, {"packet-too-big", 2}, {"time-exceeded", 3},
	{"parameter-problem", 4}, {"echo-request", 128}, {"echo-reply", 129},
	{"mld-listener-query", 130}, {"mld-listener-report", 131},
	{"mld-listener-done", 132}, {"mld-listener-reduction", 132},
	{"nd-router-solicit", 133}, {"nd-router-advert", 134},
	{"nd-neighbor-solicit", 135}, {"nd-neighbor-advert", 136},
	{"nd-redirect", 137}, {"router-renumbering", 138},
	{"ind-neighbor-solicit", 141}, {"ind-neighbor-advert", 142},
	{"mld2-listener-report", 143},
}

// icmpv6Codes are the ICMPv6 destination-unreachable codes nft names.
var icmpv6Codes = symbolTable{
	{"no-route", 0}, {"admin-prohibited", 1}, {"addr-unreachable", 3},
	{"port-unreachable", 4}, {"policy-fail", 5}, {"reject-route", 6},
}

// pktTypes are the packet types of meta pkttype.
var pktTypes = symbolTable{
	{"host", 0}, {"unicast", 0}, {"broadcast", 1}, {"multicast", 2}, {"other", 3},
}

// ctStates are the conntrack state bits.
var ctStates = symbolTable{
	{"invalid", 1}, {"established", 2}, {"related", 4}, {"new", 8}, {"untracked", 64},
}

// ctStatuses are the conntrack status bits nft names.
var ctStatuses = symbolTable{
	{"expected", 1}, {"seen-reply", 2}, {"assured", 4}, {"confirmed", 8},
	{"snat", 0x10}, {"dnat", 0x20}, {"dying", 0x200},
}

// ctDirs are the conntrack directions.
var ctDirs = symbolTable{{"original", 0}, {"reply", 1}}

// tcpFlags are the TCP header flag bits.
var tcpFlags = symbolTable{
	{"fin", 0x01}, {"syn", 0x02}, {"rst", 0x04}, {"psh", 0x08},
	{"ack", 0x10}, {"urg", 0x20}, {"ecn", 0x40}, {"cwr", 0x80},
}

// arpOps are the ARP operations.
var arpOps = symbolTable{
	{"request", 1}, {"reply", 2}, {"rrequest", 3}, {"rreply", 4},
	{"inrequest", 8}, {"inreply", 9}, {"nak", 10},
}

// nfProtos are the netfilter families nft names.
var nfProtos = symbolTable{{"ipv4", 2}, {"ipv6", 10}}

// ifaceTypes are the ARPHRD device types nft names.
var ifaceTypes = symbolTable{
	{"ether", 1}, {"ppp", 512}, {"ipip", 768}, {"ipip6", 769}, {"loopback", 772},
	{"sit", 776}, {"ipgre", 778},
}

// dscpClasses are the DSCP code points nft names.
var dscpClasses = symbolTable{
	{"cs0", 0x00}, {"lephb", 0x01}, {"cs1", 0x08}, {"af11", 0x0a}, {"af12", 0x0c},
	{"af13", 0x0e}, {"cs2", 0x10}, {"af21", 0x12}, {"af22", 0x14}, {"af23", 0x16},
	{"cs3", 0x18}, {"af31", 0x1a}, {"af32", 0x1c}, {"af33", 0x1e}, {"cs4", 0x20},
	{"af41", 0x22}, {"af42", 0x24}, {"af43", 0x26}, {"cs5", 0x28}, {"va", 0x2c},
	{"ef", 0x2e}, {"cs6", 0x30}, {"cs7", 0x38},
}

// ecnCodes are the ECN code points.
var ecnCodes = symbolTable{{"not-ect", 0}, {"ect1", 1}, {"ect0", 2}, {"ce", 3}}

// services are well-known port names as /etc/services spells them. nft lists
// ports as numbers.
var services = symbolTable{
	{"ftp-data", 20}, {"ftp", 21}, {"ssh", 22}, {"telnet", 23}, {"smtp", 25},
	{"domain", 53}, {"bootps", 67}, {"bootpc", 68}, {"tftp", 69}, {"http", 80},
	{"www", 80}, {"kerberos", 88}, {"pop3", 110}, {"sunrpc", 111}, {"ntp", 123},
	{"netbios-ns", 137}, {"netbios-dgm", 138}, {"netbios-ssn", 139},
	{"imap", 143}, {"imap2", 143}, {"snmp", 161}, {"snmp-trap", 162}, {"bgp", 179},
	{"ldap", 389}, {"https", 443}, {"microsoft-ds", 445}, {"isakmp", 500},
	{"syslog", 514}, {"submission", 587}, {"ipp", 631}, {"ldaps", 636},
	{"rsync", 873}, {"imaps", 993}, {"pop3s", 995}, {"openvpn", 1194},
	{"nfs", 2049}, {"mysql", 3306}, {"ipsec-nat-t", 4500}, {"sip", 5060},
	{"xmpp-client", 5222}, {"postgresql", 5432},
}

// allNames lists every name a type accepts, for suggestions.
func (t *Datatype) allNames() []string {
	return append(t.syms.names(), t.parseOnly.names()...)
}

// lookupName returns the value of a symbolic name of t.
func (t *Datatype) lookupName(name string) (uint64, bool) {
	if v, ok := t.syms.lookup(name); ok {
		return v, true
	}
	return t.parseOnly.lookup(name)
}

// parseValue reads one literal of t for a value of the given width in bits.
// It returns the value big-endian in (bits+7)/8 bytes, or a message saying
// what was wrong (the caller adds the field name and the position).
func (t *Datatype) parseValue(s string, quoted bool, width int) ([]byte, string) {
	n := (width + 7) / 8
	switch t.kind {
	case kindString, kindIfindex:
		return []byte(s), ""
	}
	if quoted {
		return nil, fmt.Sprintf("expects %s, not the string \"%s\"", t.Desc, s)
	}
	switch t.kind {
	case kindIPv4, kindIPv6:
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Sprintf("expects %s, not %q", t.Desc, s)
		}
		if t.kind == kindIPv4 && !a.Is4() {
			return nil, "expects an IPv4 address, not the IPv6 address " + s
		}
		if t.kind == kindIPv6 && !a.Is6() {
			return nil, "expects an IPv6 address, not the IPv4 address " + s
		}
		return a.AsSlice(), ""
	case kindEther:
		hw, err := net.ParseMAC(s)
		if err != nil || len(hw) != 6 {
			return nil, fmt.Sprintf("expects %s, not %q", t.Desc, s)
		}
		return []byte(hw), ""
	}
	var v uint64
	if isDigit(s[0]) {
		var ok bool
		v, ok = parseUint(s, 64)
		if !ok {
			if sv, found := t.lookupName(strings.ToLower(s)); found { // "8021q"
				v = sv
			} else {
				return nil, fmt.Sprintf("expects %s, not %q", t.Desc, s)
			}
		}
	} else {
		sv, found := t.lookupName(strings.ToLower(s))
		if !found {
			return nil, fmt.Sprintf("expects %s, not %q%s", t.Desc, s, suggest(strings.ToLower(s), t.allNames()))
		}
		v = sv
	}
	if width < 64 && v >= 1<<width {
		return nil, fmt.Sprintf("value %s out of range: at most %d", s, uint64(1)<<width-1)
	}
	return uintBytes(v, n), ""
}

// uintBytes encodes v big-endian in n bytes (n <= 8).
func uintBytes(v uint64, n int) []byte {
	b := binary.BigEndian.AppendUint64(nil, v)
	return b[8-n:]
}

// bytesUint decodes a big-endian number of at most 8 bytes.
func bytesUint(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// printCtx is where a value is printed: nft prints ranges numerically.
type printCtx int

const (
	inValue    printCtx = iota // a single value: names where there are
	inRange                    // an end of a range: numbers only
	inSetFlags                 // a bitmask value inside a set: "syn | ack"
)

// format prints v (big-endian, of the type's width) the way nft 1.0.6 lists
// it. names resolves interface indexes.
func (t *Datatype) format(v []byte, ctx printCtx, names func(uint32) string) string {
	switch t.kind {
	case kindIPv4, kindIPv6:
		a, _ := netip.AddrFromSlice(v)
		return a.String()
	case kindEther:
		return net.HardwareAddr(v).String()
	case kindString:
		s, _, _ := strings.Cut(string(v), "\x00")
		return strconv.Quote(s)
	case kindIfindex:
		idx := uint32(bytesUint(v))
		if names != nil {
			if n := names(idx); n != "" {
				return strconv.Quote(n)
			}
		}
		return strconv.FormatUint(uint64(idx), 10)
	}
	n := bytesUint(v)
	if ctx != inRange && !t.numeric {
		if t.kind == kindBitmask {
			if s := t.flagNames(n, ctx); s != "" {
				return s
			}
		} else if s := t.syms.name(n); s != "" {
			return s
		}
	}
	return t.number(n)
}

// number prints n in the type's base format.
func (t *Datatype) number(n uint64) string {
	switch {
	case t.hex > 0:
		return fmt.Sprintf("0x%0*x", t.hex, n)
	case t.hex < 0:
		return fmt.Sprintf("0x%x", n)
	}
	return strconv.FormatUint(n, 10)
}

// flagNames prints a bitmask value as its flags in the symbol table's
// order, joined by "," (a match) or " | " (a set element); "" when some bit
// has no name or no bit is set.
func (t *Datatype) flagNames(n uint64, ctx printCtx) string {
	if n == 0 {
		return ""
	}
	var parts []string
	rest := n
	for _, s := range t.syms {
		if n&s.Value != 0 && bits.OnesCount64(s.Value) == 1 {
			parts = append(parts, s.Name)
			rest &^= s.Value
		}
	}
	if rest != 0 {
		parts = append(parts, fmt.Sprintf("0x%x", rest))
	}
	if ctx == inSetFlags {
		return strings.Join(parts, " | ")
	}
	return strings.Join(parts, ",")
}
