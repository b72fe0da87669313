package nfrules

import "slices"

// symbol is one symbolic constant of a data type. The first symbol listed for
// a value is the spelling nft prints, and the one used in Datum.Text.
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

// inetProtos are the IP protocol numbers, spelled as nft lists them (nft
// reads /etc/protocols; "icmpv6" is accepted as an alias of ipv6-icmp).
var inetProtos = symbolTable{
	{"ip", 0}, {"icmp", 1}, {"igmp", 2}, {"ipencap", 4}, {"tcp", 6}, {"egp", 8},
	{"udp", 17}, {"dccp", 33}, {"ipv6", 41}, {"ipv6-route", 43}, {"ipv6-frag", 44},
	{"rsvp", 46}, {"gre", 47}, {"esp", 50}, {"ah", 51}, {"ipv6-icmp", 58},
	{"icmpv6", 58}, {"ipv6-nonxt", 59}, {"ipv6-opts", 60}, {"eigrp", 88},
	{"ospf", 89}, {"ipip", 94}, {"etherip", 97}, {"pim", 103}, {"ipcomp", 108},
	{"vrrp", 112}, {"l2tp", 115}, {"isis", 124}, {"sctp", 132},
	{"mobility-header", 135}, {"udplite", 136}, {"mpls-in-ip", 137},
	{"hip", 139}, {"shim6", 140}, {"ethernet", 143},
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

// pktTypes are the packet types of meta pkttype.
var pktTypes = symbolTable{
	{"host", 0}, {"unicast", 0}, {"broadcast", 1}, {"multicast", 2}, {"other", 3},
}

// ctStates are the conntrack state bits.
var ctStates = symbolTable{
	{"invalid", 1}, {"established", 2}, {"related", 4}, {"new", 8}, {"untracked", 64},
}

// tcpFlags are the TCP header flag bits.
var tcpFlags = symbolTable{
	{"fin", 0x01}, {"syn", 0x02}, {"rst", 0x04}, {"psh", 0x08},
	{"ack", 0x10}, {"urg", 0x20}, {"ecn", 0x40}, {"cwr", 0x80},
}

// services are well-known port names as /etc/services spells them. nft lists
// ports as numbers, so Datum.Text of a port is always decimal.
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

// symbolsOf returns the symbol table of a data type, or nil.
func symbolsOf(t Type) symbolTable {
	switch t {
	case TypeInetProto:
		return inetProtos
	case TypePort:
		return services
	case TypePkttype:
		return pktTypes
	case TypeTCPFlags:
		return tcpFlags
	case TypeICMPType:
		return icmpTypes
	case TypeICMPv6Type:
		return icmpv6Types
	case TypeCtState:
		return ctStates
	case TypeEtherType:
		return etherTypes
	}
	return nil
}

// typeNames describes each data type in error messages.
var typeNames = map[Type]string{
	TypeIPv4Addr:   "an IPv4 address",
	TypeIPv6Addr:   "an IPv6 address",
	TypeInetProto:  "an IP protocol (tcp, udp, icmp, ... or 0-255)",
	TypePort:       "a port (0-65535 or a service name)",
	TypeIfname:     "an interface name",
	TypeIfindex:    "an interface name",
	TypeMark:       "a 32-bit mark",
	TypePkttype:    "a packet type (host, broadcast, multicast, other)",
	TypeTCPFlags:   "TCP flags (fin, syn, rst, psh, ack, urg, ecn, cwr)",
	TypeICMPType:   "an ICMP type",
	TypeICMPv6Type: "an ICMPv6 type",
	TypeCtState:    "a conntrack state (invalid, established, related, new, untracked)",
	TypeEtherAddr:  "an Ethernet address",
	TypeEtherType:  "an ethertype (ip, ip6, arp, vlan, ... or a 16-bit number)",
	TypeVlanID:     "a VLAN id (0-4095)",
	TypeInteger:    "an integer",
}

// editDistance returns the optimal string alignment distance between a and
// b: insertions, deletions, substitutions and swaps of neighbours cost 1.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// commonPrefix returns the length of the longest common prefix of a and b.
func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// suggest returns "; did you mean X?" for the candidate closest to s, or ""
// when none is close.
func suggest(s string, candidates []string) string {
	if len(s) > 64 {
		return ""
	}
	sorted := slices.Clone(candidates)
	slices.Sort(sorted) // map-fed candidates: ties must not depend on map order
	best, bestD := "", 1<<30
	for _, c := range sorted {
		d := editDistance(s, c)
		if d < bestD || d == bestD && commonPrefix(s, c) > commonPrefix(s, best) {
			best, bestD = c, d
		}
	}
	if best == "" || bestD > max(1, min(len(s), len(best))/3) || bestD >= len(s) {
		return ""
	}
	return "; did you mean " + best + "?"
}
