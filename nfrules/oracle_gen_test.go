package nfrules

import (
	"fmt"
	"strings"
)

// Cases for the oracle, generated from the field table: every field, every
// form it admits, every hook it exists at.

// samples returns values of f in nft syntax, in ascending order, at least
// three where the field has that many.
func samples(f *Field) []string {
	switch f.Type {
	case typeIPv4:
		return []string{"198.18.0.1", "198.18.0.7", "198.18.1.9"}
	case typeIPv6:
		return []string{"2001:db8::1", "2001:db8::7", "2001:db8::1:9"}
	case typeEther:
		return []string{"02:00:00:00:00:01", "02:00:00:00:00:07", "02:00:00:00:01:09"}
	case typeInetProto:
		return []string{"icmp", "tcp", "udp"}
	case typePort:
		return []string{"22", "80", "443"}
	case typeIfname:
		return []string{`"eth0"`, `"eth1"`, `"span1"`}
	case typeIfindex:
		return []string{`"lo"`, `"eth0"`, `"eth1"`}
	case typeString:
		return []string{`"ftp"`, `"sip"`, `"tftp"`}
	case typeMark:
		return []string{"0x1", "0x7", "0x100"}
	case typePkttype:
		return []string{"host", "broadcast", "multicast"}
	case typeTCPFlags:
		return []string{"fin", "syn", "ack"}
	case typeICMPType:
		return []string{"echo-reply", "destination-unreachable", "echo-request"}
	case typeICMPCode:
		return []string{"net-unreachable", "port-unreachable", "7"}
	case typeICMPv6Type:
		return []string{"destination-unreachable", "echo-request", "nd-neighbor-solicit"}
	case typeICMPv6Code:
		return []string{"no-route", "addr-unreachable", "port-unreachable"}
	case typeCtState:
		return []string{"invalid", "established", "new"}
	case typeCtStatus:
		return []string{"expected", "snat", "dnat"}
	case typeCtDir:
		return []string{"original", "reply"}
	case typeEtherType:
		return []string{"ip", "arp", "ip6"}
	case typeARPOp:
		return []string{"request", "reply", "rrequest"}
	case typeNFProto:
		return []string{"ipv4", "ipv6"}
	case typeIfaceType:
		return []string{"ether", "ppp", "loopback"}
	case typeDSCP:
		return []string{"cs1", "af11", "ef"}
	case typeECN:
		return []string{"not-ect", "ect1", "ce"}
	}
	switch f.Bits {
	case 1:
		return []string{"0", "1"}
	case 3:
		return []string{"1", "3", "5"}
	case 4:
		return []string{"4", "5", "6"}
	case 8:
		return []string{"5", "64", "200"}
	case 12:
		return []string{"10", "20", "4000"}
	case 16:
		return []string{"100", "1000", "60000"}
	case 20:
		return []string{"1234", "5678", "1000000"}
	case 32:
		return []string{"5", "100000", "3000000000"}
	}
	return []string{"100", "1000000", "10000000000"}
}

// masks returns "& MASK == VALUE" style binary operations for f.
func masks(f *Field) []string {
	switch f.Type.kind {
	case kindIPv4:
		return []string{"& 255.255.0.0 == 198.18.0.0", "& 255.255.0.0 != 198.18.0.0", "& 0.0.255.255 == 0.0.0.1"}
	case kindIPv6:
		return []string{"& ffff:ffff:: == 2001:db8::", "& ::ffff == ::1"}
	}
	if f.Type == typeMark {
		return []string{"& 0xff00 == 0x100", "& 0xffff0000 == 0x10000", "& 0xffffff00 != 0x6e666d00", "| 0x10 == 0x11", "and 0xff > 0x5", "& 0xff00 < 0x100", "& (0x1|0x2) == 0x1"}
	}
	switch f.Bits {
	case 8:
		return []string{"& 0xf0 == 0x40", "& 0x0f != 0x1", "& 0xf0 > 0x10"}
	case 16:
		return []string{"& 0xff00 == 0x100", "& 0xff00 != 0x0", "& 0xfff0 < 0x100"}
	case 32:
		return []string{"& 0xffff0000 == 0x10000", "& 0xff00 == 0x100", "| 0x1 == 0x11", "& 0xff != 0x1"}
	case 64:
		return []string{"& 0xffff == 0x10", "& 0xff00 > 0x100"}
	}
	return nil
}

// rangeText returns the range from sample i to sample j of f: numbers for
// values whose names contain dashes, which nft cannot read in a range.
func rangeText(f *Field, i, j int) string {
	v := samples(f)
	j = min(j, len(v)-1)
	if n := numeric(f); n != nil && f.Type.kind != kindInteger && f.Type != typeMark {
		return fmt.Sprintf("%d-%d", n[i], n[j])
	}
	return v[i] + "-" + v[j]
}

// numeric returns the samples of f as numbers, for ranges built by
// arithmetic, or nil for values that are not numbers.
func numeric(f *Field) []uint64 {
	switch f.Type.kind {
	case kindIPv4, kindIPv6, kindEther, kindString, kindIfindex:
		return nil
	}
	var out []uint64
	for _, s := range samples(f) {
		a, msg := typeAtom(f, &rawVal{Kind: rvAtom, Text: s})
		if msg != "" || len(a.val) > 8 {
			return nil
		}
		out = append(out, a.num)
	}
	return out
}

// fieldCases returns the cases of one field at one hook.
func fieldCases(f *Field, h Hook) []oracleCase {
	var out []oracleCase
	add := func(form, text string) {
		out = append(out, oracleCase{field: f.Name, form: form, hook: h, text: text})
	}
	name := f.Name
	v := samples(f)
	v1, v2 := v[0], v[1]
	v3 := v2
	if len(v) > 2 {
		v3 = v[2]
	}
	fs := f.Forms
	if fs&FormEq != 0 {
		add("value", name+" "+v1)
		add("value", name+" "+v3)
		add("==", name+" == "+v2)
	}
	if fs&FormNeq != 0 {
		add("!=", name+" != "+v2)
	}
	if fs&FormRel != 0 {
		for _, op := range []string{"<", ">", "<=", ">="} {
			add("relational", name+" "+op+" "+v2)
		}
	}
	if fs&FormRange != 0 {
		add("range", name+" "+rangeText(f, 0, 2))
		add("range", name+" != "+rangeText(f, 0, 1))
	}
	if fs&FormPrefix != 0 {
		for _, p := range prefixes(f) {
			add("prefix", name+" "+p)
		}
		add("prefix", name+" != "+prefixes(f)[1])
	}
	if fs&FormMask != 0 {
		for _, m := range masks(f) {
			if fs&FormRel == 0 && (strings.Contains(m, " > ") || strings.Contains(m, " < ")) {
				continue
			}
			add("mask", name+" "+m)
		}
	}
	if fs&FormSet != 0 {
		add("set", name+" { "+v1+", "+v2+" }")
		add("set", name+" { "+v3+", "+v1+", "+v2+" }")
		add("set", name+" { "+v2+" }")
		if fs&FormRange != 0 {
			add("set", name+" { "+v1+", "+rangeText(f, 1, 2)+" }")
			if n := numeric(f); n != nil && n[1] > n[0]+1 {
				// adjacent and overlapping intervals, merged
				add("set", fmt.Sprintf("%s { %d-%d, %d-%d, %d }", name, n[0], n[1]-1, n[1], n[2], n[2]))
				add("set", fmt.Sprintf("%s { %d, %d-%d, %d-%d }", name, n[1], n[0], n[1], n[0], n[0]+1))
			}
		}
		if fs&FormPrefix != 0 {
			p := prefixes(f)
			add("set", name+" { "+v3+", "+p[0]+", "+p[2]+" }")
			for _, m := range mergeSets(f) {
				add("set", name+" "+m)
			}
		}
	}
	if fs&FormNegSet != 0 {
		add("negated set", name+" != { "+v1+", "+v2+" }")
		if fs&FormRange != 0 {
			add("negated set", name+" != { "+v1+", "+rangeText(f, 1, 2)+" }")
		}
	}
	if fs&FormFlags != 0 {
		add("flags", name+" "+v1+","+v3)
		add("flags", name+" "+v2)
		add("flags", name+" == "+v1+"|"+v2)
		add("flags", name+" != "+v1+"|"+v3)
		add("flags", name+" & ("+v1+"|"+v2+") == "+v1)
		add("flags", name+" & ("+v1+"|"+v2+") != "+v2)
		add("flags", name+" & ("+v1+"|"+v3+") == 0")
		add("flags", name+" & "+v2+" == "+v2)
		add("flags", name+" "+v1+" / "+v1+","+v2)
		add("flags", name+" { "+v2+", "+v1+"|"+v3+" }")
		add("flags", name+" != { "+v1+", "+v2+"|"+v3+" }")
		if f.Len() == 1 { // a bitmap set: ties list in reverse order
			add("flags", name+" { "+v2+", "+v2+"|"+v3+" }")
		}
	}
	if fs&FormWildcard != 0 {
		add("wildcard", name+` "eth*"`)
		add("wildcard", name+` != "eth*"`)
		add("wildcard", name+` { "eth*", "span1" }`)
		add("wildcard", name+` { "eth*", "e*", "lo" }`)
	}
	if fs&FormConcat != 0 && f.Name != "meta mark" {
		add("concatenation", name+" . meta mark { "+v1+" . 0x1, "+v2+" . 0x2 }")
		add("concatenation", name+" . meta mark != { "+v3+" . 0x1 }")
		// Intervals: with a big-endian partner (see concatListable).
		if fs&FormRange != 0 && !(f.Order == HostEndian && f.Type == typeInteger) {
			add("concatenation", name+" . meta protocol { "+v1+" . ip, "+rangeText(f, 1, 2)+" . ip6 }")
		}
		if fs&FormPrefix != 0 {
			add("concatenation", name+" . meta protocol { "+prefixes(f)[0]+" . ip }")
			add("concatenation", name+" . meta mark { "+prefixes(f)[0]+" . 0x1 }")
		}
	}
	return out
}

// prefixes returns prefixes of an address field: byte-aligned, not aligned,
// and within the first.
func prefixes(f *Field) []string {
	if f.Type.kind == kindIPv6 {
		return []string{"2001:db8::/32", "2001:db8::/33", "2001:db8:1::/48", "2001:db8:0:2::/64"}
	}
	return []string{"198.18.0.0/16", "198.18.0.0/15", "198.18.4.0/23", "198.19.0.0/24"}
}

// mergeSets returns sets of an address field whose elements nft merges.
func mergeSets(f *Field) []string {
	if f.Type.kind == kindIPv6 {
		return []string{"{ 2001:db8::/64, 2001:db8:0:1::/64 }", "{ 2001:db8::/48, 2001:db8::5 }"}
	}
	return []string{"{ 198.18.0.0/24, 198.18.1.0/24 }", "{ 198.18.0.0/24, 198.18.0.5 }", "{ 198.18.0.0-198.18.0.255, 198.18.2.0-198.18.2.17 }", "{ 0.0.0.0/0 }"}
}

// generateCases returns every field's cases at every hook that has it, and
// every field after the matches that pin its protocols.
func generateCases() []oracleCase {
	var out []oracleCase
	for _, f := range FieldList {
		for _, h := range f.Hooks.Hooks() {
			out = append(out, fieldCases(f, h)...)
			out = append(out, contextCases(f, h)...)
		}
	}
	return out
}

// contextCases returns f's first value after matches that establish its
// protocols: written as nft writes its own dependencies (which it then
// hides), or as other matches on the same headers.
func contextCases(f *Field, h Hook) []oracleCase {
	v := samples(f)[0]
	m := f.Name + " " + v
	var pre []string
	netdev := h.Family() == FamilyNetdev
	l3 := map[string]string{"ip": "ip", "icmp": "ip", "ip6": "ip6", "icmpv6": "ip6"}[f.Proto]
	switch {
	case l3 != "" && netdev:
		pre = append(pre, "meta protocol "+l3, "ether type "+l3)
	case l3 != "":
		pre = append(pre, "meta nfproto ipv"+map[string]string{"ip": "4", "ip6": "6"}[l3])
	case f.Proto == "arp":
		pre = append(pre, "meta protocol arp", "ether type arp")
	case f.Proto == "ether":
		pre = append(pre, "meta iiftype ether")
	case f.Proto == "vlan":
		pre = append(pre, "ether type vlan", "meta iiftype ether ether type 8021q")
	}
	switch f.Proto {
	case "tcp", "udp", "udplite", "sctp":
		pre = append(pre, "meta l4proto "+f.Proto, "ip protocol "+f.Proto, "ip6 nexthdr "+f.Proto)
	case "icmp":
		pre = append(pre, "meta l4proto icmp", "ip protocol icmp", "ip saddr 198.18.0.1")
	case "icmpv6":
		pre = append(pre, "meta l4proto ipv6-icmp", "ip6 nexthdr ipv6-icmp", "ip6 saddr 2001:db8::1")
	case "th":
		pre = append(pre, "meta l4proto udp", "meta l4proto tcp")
	case "ip":
		pre = append(pre, "ip saddr 198.18.0.1")
	case "ip6":
		pre = append(pre, "ip6 daddr 2001:db8::1")
	}
	if f.Need != nil {
		pre = append(pre, fmt.Sprintf("%s %d", f.Need.Field, f.Need.Values[0]))
	}
	var out []oracleCase
	for _, p := range pre {
		out = append(out, oracleCase{field: f.Name, form: "after its protocol", hook: h, text: p + " " + m})
		out = append(out, oracleCase{field: f.Name, form: "after its protocol", hook: h, text: m + " " + p})
	}
	return out
}

// handCases are rules of several matches, where nft's implicit
// dependencies and protocol context meet, and forms the generator does not
// make.
func handCases() []oracleCase {
	pre, in, fwd, out, post, ing, eg := HookPrerouting, HookInput, HookForward, HookOutput, HookPostrouting, HookIngress, HookEgress
	c := func(h Hook, text string) oracleCase { return oracleCase{form: "combination", hook: h, text: text} }
	return []oracleCase{
		c(pre, "ip saddr 198.18.0.1 tcp dport 22"),
		c(pre, "meta l4proto tcp tcp dport 80"),
		c(pre, "meta l4proto tcp th dport 80"),
		c(pre, "meta l4proto udp th dport { 53, 123 }"),
		c(pre, "ip protocol tcp tcp dport 22"),
		c(pre, "ip6 nexthdr udp udp dport 53"),
		c(pre, "meta nfproto ipv4 ip saddr 198.18.0.1"),
		c(pre, "meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type echo-request"),
		c(in, "ether type ip ip protocol icmp"),
		c(in, "ether type ip6 ip6 saddr 2001:db8::1"),
		c(fwd, "ip6 saddr 2001:db8::/32 icmpv6 type echo-request"),
		c(in, "icmp type echo-request icmp id 5"),
		c(in, "icmp type echo-request icmp sequence 7"),
		c(in, "icmp type destination-unreachable icmp mtu 1400"),
		c(in, "icmpv6 type packet-too-big icmpv6 mtu 1280"),
		c(pre, "ip saddr . tcp dport { 198.18.1.2 . 80 }"),
		c(pre, "ip saddr . tcp dport { 198.18.1.2 . 80, 198.18.1.3 . 443 }"),
		c(pre, "ip saddr . tcp dport { 198.18.1.0/24 . 80-90 }"),
		c(pre, "ip saddr . ip daddr != { 198.18.1.2 . 198.18.1.3 }"),
		c(pre, "iifname . ip saddr { \"eth0\" . 198.18.0.1 }"),
		c(pre, "ip6 saddr . udp dport { 2001:db8::1 . 53 }"),
		c(pre, "tcp dport { 1-5, 6-10, 20 }"),
		c(pre, "tcp dport { 1, 2, 3, 4-8 }"),
		c(pre, "tcp dport { 80-89, 85 }"),
		c(pre, "tcp dport { 0-10, 65535 }"),
		c(pre, "tcp dport { 80, 443, 1024-65535 }"),
		c(pre, "tcp dport 1024-65535"),
		c(pre, "tcp flags { syn, syn|ack }"),
		c(pre, "tcp flags & (syn|ack) == syn"),
		c(pre, "tcp flags & (fin|syn|rst|ack) == syn"),
		c(pre, "tcp flags syn tcp dport 22"),
		c(pre, "ct state established,related"),
		c(pre, "ct state new tcp dport 22"),
		c(pre, "ct state & (established|related) == 0x0"),
		c(fwd, "iifname { \"eth*\", \"span1\" } oifname != { \"lo\", \"span0\" }"),
		c(fwd, "iifname != { \"lo\", \"docker0\" }"),
		c(fwd, "oifname { \"eth0\", \"wg0\" }"),
		c(in, "iif { \"eth0\", \"lo\" }"),
		c(pre, "meta mark { 0x1, 0x2 }"),
		c(pre, "ct mark { 0x1, 0x2 }"),
		c(pre, "meta mark { 0x1-0x5, 0x100 }"),
		c(pre, "ct mark { 0x2-0x3 }"),
		c(pre, "ip dscp { ef, cs1 } ip ttl < 5"),
		c(pre, "limit rate 10 mbytes/second"),
		c(pre, "limit rate over 1024 kbytes/minute burst 5 mbytes"),
		c(pre, "limit rate 2048 bytes/second"),
		c(pre, "limit rate 10/second"),
		c(pre, "limit rate over 100/minute burst 20 packets"),
		c(pre, "numgen random mod 100 < 5"),
		c(pre, "numgen random mod 2 0"),
		c(pre, "numgen random mod 4 == 3"),
		c(ing, "ether type ip ip saddr 198.18.0.1"),
		c(ing, "ether type vlan vlan id 10"),
		c(ing, "vlan id { 10, 20 } vlan pcp 3"),
		c(ing, "ether type arp arp operation request"),
		c(ing, "meta protocol ip6 ip6 daddr 2001:db8::1"),
		c(ing, "ip saddr 198.18.0.1 tcp dport 22"),
		c(eg, "udp dport { 53, 100-200 }"),
		c(eg, "arp saddr ip . arp daddr ip { 198.18.0.1 . 198.18.0.2 }"),
		c(out, "oif \"lo\" udp dport 9"),
		c(post, "oifname \"eth*\" ip daddr != 198.18.0.0/15"),
		c(pre, "ct original ip saddr 198.18.0.1 ct reply ip daddr 198.18.0.2"),
		c(pre, "ct status snat,dnat ct direction reply"),
		c(pre, "meta length > 1000 meta pkttype host"),
		c(pre, "udp length 8 ip length 100-200"),
		c(pre, "ip frag-off & 0x1fff != 0"),
		c(pre, "ip6 flowlabel { 1, 2 }"),
		c(pre, "th dport { 53, 123 }"),
		c(pre, "icmp code { port-unreachable, net-unreachable }"),
		c(pre, "icmpv6 code { no-route, port-unreachable }"),
		c(pre, "meta iiftype { ether, loopback }"),
		c(pre, "meta nfproto { ipv4, ipv6 }"),
	}
}
