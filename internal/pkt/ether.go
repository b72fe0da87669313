package pkt

import (
	"encoding/binary"
	"net"
)

// Ethertypes nfmirror looks at.
const (
	EthIPv4 = 0x0800
	EthIPv6 = 0x86dd
	EthVLAN = 0x8100
)

// MACHeaderLen returns the length of the MAC header of frame f (14, or 18
// with one 802.1Q tag) and the ethertype after it; 0, 0 for a frame too
// short to have one.
func MACHeaderLen(f []byte) (int, uint16) {
	if len(f) < 14 {
		return 0, 0
	}
	etype := binary.BigEndian.Uint16(f[12:])
	if etype == EthVLAN && len(f) >= 18 {
		return 18, binary.BigEndian.Uint16(f[16:])
	}
	return 14, etype
}

// EthernetHeader writes into h (14 bytes) the Ethernet header of an IP
// copy leaving by a device with address own: to the multicast MAC of a
// multicast destination, to ff:ff:ff:ff:ff:ff for the limited broadcast, to
// own otherwise (as routing over a NOARP port would); from own.
func EthernetHeader(h, ip []byte, own net.HardwareAddr) {
	etype := uint16(EthIPv4)
	copy(h[0:6], own)
	if ip[0]>>4 == 6 {
		etype = EthIPv6
		if ip[24] == 0xff {
			copy(h[0:6], []byte{0x33, 0x33, ip[36], ip[37], ip[38], ip[39]})
		}
	} else {
		switch d := ip[16:20]; {
		case d[0]&0xf0 == 0xe0:
			copy(h[0:6], []byte{0x01, 0x00, 0x5e, d[1] & 0x7f, d[2], d[3]})
		case d[0] == 255 && d[1] == 255 && d[2] == 255 && d[3] == 255:
			copy(h[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		}
	}
	copy(h[6:12], own)
	binary.BigEndian.PutUint16(h[12:], etype)
}

// Plausible reports whether d starts with a whole IPv4 or IPv6 header.
func Plausible(d []byte) bool {
	return len(d) >= 20 && (d[0]>>4 == 4 || (d[0]>>4 == 6 && len(d) >= 40))
}

// OrigLen returns the length an IP packet claims in its header when the copy
// b is shorter (truncated by a snaplen), else 0.
func OrigLen(b []byte) int {
	if len(b) < 1 {
		return 0
	}
	n := 0
	switch b[0] >> 4 {
	case 4:
		if len(b) < 4 {
			return 0
		}
		n = int(binary.BigEndian.Uint16(b[2:4]))
	case 6:
		if len(b) < 6 {
			return 0
		}
		n = 40 + int(binary.BigEndian.Uint16(b[4:6]))
	}
	if n > len(b) {
		return n
	}
	return 0
}
