package pkt

import "encoding/binary"

// GSO hand-off. A TCP super-packet (GRO/TSO, up to 64 KiB) bound for a port
// that segments TCP in hardware (a NIC with TSO) is written whole, preceded
// by a virtio_net_hdr that tells the kernel its segment size and where its
// checksum goes: one system call instead of one per segment, and the NIC
// does the segmenting. Ports that would pass a super-packet on whole (a veth,
// a bridge, any virtual device) or leave it to the kernel's software GSO get
// segments cut here instead (segment.go); see Writer.

// virtio_net_hdr (linux/virtio_net.h) as a packet socket takes it: host byte
// order on little-endian machines, and virtio is little-endian.
const (
	VnetHdrLen       = 10
	vnetFNeedsCsum   = 1
	vnetGSOTCPv4     = 1
	vnetGSOTCPv6     = 4
	vnetGSOECN       = 0x80
	TCPChecksumField = 16
)

// GSOHeader fills vh for the untruncated IP packet ip (whose layout is l),
// written after a link-layer header of linkLen bytes on a port with the
// given MTU, and seeds its TCP checksum with the pseudo-header sum as the
// kernel expects of a packet whose checksum is still to be computed
// (CHECKSUM_PARTIAL). It reports false, changing nothing, when ip is not a
// TCP packet the kernel can segment to the MTU.
func GSOHeader(vh *[VnetHdrLen]byte, ip []byte, l Layout, linkLen, mtu int) bool {
	if l.Proto != ProtoTCP || !l.Whole || l.End > len(ip) || l.End <= mtu || l.HdrLen+20 > l.End {
		return false
	}
	thl := int(ip[l.HdrLen+12]>>4) * 4
	hdrs := l.HdrLen + thl
	if thl < 20 || hdrs > l.End || mtu-hdrs <= 0 {
		return false
	}
	typ := byte(vnetGSOTCPv6)
	if l.V4 {
		typ = vnetGSOTCPv4
		IPv4HeaderChecksum(ip[:l.HdrLen])
	}
	if ip[l.HdrLen+13]&TCPCWR != 0 {
		typ |= vnetGSOECN // CWR on the first segment only, as the sender's TSO would
	}
	seg := ip[l.HdrLen:l.End]
	binary.BigEndian.PutUint16(seg[TCPChecksumField:], PartialSeed(ip, ProtoTCP, len(seg)))
	vh[0], vh[1] = vnetFNeedsCsum, typ
	binary.LittleEndian.PutUint16(vh[2:], uint16(linkLen+hdrs))     // hdr_len
	binary.LittleEndian.PutUint16(vh[4:], uint16(mtu-hdrs))         // gso_size: the MSS
	binary.LittleEndian.PutUint16(vh[6:], uint16(linkLen+l.HdrLen)) // csum_start
	binary.LittleEndian.PutUint16(vh[8:], uint16(TCPChecksumField)) // csum_offset
	return true
}
