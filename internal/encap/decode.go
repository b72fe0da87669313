package encap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/nfmirror/nfmirror/internal/pkt"
)

// Decoded is one outer packet read back by Decode: every field the formats
// carry.
type Decoded struct {
	Format   Format
	Src, Dst netip.Addr
	TTL      uint8
	// FlowLabel is the outer IPv6 flow label.
	FlowLabel uint32
	// DF is the IPv4 don't-fragment bit.
	DF bool
	// SrcPort, DstPort and VNI are VXLAN's; UDPChecksum is 0 when the
	// sender left it out (IPv4).
	SrcPort, DstPort uint16
	VNI              uint32
	UDPChecksum      uint16
	// Seq is the GRE sequence number, when HasSeq.
	Seq    uint32
	HasSeq bool
	// The ERSPAN header: version (1 for type II, 2 for type III), VLAN,
	// COS, En (type II encapsulation type; type III: BSO), T, session id,
	// type II port index, type III timestamp, granularity, direction
	// (Egress) and hardware id.
	Version    uint8
	VLAN       uint16
	COS        uint8
	En         uint8
	Truncated  bool
	Session    uint16
	Index      uint32
	Timestamp  uint32
	Gra        uint8
	Egress     bool
	HardwareID uint8
	// Inner is the Ethernet frame carried, aliasing the packet.
	Inner []byte
}

// Errors of Decode.
var (
	// ErrFragment reports an outer fragment: reassemble first.
	ErrFragment = errors.New("outer packet is a fragment")
	// ErrChecksum reports a wrong IPv4 header or UDP checksum.
	ErrChecksum = errors.New("bad checksum")
	// ErrNotTunnel reports a packet of none of the formats.
	ErrNotTunnel = errors.New("not a vxlan, gre or erspan packet")
)

// Decode reads one whole outer IP packet (IPv4 or IPv6, from its IP header
// on) of any of the formats and checks its IPv4 header and UDP checksums.
func Decode(p []byte) (Decoded, error) {
	var d Decoded
	var proto byte
	var l4 []byte
	switch {
	case len(p) >= 20 && p[0]>>4 == 4:
		ihl := int(p[0]&0x0f) * 4
		tot := int(binary.BigEndian.Uint16(p[2:]))
		if ihl < 20 || tot < ihl || tot > len(p) {
			return d, fmt.Errorf("ipv4 header: %w", ErrNotTunnel)
		}
		var c pkt.Stream
		c.Add(p[:ihl])
		if c.Checksum() != 0 {
			return d, fmt.Errorf("ipv4 header: %w", ErrChecksum)
		}
		fo := binary.BigEndian.Uint16(p[6:])
		if fo&0x3fff != 0 {
			return d, ErrFragment
		}
		d.DF = fo&0x4000 != 0
		d.TTL, proto = p[8], p[9]
		d.Src, d.Dst = netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20]))
		l4 = p[ihl:tot]
	case len(p) >= 40 && p[0]>>4 == 6:
		n := 40 + int(binary.BigEndian.Uint16(p[4:]))
		if n > len(p) {
			return d, fmt.Errorf("ipv6 header: %w", ErrNotTunnel)
		}
		d.FlowLabel = binary.BigEndian.Uint32(p) & 0xfffff
		proto, d.TTL = p[6], p[7]
		if proto == pkt.ProtoFragment {
			return d, ErrFragment
		}
		d.Src, d.Dst = netip.AddrFrom16([16]byte(p[8:24])), netip.AddrFrom16([16]byte(p[24:40]))
		l4 = p[40:n]
	default:
		return d, fmt.Errorf("not an ip packet: %w", ErrNotTunnel)
	}
	switch proto {
	case pkt.ProtoUDP:
		return decodeVXLAN(d, l4)
	case pkt.ProtoGRE:
		return decodeGRE(d, l4)
	}
	return d, fmt.Errorf("ip protocol %d: %w", proto, ErrNotTunnel)
}

func decodeVXLAN(d Decoded, u []byte) (Decoded, error) {
	if len(u) < 16 || int(binary.BigEndian.Uint16(u[4:])) != len(u) || u[8]&vxlanFlagI == 0 {
		return d, fmt.Errorf("vxlan header: %w", ErrNotTunnel)
	}
	d.Format = VXLAN
	d.SrcPort, d.DstPort = binary.BigEndian.Uint16(u), binary.BigEndian.Uint16(u[2:])
	d.UDPChecksum = binary.BigEndian.Uint16(u[6:])
	if d.UDPChecksum != 0 || d.Dst.Is6() {
		var c pkt.Stream
		if d.Dst.Is6() {
			s, t := d.Src.As16(), d.Dst.As16()
			c.Add(s[:])
			c.Add(t[:])
		} else {
			s, t := d.Src.As4(), d.Dst.As4()
			c.Add(s[:])
			c.Add(t[:])
		}
		c.AddValue(uint64(len(u)) + pkt.ProtoUDP)
		c.Add(u)
		if c.Checksum() != 0 {
			return d, fmt.Errorf("udp: %w", ErrChecksum)
		}
	}
	d.VNI = binary.BigEndian.Uint32(u[12:]) >> 8
	d.Inner = u[16:]
	return d, nil
}

func decodeGRE(d Decoded, g []byte) (Decoded, error) {
	if len(g) < 4 {
		return d, fmt.Errorf("gre header: %w", ErrNotTunnel)
	}
	flags, proto := binary.BigEndian.Uint16(g), binary.BigEndian.Uint16(g[2:])
	off := 4
	if flags&0x8000 != 0 { // checksum present
		off += 4
	}
	if flags&0x2000 != 0 { // key present
		off += 4
	}
	if flags&greSeqFlag != 0 {
		if len(g) < off+4 {
			return d, fmt.Errorf("gre sequence: %w", ErrNotTunnel)
		}
		d.Seq, d.HasSeq = binary.BigEndian.Uint32(g[off:]), true
		off += 4
	}
	if len(g) < off {
		return d, fmt.Errorf("gre header: %w", ErrNotTunnel)
	}
	g = g[off:]
	switch proto {
	case EtherTypeTEB:
		d.Format, d.Inner = GRE, g
		return d, nil
	case EtherTypeERSPAN2, EtherTypeERSPAN3:
	default:
		return d, fmt.Errorf("gre protocol %#04x: %w", proto, ErrNotTunnel)
	}
	if len(g) < 8 {
		return d, fmt.Errorf("erspan header: %w", ErrNotTunnel)
	}
	w0, w1 := binary.BigEndian.Uint16(g), binary.BigEndian.Uint16(g[2:])
	d.Version, d.VLAN = uint8(w0>>12), w0&0x0fff
	d.COS, d.En, d.Truncated, d.Session = uint8(w1>>13), uint8(w1>>11)&3, w1&(1<<10) != 0, w1&0x3ff
	if proto == EtherTypeERSPAN2 {
		d.Format = ERSPAN2
		d.Index = binary.BigEndian.Uint32(g[4:]) & 0xfffff
		d.Inner = g[8:]
		return d, nil
	}
	if len(g) < 12 {
		return d, fmt.Errorf("erspan III header: %w", ErrNotTunnel)
	}
	d.Format = ERSPAN3
	d.Timestamp = binary.BigEndian.Uint32(g[4:])
	w := binary.BigEndian.Uint16(g[10:])
	d.HardwareID, d.Egress, d.Gra = uint8(w>>4)&0x3f, w&(1<<3) != 0, uint8(w>>1)&3
	off = 12
	if w&1 != 0 { // platform specific subheader
		off += 8
	}
	if len(g) < off {
		return d, fmt.Errorf("erspan III subheader: %w", ErrNotTunnel)
	}
	d.Inner = g[off:]
	return d, nil
}
