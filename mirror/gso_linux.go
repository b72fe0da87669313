package mirror

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// GSO hand-off. A TCP super-packet (GRO/TSO, up to 64 KiB) is written whole
// through an AF_PACKET socket with PACKET_VNET_HDR, preceded by a
// virtio_net_hdr that tells the kernel its segment size and where its
// checksum goes: one system call instead of one per segment, and the
// segmenting is done where it is cheapest, by the port's hardware (TSO) or by
// the kernel's GSO just before the driver. A port with TSO carries it whole
// to its peer, as the kernel's own dup and tc mirred do; with TSO off
// (ethtool -K DEV tso off) the frames leave MTU-sized with their checksums
// computed.

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
	binary.BigEndian.PutUint16(seg[tcpChecksumField:], ^csumFold(pseudoSum(ip, protoTCP, len(seg))))
	vh[0], vh[1] = vnetFNeedsCsum, typ
	binary.LittleEndian.PutUint16(vh[2:], uint16(linkLen+hdrs))     // hdr_len
	binary.LittleEndian.PutUint16(vh[4:], uint16(mtu-hdrs))         // gso_size: the MSS
	binary.LittleEndian.PutUint16(vh[6:], uint16(linkLen+l.hdrLen)) // csum_start
	binary.LittleEndian.PutUint16(vh[8:], uint16(tcpChecksumField)) // csum_offset
	return true
}

// gsoSocket is an AF_PACKET socket bound to a port whose writes carry a
// virtio_net_hdr in front of the frame.
type gsoSocket struct {
	*packetSocket
	iov [3]unix.Iovec
}

func openGSOSocket(nsfd, ifindex int, mark uint32) (*gsoSocket, error) {
	ps, err := openPacketSocketQdisc(nsfd, ifindex, mark, false)
	if err != nil {
		return nil, err
	}
	if err := unix.SetsockoptInt(ps.fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		ps.close()
		return nil, fmt.Errorf("set vnet header on packet socket: %w", err)
	}
	return &gsoSocket{packetSocket: ps}, nil
}

// write sends one frame made of link (the link-layer header, may be nil)
// and ip, described by vh, with one sendmsg and no copy.
func (g *gsoSocket) write(vh *[vnetHdrLen]byte, link, ip []byte) error {
	parts := [3][]byte{vh[:], link, ip}
	n := 0
	for _, p := range parts {
		if len(p) == 0 {
			continue
		}
		g.iov[n].Base = unsafe.SliceData(p)
		g.iov[n].SetLen(len(p))
		n++
	}
	msg := unix.Msghdr{Iov: &g.iov[0]}
	msg.SetIovlen(n)
	for {
		_, _, errno := unix.Syscall(unix.SYS_SENDMSG, uintptr(g.fd), uintptr(unsafe.Pointer(&msg)), unix.MSG_DONTWAIT)
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		default:
			return errno
		}
	}
}

// gsoRefused reports whether a GSO write failed because the kernel or the
// port does not take GSO frames from a packet socket: the sink then closes
// its GSO socket and segments in userspace from then on.
func gsoRefused(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOPROTOOPT)
}
