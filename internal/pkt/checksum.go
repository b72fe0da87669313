package pkt

import (
	"encoding/binary"
	"math/bits"
)

// IP protocol numbers nfmirror looks at.
const (
	ProtoHopByHop = 0
	ProtoTCP      = 6
	ProtoUDP      = 17
	ProtoRouting  = 43
	ProtoFragment = 44
	ProtoGRE      = 47
	ProtoDstOpts  = 60
)

// Sum adds b, as big-endian 16-bit words, to a one's complement running
// sum. An odd trailing byte is padded with zero.
//
// It adds little-endian 32-bit words in four independent accumulators (the
// CPU overlaps them) and swaps the bytes of the folded result: in one's
// complement arithmetic a sum of byte-swapped words is the byte-swapped sum
// (RFC 1071, 2.B), and a 32-bit word is two 16-bit words modulo 0xffff.
func Sum(sum uint64, b []byte) uint64 {
	var a0, a1, a2, a3 uint64
	for len(b) >= 32 {
		v0 := binary.LittleEndian.Uint64(b)
		v1 := binary.LittleEndian.Uint64(b[8:])
		v2 := binary.LittleEndian.Uint64(b[16:])
		v3 := binary.LittleEndian.Uint64(b[24:])
		a0 += v0&0xffffffff + v0>>32
		a1 += v1&0xffffffff + v1>>32
		a2 += v2&0xffffffff + v2>>32
		a3 += v3&0xffffffff + v3>>32
		b = b[32:]
	}
	for len(b) >= 8 {
		v := binary.LittleEndian.Uint64(b)
		a0 += v&0xffffffff + v>>32
		b = b[8:]
	}
	for len(b) >= 2 {
		a1 += uint64(binary.LittleEndian.Uint16(b))
		b = b[2:]
	}
	// Each accumulator gains less than 2^33 per 32 bytes: no overflow below
	// 2^30 bytes, far beyond any packet.
	le := foldTo16(a0 + a1 + a2 + a3)
	sum += uint64(bits.ReverseBytes16(le))
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	return sum
}

// foldTo16 folds a one's complement sum into 16 bits (not complemented).
func foldTo16(s uint64) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// Fold folds a running sum to the 16-bit one's complement checksum.
func Fold(sum uint64) uint16 { return ^foldTo16(sum) }

// IPv4HeaderChecksum computes and stores the IPv4 header checksum of h
// (exactly the header, options included).
func IPv4HeaderChecksum(h []byte) {
	h[10], h[11] = 0, 0
	binary.BigEndian.PutUint16(h[10:], Fold(Sum(0, h)))
}

// PseudoSum is the one's complement sum of the pseudo header of an L4
// segment of length n and protocol proto, for the IPv4 or IPv6 header ip.
func PseudoSum(ip []byte, proto uint8, n int) uint64 {
	var sum uint64
	if ip[0]>>4 == 4 {
		sum = Sum(0, ip[12:20])
	} else {
		sum = Sum(0, ip[8:40])
	}
	return sum + uint64(proto) + uint64(n)
}

// L4Checksum computes the TCP or UDP checksum of seg (the transport header
// and its payload, checksum field included and ignored) under the IP header
// ip, and stores it. Other protocols are left alone.
func L4Checksum(ip []byte, proto uint8, seg []byte) {
	at := 0
	switch proto {
	case ProtoTCP:
		if len(seg) < 20 {
			return
		}
		at = 16
	case ProtoUDP:
		if len(seg) < 8 {
			return
		}
		at = 6
	default:
		return
	}
	seg[at], seg[at+1] = 0, 0
	c := Fold(Sum(PseudoSum(ip, proto, len(seg)), seg))
	if c == 0 && proto == ProtoUDP {
		c = 0xffff // 0 means "no checksum" for UDP over IPv4
	}
	binary.BigEndian.PutUint16(seg[at:], c)
}

// Layout describes where the parts of an IP packet are.
type Layout struct {
	V4     bool
	HdrLen int   // IPv4: IHL*4; IPv6: fixed header and extension headers before L4
	Unfrag int   // IPv6: length of the part a fragment header goes after
	End    int   // end of the packet as its header says (bounded by the data)
	Proto  uint8 // transport protocol
	Whole  bool  // not a fragment, and all of it is there (L4 checksum computable)
}

// Parse reads the layout of an IPv4 or IPv6 packet. ok is false when pkt is
// not a plausible IP packet.
func Parse(pkt []byte) (l Layout, ok bool) {
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
		l = Layout{V4: true, HdrLen: ihl, Unfrag: ihl, End: min(tot, len(pkt)), Proto: pkt[9]}
		l.Whole = frag&0x3fff == 0 && tot <= len(pkt) && tot >= ihl
		return l, true
	case 6:
		if len(pkt) < 40 {
			return l, false
		}
		tot := 40 + int(binary.BigEndian.Uint16(pkt[4:]))
		l = Layout{HdrLen: 40, Unfrag: 40, End: min(tot, len(pkt)), Whole: tot <= len(pkt)}
		nh := pkt[6]
		for {
			switch nh {
			case ProtoHopByHop, ProtoRouting, ProtoDstOpts:
				if l.HdrLen+8 > l.End {
					return l, false
				}
				this := nh
				nh = pkt[l.HdrLen]
				l.HdrLen += (int(pkt[l.HdrLen+1]) + 1) * 8
				if this != ProtoDstOpts {
					// Hop-by-hop and routing headers (with destination
					// options before them) stay unfragmentable.
					l.Unfrag = l.HdrLen
				}
				continue
			case ProtoFragment:
				l.Whole = false
			}
			break
		}
		if l.HdrLen > l.End {
			return l, false
		}
		l.Proto = nh
		return l, true
	}
	return l, false
}

// CompleteChecksum completes the TCP or UDP checksum of the whole IP packet
// pkt, in place, when its checksum field holds only the pseudo-header sum the
// kernel leaves for the device to finish (CHECKSUM_PARTIAL: packets this host
// sends, and packets forwarded from a veth whose sender offloaded the
// checksum). A checksum that is right is left as it is, and so is one that is
// wrong in any other way: that is what the wire carried, and an analyzer
// should see it. The IPv4 header checksum is never partial. It reports
// whether pkt changed.
func CompleteChecksum(pkt []byte) bool {
	l, ok := Parse(pkt)
	return ok && CompleteChecksumLayout(pkt, l)
}

// CompleteChecksumLayout is CompleteChecksum for a packet already parsed:
// l must be what Parse returned for pkt.
func CompleteChecksumLayout(pkt []byte, l Layout) bool {
	if !l.Whole {
		return false
	}
	seg := pkt[l.HdrLen:l.End]
	at := 0
	switch {
	case l.Proto == ProtoTCP && len(seg) >= 20:
		at = 16
	case l.Proto == ProtoUDP && len(seg) >= 8:
		at = 6
	default:
		return false
	}
	if binary.BigEndian.Uint16(seg[at:]) != PartialSeed(pkt, l.Proto, len(seg)) {
		return false
	}
	before := binary.BigEndian.Uint16(seg[at:])
	L4Checksum(pkt, l.Proto, seg)
	return binary.BigEndian.Uint16(seg[at:]) != before
}

// PartialSeed is what the kernel stores in the checksum field of a TCP or UDP
// segment of length n whose checksum the device is to compute: the folded
// pseudo-header sum, not inverted.
func PartialSeed(ip []byte, proto uint8, n int) uint16 {
	return ^Fold(PseudoSum(ip, proto, n))
}

// Stream is a one's complement sum over byte strings of any length, added
// one after the other as a single stream: a string of odd length shifts the
// bytes of the next one. Its zero value is an empty sum.
type Stream struct {
	sum uint64
	odd bool // an odd number of bytes so far: the next byte is a low byte
}

// Add adds b to the stream.
func (c *Stream) Add(b []byte) {
	if len(b) == 0 {
		return
	}
	if c.odd {
		c.sum += uint64(b[0])
		b = b[1:]
		c.odd = false
	}
	c.sum = Sum(c.sum, b)
	c.odd = len(b)%2 == 1
}

// AddValue adds a number (a length, a protocol) as the pseudo-header does.
func (c *Stream) AddValue(v uint64) { c.sum += v }

// Checksum is the folded checksum of everything added.
func (c *Stream) Checksum() uint16 { return Fold(c.sum) }
