package encap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/nfmirror/nfmirror/internal/pkt"
)

// Format is a tunnel format a collector receives.
type Format uint8

// The formats.
const (
	// VXLAN is RFC 7348: UDP to port 4789 (or Config.Port), an 8-byte
	// header with the I flag and a 24-bit VNI, then the Ethernet frame.
	VXLAN Format = iota + 1
	// GRE is Ethernet over GRE: a 4-byte GRE header with protocol 0x6558
	// (transparent Ethernet bridging), what a Linux gretap device sends.
	GRE
	// ERSPAN2 is ERSPAN type II: GRE with a sequence number, protocol
	// 0x88BE, an 8-byte ERSPAN header (version 1: VLAN, COS, T bit, session
	// id), then the Ethernet frame.
	ERSPAN2
	// ERSPAN3 is ERSPAN type III: GRE with a sequence number, protocol
	// 0x22EB, a 12-byte ERSPAN header (version 2: VLAN, COS, T bit, session
	// id, a timestamp, the direction bit and a hardware id).
	ERSPAN3
)

var formatNames = [...]string{"", "vxlan", "gre", "erspan2", "erspan3"}

// String returns "vxlan", "gre", "erspan2" or "erspan3".
func (f Format) String() string {
	if int(f) < len(formatNames) && f != 0 {
		return formatNames[f]
	}
	return fmt.Sprintf("format(%d)", uint8(f))
}

// Protocol numbers and ports of the formats.
const (
	// VXLANPort is the IANA port of VXLAN (RFC 7348).
	VXLANPort = 4789
	// EtherTypeTEB is the GRE protocol of Ethernet frames (transparent
	// Ethernet bridging).
	EtherTypeTEB = 0x6558
	// EtherTypeERSPAN2 is the GRE protocol of ERSPAN type II.
	EtherTypeERSPAN2 = 0x88BE
	// EtherTypeERSPAN3 is the GRE protocol of ERSPAN type III.
	EtherTypeERSPAN3 = 0x22EB
	// SrcPortMin and SrcPortMax bound the VXLAN UDP source ports: the
	// dynamic range RFC 7348 recommends (RFC 6335).
	SrcPortMin = 49152
	SrcPortMax = 65535
	// MaxHead is the longest Packet.Head: an outer IPv6 header with a
	// fragment header, the longest encapsulation (GRE with a sequence
	// number and an ERSPAN III header) and an 18-byte MAC header.
	MaxHead = 40 + 8 + 8 + 12 + 18
	// MaxLead is the longest lead (a MAC header with one 802.1Q tag).
	MaxLead = 18
	// DefaultTTL is the outer TTL (hop limit) when Config.TTL is 0.
	DefaultTTL = 64
)

// ERSPAN III timestamp granularity: the timestamp counts 100 µs units of
// the copy's time, modulo 2^32, as Linux's erspan devices send it (Gra 00).
const erspanGra100us = 0

const (
	greSeqFlag = 0x1000
	vxlanFlagI = 0x08
)

// Config describes one collector.
type Config struct {
	Format Format
	// Src and Dst are the outer addresses; both IPv4 or both IPv6.
	Src, Dst netip.Addr
	// VNI is the VXLAN network identifier (24 bits).
	VNI uint32
	// Port is the VXLAN UDP destination port; 0 means VXLANPort.
	Port uint16
	// Session is the ERSPAN session id (10 bits).
	Session uint16
	// HardwareID is the ERSPAN III hardware id (6 bits): which sensor
	// sent the copy.
	HardwareID uint8
	// TTL is the outer TTL or hop limit; 0 means DefaultTTL.
	TTL uint8
}

// Meta is what the encapsulation says about one copy besides its bytes.
type Meta struct {
	// Truncated says the copy was already cut (a snaplen) before it came
	// here: ERSPAN sets its T bit.
	Truncated bool
	// Egress says the copy was taken on its way out (output, postrouting,
	// netdev egress): the ERSPAN III direction bit. Otherwise ingress.
	Egress bool
	// Time is when the copy was taken: the ERSPAN III timestamp.
	Time time.Time
}

// Packet is one outer IP packet: Head, then Body. Head is the outer IP
// header, the encapsulation headers and the lead, in the Encapsulator's
// own memory (at most MaxHead bytes, valid until its next Encap); Body is a
// part of the frame given to Encap, not copied.
type Packet struct {
	Head []byte
	Body []byte
}

// Len is the packet's length.
func (p Packet) Len() int { return len(p.Head) + len(p.Body) }

// Result says what the size policy did to one frame.
type Result struct {
	// Fragments is how many outer IP fragments carry the frame; 0 when
	// one whole packet does (VXLAN, GRE).
	Fragments int
	// Truncated says the frame was cut to fit the MTU and its T bit set
	// (ERSPAN).
	Truncated bool
}

// Errors Encap and New return.
var (
	// ErrConfig reports a Config that cannot be used.
	ErrConfig = errors.New("bad encapsulation config")
	// ErrMTU reports an MTU too small for the encapsulation's headers.
	ErrMTU = errors.New("mtu too small for the encapsulation")
	// ErrTooBig reports a frame that no IP packet can carry (more than
	// 64 KiB with its encapsulation).
	ErrTooBig = errors.New("frame too large to encapsulate")
	// ErrShortFrame reports a frame shorter than an Ethernet header.
	ErrShortFrame = errors.New("frame shorter than an Ethernet header")
)

// Encapsulator builds the outer packets of every copy bound for one
// collector. It keeps the sequence numbers (ERSPAN's GRE sequence, IP
// identifications) and reuses its memory: Encap does not allocate once
// warm. It is not safe for concurrent use.
type Encapsulator struct {
	cfg    Config
	v6     bool
	ipLen  int // outer IP header, without a fragment header
	encLen int // encapsulation headers after the outer IP header
	seq    uint32
	ipID   uint16
	fragID uint32
	heads  []byte
	pkts   []Packet
}

// New checks c and returns its encapsulator.
func New(c Config) (*Encapsulator, error) {
	switch {
	case c.Format < VXLAN || c.Format > ERSPAN3:
		return nil, fmt.Errorf("%w: unknown format %d", ErrConfig, c.Format)
	case !c.Src.IsValid() || !c.Dst.IsValid():
		return nil, fmt.Errorf("%w: outer addresses %v -> %v", ErrConfig, c.Src, c.Dst)
	case c.Src.Unmap().Is4() != c.Dst.Unmap().Is4():
		return nil, fmt.Errorf("%w: outer addresses of two families: %v -> %v", ErrConfig, c.Src, c.Dst)
	case c.VNI >= 1<<24:
		return nil, fmt.Errorf("%w: vni %d does not fit 24 bits", ErrConfig, c.VNI)
	case c.Session >= 1<<10:
		return nil, fmt.Errorf("%w: erspan session %d does not fit 10 bits", ErrConfig, c.Session)
	case c.HardwareID >= 1<<6:
		return nil, fmt.Errorf("%w: erspan hardware id %d does not fit 6 bits", ErrConfig, c.HardwareID)
	}
	c.Src, c.Dst = c.Src.Unmap(), c.Dst.Unmap()
	if c.Port == 0 {
		c.Port = VXLANPort
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	e := &Encapsulator{
		cfg:    c,
		v6:     c.Dst.Is6(),
		ipLen:  20,
		ipID:   uint16(rand.Uint32()),
		fragID: rand.Uint32(),
		heads:  make([]byte, 0, 8*MaxHead),
	}
	if e.v6 {
		e.ipLen = 40
	}
	switch c.Format {
	case VXLAN:
		e.encLen = 8 + 8
	case GRE:
		e.encLen = 4
	case ERSPAN2:
		e.encLen = 8 + 8
	case ERSPAN3:
		e.encLen = 8 + 12
	}
	return e, nil
}

// SetSource changes the outer source address (the route to the collector
// changed), keeping the sequence numbers. It must be of the collector's
// family.
func (e *Encapsulator) SetSource(a netip.Addr) error {
	a = a.Unmap()
	if !a.IsValid() || a.Is6() != e.v6 {
		return fmt.Errorf("%w: source %v for collector %v", ErrConfig, a, e.cfg.Dst)
	}
	e.cfg.Src = a
	return nil
}

// Config returns the encapsulator's configuration, defaults filled in.
func (e *Encapsulator) Config() Config { return e.cfg }

// Overhead is how many bytes the encapsulation puts in front of an inner
// frame in an unfragmented outer packet: the outer IP header and the
// encapsulation headers.
func (e *Encapsulator) Overhead() int { return e.ipLen + e.encLen }

// Encap builds the outer packets that carry the Ethernet frame lead+frame
// to the collector, each at most mtu bytes (the path MTU, outer IP header
// included). lead is the frame's MAC header when the caller built it apart
// from the rest (an IP copy), else nil. VXLAN and GRE packets larger than
// mtu are fragmented; ERSPAN frames are cut to fit and marked truncated.
// The packets returned, and their Heads, are valid until the next call;
// their Bodies alias frame.
func (e *Encapsulator) Encap(lead, frame []byte, m Meta, mtu int) ([]Packet, Result, error) {
	var res Result
	if len(lead) > MaxLead || len(lead)+len(frame) < 14 {
		return nil, res, ErrShortFrame
	}
	fragHdr := 0
	if e.v6 {
		fragHdr = 8
	}
	// The first fragment must hold the headers whole, in 8-byte units.
	if (mtu-e.ipLen-fragHdr)&^7 < e.encLen+len(lead)+8 || mtu < 68 || (e.v6 && mtu < 1280) {
		return nil, res, fmt.Errorf("%w: %d bytes", ErrMTU, mtu)
	}
	var sum [MaxLead]byte // the inner MAC header, for the VLAN and the hash
	mac := sum[:copy(sum[:], lead)]
	mac = append(mac, frame[:min(len(frame), MaxLead-len(mac))]...)

	erspan := e.cfg.Format == ERSPAN2 || e.cfg.Format == ERSPAN3
	inner := len(lead) + len(frame)
	if erspan && e.Overhead()+inner > mtu {
		frame = frame[:mtu-e.Overhead()-len(lead)]
		inner = len(lead) + len(frame)
		res.Truncated = true
	}
	payload := e.encLen + inner // after the outer IP header
	if payload > 0xffff-e.ipLen-fragHdr {
		return nil, res, fmt.Errorf("%w: %d bytes", ErrTooBig, inner)
	}

	fragmented := e.ipLen+payload > mtu
	per := (mtu - e.ipLen - fragHdr) &^ 7 // payload bytes per fragment
	firstLen := e.ipLen + e.encLen + len(lead)
	need := firstLen
	if fragmented {
		firstLen += fragHdr
		need = firstLen + ((payload+per-1)/per-1)*(e.ipLen+fragHdr)
	}
	if cap(e.heads) < need {
		e.heads = make([]byte, 0, need+4*MaxHead)
	}
	e.heads = e.heads[:need]
	clear(e.heads)
	e.pkts = e.pkts[:0]
	h := flowHash(lead, frame)

	// The first packet's head: outer IP header, encapsulation, lead.
	first := e.heads[:firstLen]
	enc := first[firstLen-len(lead)-e.encLen : firstLen-len(lead)]
	copy(first[firstLen-len(lead):], lead)
	switch e.cfg.Format {
	case VXLAN:
		binary.BigEndian.PutUint16(enc[0:], uint16(SrcPortMin+h%(SrcPortMax-SrcPortMin+1)))
		binary.BigEndian.PutUint16(enc[2:], e.cfg.Port)
		binary.BigEndian.PutUint16(enc[4:], uint16(payload))
		enc[8] = vxlanFlagI
		binary.BigEndian.PutUint32(enc[12:], e.cfg.VNI<<8)
		if e.v6 {
			e.udpChecksum(enc, lead, frame)
		}
	case GRE:
		binary.BigEndian.PutUint16(enc[2:], EtherTypeTEB)
	case ERSPAN2, ERSPAN3:
		binary.BigEndian.PutUint16(enc[0:], greSeqFlag)
		proto := uint16(EtherTypeERSPAN2)
		if e.cfg.Format == ERSPAN3 {
			proto = EtherTypeERSPAN3
		}
		binary.BigEndian.PutUint16(enc[2:], proto)
		binary.BigEndian.PutUint32(enc[4:], e.seq)
		e.seq++
		e.erspanHeader(enc[8:], mac, m.Truncated || res.Truncated, m)
	}
	id := e.ipID
	e.ipID++
	if !fragmented {
		e.ipHeader(first[:e.ipLen], payload, h, id, 0, false)
		e.pkts = append(e.pkts, Packet{Head: first, Body: frame})
		return e.pkts, res, nil
	}

	// Fragments: each carries per bytes of the payload (encapsulation,
	// lead, frame), the last one the rest.
	e.fragID++
	rest := e.heads[firstLen:]
	for off := 0; off < payload; off += per {
		n := min(per, payload-off)
		more := off+n < payload
		var head, body []byte
		if off == 0 {
			head = first
			inHead := e.encLen + len(lead)
			body, frame = frame[:n-inHead], frame[n-inHead:]
		} else {
			head, rest = rest[:e.ipLen+fragHdr], rest[e.ipLen+fragHdr:]
			body, frame = frame[:n], frame[n:]
		}
		if e.v6 {
			e.ipHeader(head[:40], 8+n, h, 0, 0, false)
			head[6] = pkt.ProtoFragment
			fh := head[40:48]
			fh[0] = e.proto()
			binary.BigEndian.PutUint16(fh[2:], uint16(off)|b2u16(more))
			binary.BigEndian.PutUint32(fh[4:], e.fragID)
		} else {
			e.ipHeader(head[:20], n, h, id, uint16(off/8), more)
		}
		e.pkts = append(e.pkts, Packet{Head: head, Body: body})
	}
	res.Fragments = len(e.pkts)
	return e.pkts, res, nil
}

func b2u16(b bool) uint16 {
	if b {
		return 1
	}
	return 0
}

// proto is the outer IP protocol.
func (e *Encapsulator) proto() byte {
	if e.cfg.Format == VXLAN {
		return pkt.ProtoUDP
	}
	return pkt.ProtoGRE
}

// ipHeader writes the outer IP header (20 or 40 bytes) for a payload of n
// bytes. IPv4: identification id, fragment offset off (8-byte units) and
// the MF bit, DF clear, checksum computed. IPv6: the flow label is the
// inner flow's hash.
func (e *Encapsulator) ipHeader(b []byte, n int, hash uint32, id, off uint16, more bool) {
	if e.v6 {
		binary.BigEndian.PutUint32(b[0:], 6<<28|hash&0xfffff)
		binary.BigEndian.PutUint16(b[4:], uint16(n))
		b[6], b[7] = e.proto(), e.cfg.TTL
		s, d := e.cfg.Src.As16(), e.cfg.Dst.As16()
		copy(b[8:], s[:])
		copy(b[24:], d[:])
		return
	}
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(20+n))
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], b2u16(more)<<13|off)
	b[8], b[9] = e.cfg.TTL, e.proto()
	s, d := e.cfg.Src.As4(), e.cfg.Dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	pkt.IPv4HeaderChecksum(b)
}

// erspanHeader writes the ERSPAN II (8 bytes) or III (12 bytes) header for
// the inner frame whose MAC header starts mac: its 802.1Q tag, if any, gives
// the VLAN and COS (and the tag stays in the frame: encapsulation type
// "tag preserved"); trunc sets T.
func (e *Encapsulator) erspanHeader(b, mac []byte, trunc bool, m Meta) {
	var vlan uint16
	var cos, en uint8
	if len(mac) >= 16 && binary.BigEndian.Uint16(mac[12:]) == 0x8100 {
		tci := binary.BigEndian.Uint16(mac[14:])
		vlan, cos = tci&0x0fff, uint8(tci>>13)
		if e.cfg.Format == ERSPAN2 {
			en = 3 // 802.1Q tag preserved in the frame
		}
	}
	ver := uint16(1)
	if e.cfg.Format == ERSPAN3 {
		ver = 2 // for type III the En bits are BSO: 00, a good frame
	}
	binary.BigEndian.PutUint16(b[0:], ver<<12|vlan)
	w := uint16(cos)<<13 | uint16(en)<<11 | e.cfg.Session
	if trunc {
		w |= 1 << 10
	}
	binary.BigEndian.PutUint16(b[2:], w)
	if e.cfg.Format == ERSPAN2 {
		return // index 0: no port index
	}
	var ts uint32
	if !m.Time.IsZero() {
		ts = uint32(m.Time.UnixNano() / 100_000)
	}
	binary.BigEndian.PutUint32(b[4:], ts)
	// SGT 0, P 0 (Ethernet frame), FT 0, hardware id, D, Gra, O 0.
	var d uint16
	if m.Egress {
		d = 1
	}
	binary.BigEndian.PutUint16(b[10:], uint16(e.cfg.HardwareID)<<4|d<<3|erspanGra100us<<1)
}

// udpChecksum computes the UDP checksum of the VXLAN datagram over IPv6:
// the UDP and VXLAN headers in enc, then lead and frame.
func (e *Encapsulator) udpChecksum(enc, lead, frame []byte) {
	n := len(enc) + len(lead) + len(frame)
	s, d := e.cfg.Src.As16(), e.cfg.Dst.As16()
	var c pkt.Stream
	c.Add(s[:])
	c.Add(d[:])
	c.AddValue(uint64(n) + pkt.ProtoUDP)
	enc[6], enc[7] = 0, 0
	c.Add(enc)
	c.Add(lead)
	c.Add(frame)
	v := c.Checksum()
	if v == 0 {
		v = 0xffff
	}
	binary.BigEndian.PutUint16(enc[6:], v)
}
