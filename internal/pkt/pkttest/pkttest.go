// Package pkttest builds and checks packets for the tests of the packages
// that handle copies: IP packets with partial checksums as the kernel hands
// them over, and an independent checksum to verify what they write.
package pkttest

import (
	"encoding/binary"

	"github.com/nfmirror/nfmirror/internal/pkt"
)

// NaiveSum is an independent one's complement sum (byte pairs, no tricks) used
// to verify checksums: a correct packet sums to 0xffff.
func NaiveSum(parts ...[]byte) uint16 {
	var all []byte
	for _, p := range parts {
		all = append(all, p...)
	}
	if len(all)%2 == 1 {
		all = append(all, 0)
	}
	var s uint32
	for i := 0; i < len(all); i += 2 {
		s += uint32(all[i])<<8 | uint32(all[i+1])
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// Pseudo builds the pseudo header of an L4 segment of length n.
func Pseudo(ip []byte, proto byte, n int) []byte {
	if ip[0]>>4 == 4 {
		p := append([]byte{}, ip[12:20]...)
		return append(p, 0, proto, byte(n>>8), byte(n))
	}
	p := append([]byte{}, ip[8:40]...)
	return append(p, byte(n>>24), byte(n>>16), byte(n>>8), byte(n), 0, 0, 0, proto)
}

// Packet builds an IPv4 or IPv6 packet with a TCP (32-byte header) or
// UDP header and n payload bytes, with a partial L4 checksum: the
// pseudo-header sum the kernel leaves for the device to complete.
func Packet(v6 bool, proto byte, n int) []byte {
	var ip []byte
	var l4 []byte
	if proto == pkt.ProtoTCP {
		l4 = make([]byte, 32)
		binary.BigEndian.PutUint16(l4[0:], 40000)
		binary.BigEndian.PutUint16(l4[2:], 5201)
		binary.BigEndian.PutUint32(l4[4:], 0xfffff000) // wraps while segmenting
		binary.BigEndian.PutUint32(l4[8:], 0x01020304)
		l4[12] = 8 << 4
		l4[13] = 0x80 | 0x08 | 0x01 | 0x10 // ACK
		binary.BigEndian.PutUint16(l4[14:], 512)
		l4[16], l4[17] = 0xbe, 0xef
		copy(l4[20:], []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2})
	} else {
		l4 = make([]byte, 8)
		binary.BigEndian.PutUint16(l4[0:], 5353)
		binary.BigEndian.PutUint16(l4[2:], 9999)
		binary.BigEndian.PutUint16(l4[4:], uint16(8+n))
		l4[6], l4[7] = 0xbe, 0xef
	}
	payload := make([]byte, n)
	for i := range payload {
		payload[i] = byte(i*7 + i>>8)
	}
	if v6 {
		ip = make([]byte, 40)
		ip[0], ip[1], ip[2], ip[3] = 0x6b, 0x8a, 0xbc, 0xde // TC 0xb8, flow label 0xabcde
		binary.BigEndian.PutUint16(ip[4:], uint16(len(l4)+n))
		ip[6], ip[7] = proto, 63
		copy(ip[8:], []byte{0x20, 0x01, 0x0d, 0xb8, 15: 1})
		copy(ip[24:], []byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 15: 2})
	} else {
		ip = make([]byte, 20)
		ip[0], ip[1] = 0x45, 0xb8
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)+n))
		binary.BigEndian.PutUint16(ip[4:], 0xfffe) // wraps while segmenting
		ip[6] = 0x40                               // DF
		ip[8], ip[9] = 63, proto
		copy(ip[12:], []byte{198, 18, 0, 1, 198, 19, 0, 2})
		pkt.IPv4HeaderChecksum(ip)
	}
	p := append(append(ip, l4...), payload...)
	at := len(ip) + 6
	if proto == pkt.ProtoTCP {
		at = len(ip) + 16
	}
	binary.BigEndian.PutUint16(p[at:], pkt.PartialSeed(p, proto, len(l4)+n))
	return p
}
