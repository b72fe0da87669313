package mirror

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
	vnetHdrLen       = 10
	vnetFNeedsCsum   = 1
	vnetGSOTCPv4     = 1
	vnetGSOTCPv6     = 4
	vnetGSOECN       = 0x80
	tcpChecksumField = 16
)

// gsoHeader fills vh for the untruncated IP packet ip (whose layout is l),
// written after a link-layer header of linkLen bytes on a port with the
// given MTU, and seeds its TCP checksum with the pseudo-header sum as the
// kernel expects of a packet whose checksum is still to be computed
// (CHECKSUM_PARTIAL). It reports false, changing nothing, when ip is not a
// TCP packet the kernel can segment to the MTU.
func gsoHeader(vh *[vnetHdrLen]byte, ip []byte, l ipLayout, linkLen, mtu int) bool {
	if l.proto != protoTCP || !l.whole || l.end > len(ip) || l.end <= mtu || l.hdrLen+20 > l.end {
		return false
	}
	thl := int(ip[l.hdrLen+12]>>4) * 4
	hdrs := l.hdrLen + thl
	if thl < 20 || hdrs > l.end || mtu-hdrs <= 0 {
		return false
	}
	typ := byte(vnetGSOTCPv6)
	if l.v4 {
		typ = vnetGSOTCPv4
		ipv4HeaderChecksum(ip[:l.hdrLen])
	}
	if ip[l.hdrLen+13]&tcpCWR != 0 {
		typ |= vnetGSOECN // CWR on the first segment only, as the sender's TSO would
	}
	seg := ip[l.hdrLen:l.end]
	binary.BigEndian.PutUint16(seg[tcpChecksumField:], partialSeed(ip, protoTCP, len(seg)))
	vh[0], vh[1] = vnetFNeedsCsum, typ
	binary.LittleEndian.PutUint16(vh[2:], uint16(linkLen+hdrs))     // hdr_len
	binary.LittleEndian.PutUint16(vh[4:], uint16(mtu-hdrs))         // gso_size: the MSS
	binary.LittleEndian.PutUint16(vh[6:], uint16(linkLen+l.hdrLen)) // csum_start
	binary.LittleEndian.PutUint16(vh[8:], uint16(tcpChecksumField)) // csum_offset
	return true
}
