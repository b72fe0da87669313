package encap

import (
	"bytes"
	"encoding/binary"

	"github.com/nfmirror/nfmirror/internal/pkt"
)

// FlowHash returns the symmetric flow hash of an Ethernet frame: the same
// for both directions of a flow. For IP it covers the protocol, the two
// addresses and, for TCP, UDP, SCTP, DCCP and UDP-Lite packets that are not
// fragments, the two ports (fragments of a datagram hash by addresses
// alone, so they stay together); for anything else the two MAC addresses
// and the ethertype. VXLAN takes its UDP source port from it, and an IPv6
// outer header its flow label, so that collectors and load balancers that
// spread by the outer flow keep each inner flow, both ways, on one path.
func FlowHash(frame []byte) uint32 { return flowHash(nil, frame) }

// flowHash is FlowHash of the frame lead+frame, where lead is nil or a
// whole MAC header.
func flowHash(lead, frame []byte) uint32 {
	mac, l3 := lead, frame
	if mac == nil {
		if len(frame) < 14 {
			return fnv(fnvOffset, frame)
		}
		mac, l3 = frame[:14], frame[14:]
	}
	etype := binary.BigEndian.Uint16(mac[12:14])
	if len(mac) >= 18 && (etype == pkt.EthVLAN || etype == 0x88a8) {
		etype = binary.BigEndian.Uint16(mac[16:18])
	}
	// Up to two VLAN tags in the frame itself.
	for range 2 {
		if (etype == pkt.EthVLAN || etype == 0x88a8) && len(l3) >= 4 {
			etype = binary.BigEndian.Uint16(l3[2:4])
			l3 = l3[4:]
		}
	}
	var a, b []byte
	var proto byte
	var ports []byte
	switch {
	case etype == pkt.EthIPv4 && len(l3) >= 20 && l3[0]>>4 == 4:
		ihl := int(l3[0]&0x0f) * 4
		a, b, proto = l3[12:16], l3[16:20], l3[9]
		frag := binary.BigEndian.Uint16(l3[6:8])&0x3fff != 0
		if !frag && ihl >= 20 && len(l3) >= ihl+4 && hasPorts(proto) {
			ports = l3[ihl : ihl+4]
		}
	case etype == pkt.EthIPv6 && len(l3) >= 40 && l3[0]>>4 == 6:
		a, b = l3[8:24], l3[24:40]
		proto, ports = ipv6Transport(l3)
	default:
		// Not IP: the MAC pair and the ethertype.
		a, b = mac[0:6], mac[6:12]
		proto = byte(etype) ^ byte(etype>>8)
	}
	var pa, pb []byte
	if ports != nil {
		pa, pb = ports[0:2], ports[2:4]
	}
	// Order the endpoints so that both directions hash alike.
	if c := bytes.Compare(a, b); c > 0 || c == 0 && bytes.Compare(pa, pb) > 0 {
		a, b, pa, pb = b, a, pb, pa
	}
	h := (fnvOffset ^ uint32(proto)) * fnvPrime
	h = fnv(h, a)
	h = fnv(h, pa)
	h = fnv(h, b)
	h = fnv(h, pb)
	return h ^ h>>16
}

// ipv6Transport walks the extension headers of the IPv6 packet p and returns
// its transport protocol and the 4 bytes of its ports, or nil ports for a
// fragment or a protocol without ports.
func ipv6Transport(p []byte) (byte, []byte) {
	nh, off := p[6], 40
	for range 8 {
		switch nh {
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if len(p) < off+8 {
				return nh, nil
			}
			nh, off = p[off], off+(int(p[off+1])+1)*8
		case 51: // authentication header
			if len(p) < off+8 {
				return nh, nil
			}
			nh, off = p[off], off+(int(p[off+1])+2)*4
		case pkt.ProtoFragment:
			if len(p) < off+8 {
				return nh, nil
			}
			return p[off], nil // a fragment: addresses alone
		default:
			if hasPorts(nh) && len(p) >= off+4 {
				return nh, p[off : off+4]
			}
			return nh, nil
		}
	}
	return nh, nil
}

// hasPorts reports whether an IP protocol starts with two 16-bit ports.
func hasPorts(proto byte) bool {
	switch proto {
	case 6, 17, 33, 132, 136: // TCP, UDP, DCCP, SCTP, UDP-Lite
		return true
	}
	return false
}

const (
	fnvOffset = 2166136261
	fnvPrime  = 16777619
)

// fnv adds b to the 32-bit FNV-1a hash h.
func fnv(h uint32, b []byte) uint32 {
	for _, c := range b {
		h ^= uint32(c)
		h *= fnvPrime
	}
	return h
}
