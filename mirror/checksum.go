package mirror

import "encoding/binary"

// IP protocol numbers the sinks look at.
const (
	protoHopByHop = 0
	protoTCP      = 6
	protoUDP      = 17
	protoRouting  = 43
	protoFragment = 44
	protoDstOpts  = 60
)

// csumAdd adds b, as big-endian 16-bit words, to a one's complement running
// sum. An odd trailing byte is padded with zero.
func csumAdd(sum uint64, b []byte) uint64 {
	for len(b) >= 8 {
		v := binary.BigEndian.Uint64(b)
		sum += v>>32 + v&0xffffffff
		b = b[8:]
	}
	for len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	return sum
}

// csumFold folds a running sum to the 16-bit one's complement checksum.
func csumFold(sum uint64) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// ipv4HeaderChecksum computes and stores the IPv4 header checksum of h
// (exactly the header, options included).
func ipv4HeaderChecksum(h []byte) {
	h[10], h[11] = 0, 0
	binary.BigEndian.PutUint16(h[10:], csumFold(csumAdd(0, h)))
}

// pseudoSum is the one's complement sum of the pseudo header of an L4
// segment of length n and protocol proto, for the IPv4 or IPv6 header ip.
func pseudoSum(ip []byte, proto uint8, n int) uint64 {
	var sum uint64
	if ip[0]>>4 == 4 {
		sum = csumAdd(0, ip[12:20])
	} else {
		sum = csumAdd(0, ip[8:40])
	}
	return sum + uint64(proto) + uint64(n)
}

// l4Checksum computes the TCP or UDP checksum of seg (the transport header
// and its payload, checksum field included and ignored) under the IP header
// ip, and stores it. Other protocols are left alone.
func l4Checksum(ip []byte, proto uint8, seg []byte) {
	at := 0
	switch proto {
	case protoTCP:
		if len(seg) < 20 {
			return
		}
		at = 16
	case protoUDP:
		if len(seg) < 8 {
			return
		}
		at = 6
	default:
		return
	}
	seg[at], seg[at+1] = 0, 0
	c := csumFold(csumAdd(pseudoSum(ip, proto, len(seg)), seg))
	if c == 0 && proto == protoUDP {
		c = 0xffff // 0 means "no checksum" for UDP over IPv4
	}
	binary.BigEndian.PutUint16(seg[at:], c)
}

// ipLayout describes where the parts of an IP packet are.
type ipLayout struct {
	v4     bool
	hdrLen int   // IPv4: IHL*4; IPv6: fixed header and extension headers before L4
	unfrag int   // IPv6: length of the part a fragment header goes after
	end    int   // end of the packet as its header says (bounded by the data)
	proto  uint8 // transport protocol
	whole  bool  // not a fragment, and all of it is there (L4 checksum computable)
}

// parseIP reads the layout of an IPv4 or IPv6 packet. ok is false when pkt is
// not a plausible IP packet.
func parseIP(pkt []byte) (l ipLayout, ok bool) {
	if len(pkt) < 1 {
		return l, false
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return l, false
		}
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < 20 || ihl > len(pkt) {
			return l, false
		}
		tot := int(binary.BigEndian.Uint16(pkt[2:]))
		if tot == 0 {
			tot = len(pkt) // a GSO super-packet beyond 64 KiB
		}
		frag := binary.BigEndian.Uint16(pkt[6:])
		l = ipLayout{v4: true, hdrLen: ihl, unfrag: ihl, end: min(tot, len(pkt)), proto: pkt[9]}
		l.whole = frag&0x3fff == 0 && tot <= len(pkt) && tot >= ihl
		return l, true
	case 6:
		if len(pkt) < 40 {
			return l, false
		}
		tot := 40 + int(binary.BigEndian.Uint16(pkt[4:]))
		l = ipLayout{hdrLen: 40, unfrag: 40, end: min(tot, len(pkt)), whole: tot <= len(pkt)}
		nh := pkt[6]
		for {
			switch nh {
			case protoHopByHop, protoRouting, protoDstOpts:
				if l.hdrLen+8 > l.end {
					return l, false
				}
				this := nh
				nh = pkt[l.hdrLen]
				l.hdrLen += (int(pkt[l.hdrLen+1]) + 1) * 8
				if this != protoDstOpts {
					// Hop-by-hop and routing headers (with destination
					// options before them) stay unfragmentable.
					l.unfrag = l.hdrLen
				}
				continue
			case protoFragment:
				l.whole = false
			}
			break
		}
		if l.hdrLen > l.end {
			return l, false
		}
		l.proto = nh
		return l, true
	}
	return l, false
}

// completeChecksum completes the TCP or UDP checksum of the whole IP packet
// pkt, in place, when its checksum field holds only the pseudo-header sum the
// kernel leaves for the device to finish (CHECKSUM_PARTIAL: packets this host
// sends, and packets forwarded from a veth whose sender offloaded the
// checksum). A checksum that is right is left as it is, and so is one that is
// wrong in any other way: that is what the wire carried, and an analyzer
// should see it. The IPv4 header checksum is never partial. It reports
// whether pkt changed.
func completeChecksum(pkt []byte) bool {
	l, ok := parseIP(pkt)
	if !ok || !l.whole {
		return false
	}
	seg := pkt[l.hdrLen:l.end]
	at := 0
	switch {
	case l.proto == protoTCP && len(seg) >= 20:
		at = 16
	case l.proto == protoUDP && len(seg) >= 8:
		at = 6
	default:
		return false
	}
	if binary.BigEndian.Uint16(seg[at:]) != partialSeed(pkt, l.proto, len(seg)) {
		return false
	}
	before := binary.BigEndian.Uint16(seg[at:])
	l4Checksum(pkt, l.proto, seg)
	return binary.BigEndian.Uint16(seg[at:]) != before
}

// partialSeed is what the kernel stores in the checksum field of a TCP or UDP
// segment of length n whose checksum the device is to compute: the folded
// pseudo-header sum, not inverted.
func partialSeed(ip []byte, proto uint8, n int) uint16 {
	return ^csumFold(pseudoSum(ip, proto, n))
}
