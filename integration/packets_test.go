package integration

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"sort"
	"strconv"
	"testing"
)

// l3 is one IP packet out of a captured Ethernet frame.
type l3 struct {
	b      []byte
	v6     bool
	src    netip.Addr
	dst    netip.Addr
	proto  uint8
	l4     []byte // transport header and payload (whole IPv4/IPv6 payload)
	icmpTy int    // -1 unless ICMP/ICMPv6
}

// parseL3 returns the IP packet in an Ethernet frame, or false for anything
// else (ARP, VLAN-tagged, truncated).
func parseL3(frame []byte) (l3, bool) {
	if len(frame) < 14 {
		return l3{}, false
	}
	et := binary.BigEndian.Uint16(frame[12:14])
	p := frame[14:]
	var pk l3
	pk.icmpTy = -1
	switch {
	case et == 0x0800 && len(p) >= 20 && p[0]>>4 == 4:
		ihl := int(p[0]&0x0f) * 4
		tot := int(binary.BigEndian.Uint16(p[2:4]))
		if tot < ihl || tot > len(p) || ihl < 20 {
			return l3{}, false
		}
		p = p[:tot]
		pk.b, pk.src, pk.dst, pk.proto, pk.l4 = p, netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20])), p[9], p[ihl:]
		if pk.proto == 1 && len(pk.l4) > 0 {
			pk.icmpTy = int(pk.l4[0])
		}
	case et == 0x86dd && len(p) >= 40 && p[0]>>4 == 6:
		n := 40 + int(binary.BigEndian.Uint16(p[4:6]))
		if n > len(p) {
			return l3{}, false
		}
		p = p[:n]
		pk.b, pk.v6, pk.src, pk.dst, pk.proto, pk.l4 = p, true, netip.AddrFrom16([16]byte(p[8:24])), netip.AddrFrom16([16]byte(p[24:40])), p[6], p[40:]
		if pk.proto == 58 && len(pk.l4) > 0 {
			pk.icmpTy = int(pk.l4[0])
		}
	default:
		return l3{}, false
	}
	return pk, true
}

// key is the packet as the mirror must reproduce it: every byte, except the
// IPv4 fields the raw-socket path may rewrite (id, total length, header
// checksum) and the TCP/UDP checksum, which the reference capture on a veth
// can show before checksum offload completed it (validChecksums checks the
// mirror's own checksums separately).
func (p l3) key() string {
	b := append([]byte(nil), p.b...)
	off := 40
	if !p.v6 {
		b[2], b[3], b[4], b[5], b[10], b[11] = 0, 0, 0, 0, 0, 0
		off = int(b[0]&0x0f) * 4
	}
	switch p.proto {
	case 6:
		if len(b) >= off+18 {
			b[off+16], b[off+17] = 0, 0
		}
	case 17:
		if len(b) >= off+8 {
			b[off+6], b[off+7] = 0, 0
		}
	}
	return hex.EncodeToString(b)
}

func (p l3) String() string {
	s := p.src.String() + " > " + p.dst.String()
	switch p.proto {
	case 6:
		s += " tcp"
	case 17:
		s += " udp"
	case 1, 58:
		s += " icmp type " + strconv.Itoa(p.icmpTy)
	default:
		s += " proto " + strconv.Itoa(int(p.proto))
	}
	return s + " len " + strconv.Itoa(len(p.b))
}

// ipPackets returns the IP packets among frames that keep says to keep.
func ipPackets(frames [][]byte, keep func(l3) bool) []l3 {
	var out []l3
	for _, f := range frames {
		if p, ok := parseL3(f); ok && (keep == nil || keep(p)) {
			out = append(out, p)
		}
	}
	return out
}

// sameMultiset fails the test unless got and want hold the same packets the
// same number of times: none missing, no extras, no duplicates.
func sameMultiset(t *testing.T, what string, got, want []l3) {
	t.Helper()
	count := map[string]int{}
	names := map[string]string{}
	for _, p := range want {
		count[p.key()]++
		names[p.key()] = p.String()
	}
	for _, p := range got {
		count[p.key()]--
		names[p.key()] = p.String()
	}
	var missing, extra []string
	for k, n := range count {
		for ; n > 0; n-- {
			missing = append(missing, names[k])
		}
		for ; n < 0; n++ {
			extra = append(extra, names[k])
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("%s: mirror has %d packets, reference %d; missing %d: %v; extra or duplicated %d: %v",
			what, len(got), len(want), len(missing), head(missing), len(extra), head(extra))
	}
}

func head(s []string) []string {
	if len(s) > 10 {
		return append(s[:10:10], "...")
	}
	return s
}

// validChecksums fails the test for any TCP or UDP packet whose checksum
// does not verify: an analyzer would flag them.
func validChecksums(t *testing.T, pkts []l3) {
	t.Helper()
	bad := 0
	for _, p := range pkts {
		if (p.proto == 6 || p.proto == 17) && !l4ChecksumOK(p) {
			bad++
			if bad <= 3 {
				t.Errorf("mirrored packet with a bad %d checksum: %v", p.proto, p)
			}
		}
	}
}

func l4ChecksumOK(p l3) bool {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(p.src.AsSlice())
	add(p.dst.AsSlice())
	sum += uint32(p.proto) + uint32(len(p.l4))
	add(p.l4)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum) == 0xffff
}
