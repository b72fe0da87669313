package encap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/nfmirror/nfmirror/internal/pkt"
)

var (
	src4, dst4 = netip.MustParseAddr("198.18.1.1"), netip.MustParseAddr("198.18.2.9")
	src6, dst6 = netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("2001:db8:2::9")
	macA       = []byte{2, 0, 0, 0, 0, 0xa}
	macB       = []byte{2, 0, 0, 0, 0, 0xb}
)

// tcpIP builds a whole IPv4 or IPv6 TCP packet from a:ap to b:bp with n
// bytes of payload and valid checksums.
func tcpIP(a, b string, ap, bp uint16, n int) []byte {
	sa, sb := netip.MustParseAddr(a), netip.MustParseAddr(b)
	tcp := make([]byte, 20+n)
	binary.BigEndian.PutUint16(tcp[0:], ap)
	binary.BigEndian.PutUint16(tcp[2:], bp)
	binary.BigEndian.PutUint32(tcp[4:], 1000)
	tcp[12], tcp[13] = 5<<4, 0x18
	binary.BigEndian.PutUint16(tcp[14:], 65535)
	for i := range n {
		tcp[20+i] = byte('a' + i%26)
	}
	var ip []byte
	var c pkt.Stream
	if sa.Is4() {
		ip = make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(tcp)))
		ip[6], ip[8], ip[9] = 0x40, 64, 6
		s, d := sa.As4(), sb.As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		pkt.IPv4HeaderChecksum(ip)
		c.Add(s[:])
		c.Add(d[:])
	} else {
		ip = make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(len(tcp)))
		ip[6], ip[7] = 6, 64
		s, d := sa.As16(), sb.As16()
		copy(ip[8:], s[:])
		copy(ip[24:], d[:])
		c.Add(s[:])
		c.Add(d[:])
	}
	c.AddValue(uint64(len(tcp)) + 6)
	c.Add(tcp)
	binary.BigEndian.PutUint16(tcp[16:], c.Checksum())
	return append(ip, tcp...)
}

// ethHeader is a 14-byte MAC header from a to b for ethertype et, or 18
// bytes with an 802.1Q tag when tci != 0.
func ethHeader(dst, src []byte, et uint16, tci uint16) []byte {
	h := append(append([]byte(nil), dst...), src...)
	if tci != 0 {
		h = binary.BigEndian.AppendUint16(h, 0x8100)
		h = binary.BigEndian.AppendUint16(h, tci)
	}
	return binary.BigEndian.AppendUint16(h, et)
}

func join(p Packet) []byte { return append(append([]byte(nil), p.Head...), p.Body...) }

func mustNew(t testing.TB, c Config) *Encapsulator {
	t.Helper()
	e, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestEncapFields: every format, over IPv4 and IPv6, for an IP copy (MAC
// header given apart) and a VLAN-tagged frame: one packet, each field where
// the format puts it, checksums right, the inner frame intact.
func TestEncapFields(t *testing.T) {
	when := time.Unix(1700000000, 123_456_789)
	ip4 := tcpIP("198.18.50.1", "198.18.60.2", 40000, 443, 100)
	ip6 := tcpIP("2001:db8:50::1", "2001:db8:60::2", 40000, 443, 100)
	tests := []struct {
		name   string
		cfg    Config
		lead   []byte
		frame  []byte
		meta   Meta
		check  func(t *testing.T, d Decoded)
		outLen int // overhead
	}{
		{
			name: "vxlan over ipv4, ip copy", cfg: Config{Format: VXLAN, Src: src4, Dst: dst4, VNI: 42},
			lead: ethHeader(macB, macA, 0x0800, 0), frame: ip4, outLen: 20 + 8 + 8,
			check: func(t *testing.T, d Decoded) {
				if d.VNI != 42 || d.DstPort != 4789 || d.SrcPort < SrcPortMin || d.UDPChecksum != 0 {
					t.Errorf("vni %d ports %d->%d checksum %#x, want vni 42 to 4789 from the dynamic range, no checksum over ipv4", d.VNI, d.SrcPort, d.DstPort, d.UDPChecksum)
				}
			},
		},
		{
			name: "vxlan over ipv6, another port, computed checksum", cfg: Config{Format: VXLAN, Src: src6, Dst: dst6, VNI: 0xabcdef, Port: 8472},
			lead: ethHeader(macB, macA, 0x86dd, 0), frame: ip6, outLen: 40 + 8 + 8,
			check: func(t *testing.T, d Decoded) {
				if d.VNI != 0xabcdef || d.DstPort != 8472 || d.UDPChecksum == 0 {
					t.Errorf("vni %#x port %d checksum %#x, want vni 0xabcdef to 8472 with a checksum (Decode verified it)", d.VNI, d.DstPort, d.UDPChecksum)
				}
				if d.FlowLabel != FlowHash(append(ethHeader(macB, macA, 0x86dd, 0), ip6...))&0xfffff {
					t.Errorf("flow label %#x is not the inner flow's hash", d.FlowLabel)
				}
			},
		},
		{
			name: "gre over ipv4, tagged frame", cfg: Config{Format: GRE, Src: src4, Dst: dst4},
			frame: append(ethHeader(macB, macA, 0x0800, 0x6007), ip4...), outLen: 20 + 4,
			check: func(t *testing.T, d Decoded) {
				if d.HasSeq {
					t.Error("gre carries a sequence number; gretap sends none")
				}
			},
		},
		{
			name: "gre over ipv6", cfg: Config{Format: GRE, Src: src6, Dst: dst6, TTL: 9},
			lead: ethHeader(macB, macA, 0x86dd, 0), frame: ip6, outLen: 40 + 4,
			check: func(t *testing.T, d Decoded) {
				if d.TTL != 9 {
					t.Errorf("hop limit %d, want 9", d.TTL)
				}
			},
		},
		{
			name: "erspan II, tagged frame: vlan, cos, tag preserved", cfg: Config{Format: ERSPAN2, Src: src4, Dst: dst4, Session: 7},
			frame: append(ethHeader(macB, macA, 0x0800, 5<<13|100), ip4...), outLen: 20 + 8 + 8,
			check: func(t *testing.T, d Decoded) {
				if d.Version != 1 || d.Session != 7 || d.VLAN != 100 || d.COS != 5 || d.En != 3 || d.Truncated || !d.HasSeq {
					t.Errorf("erspan II %+v, want version 1 session 7 vlan 100 cos 5 en 3, not truncated, with a sequence", d)
				}
			},
		},
		{
			name: "erspan II, copy cut by a snaplen: T", cfg: Config{Format: ERSPAN2, Src: src6, Dst: dst6, Session: 1023},
			lead: ethHeader(macB, macA, 0x86dd, 0), frame: ip6[:60], meta: Meta{Truncated: true}, outLen: 40 + 8 + 8,
			check: func(t *testing.T, d Decoded) {
				if d.Session != 1023 || d.VLAN != 0 || d.En != 0 || !d.Truncated {
					t.Errorf("erspan II %+v, want session 1023, untagged (en 0), truncated", d)
				}
			},
		},
		{
			name: "erspan III, ingress", cfg: Config{Format: ERSPAN3, Src: src4, Dst: dst4, Session: 7, HardwareID: 33},
			lead: ethHeader(macB, macA, 0x0800, 0), frame: ip4, meta: Meta{Time: when}, outLen: 20 + 8 + 12,
			check: func(t *testing.T, d Decoded) {
				if d.Version != 2 || d.Session != 7 || d.HardwareID != 33 || d.Egress || d.Gra != 0 ||
					d.Timestamp != uint32(when.UnixNano()/100000) {
					t.Errorf("erspan III %+v, want version 2 session 7 hw 33 ingress, 100 µs timestamp %d", d, uint32(when.UnixNano()/100000))
				}
			},
		},
		{
			name: "erspan III, egress over ipv6", cfg: Config{Format: ERSPAN3, Src: src6, Dst: dst6, Session: 3, HardwareID: 63},
			frame: append(ethHeader(macB, macA, 0x86dd, 3<<13|4094), ip6...), meta: Meta{Egress: true, Time: when}, outLen: 40 + 8 + 12,
			check: func(t *testing.T, d Decoded) {
				if !d.Egress || d.HardwareID != 63 || d.VLAN != 4094 || d.COS != 3 || d.En != 0 {
					t.Errorf("erspan III %+v, want egress, hw 63, vlan 4094 cos 3, bso 0", d)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustNew(t, tt.cfg)
			if e.Overhead() != tt.outLen {
				t.Errorf("overhead %d, want %d", e.Overhead(), tt.outLen)
			}
			var seqs []uint32
			for range 3 {
				pkts, res, err := e.Encap(tt.lead, tt.frame, tt.meta, 1500)
				if err != nil {
					t.Fatal(err)
				}
				if len(pkts) != 1 || res.Fragments != 0 || res.Truncated {
					t.Fatalf("%d packets, result %+v, want one whole packet", len(pkts), res)
				}
				out := join(pkts[0])
				if len(out) != tt.outLen+len(tt.lead)+len(tt.frame) || len(pkts[0].Head) > MaxHead {
					t.Errorf("%d bytes (head %d), want overhead %d + frame %d", len(out), len(pkts[0].Head), tt.outLen, len(tt.lead)+len(tt.frame))
				}
				d, err := Decode(out)
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if d.Format != tt.cfg.Format || d.Src != tt.cfg.Src || d.Dst != tt.cfg.Dst || d.DF {
					t.Errorf("format %v %v -> %v DF %v, want %v %v -> %v, DF clear", d.Format, d.Src, d.Dst, d.DF, tt.cfg.Format, tt.cfg.Src, tt.cfg.Dst)
				}
				if want := append(append([]byte(nil), tt.lead...), tt.frame...); !bytes.Equal(d.Inner, want) {
					t.Errorf("inner frame\n got % x\nwant % x", d.Inner, want)
				}
				if tt.cfg.TTL == 0 && d.TTL != DefaultTTL {
					t.Errorf("ttl %d, want %d", d.TTL, DefaultTTL)
				}
				tt.check(t, d)
				if d.HasSeq {
					seqs = append(seqs, d.Seq)
				}
			}
			for i := 1; i < len(seqs); i++ {
				if seqs[i] != seqs[i-1]+1 {
					t.Errorf("gre sequence numbers %v, want consecutive", seqs)
				}
			}
		})
	}
}

// TestFlowHashSymmetric: both directions of a flow get one VXLAN source
// port; fragments of a datagram hash together; distinct flows spread.
func TestFlowHashSymmetric(t *testing.T) {
	e := mustNew(t, Config{Format: VXLAN, Src: src4, Dst: dst4, VNI: 1})
	port := func(lead, frame []byte) uint16 {
		pkts, _, err := e.Encap(lead, frame, Meta{}, 1500)
		if err != nil {
			t.Fatal(err)
		}
		d, err := Decode(join(pkts[0]))
		if err != nil {
			t.Fatal(err)
		}
		return d.SrcPort
	}
	frag := func(ip []byte, off uint16) []byte {
		ip = append([]byte(nil), ip...)
		binary.BigEndian.PutUint16(ip[6:], 0x2000|off)
		pkt.IPv4HeaderChecksum(ip[:20])
		return ip
	}
	l4, l6 := ethHeader(macB, macA, 0x0800, 0), ethHeader(macB, macA, 0x86dd, 0)
	r4, r6 := ethHeader(macA, macB, 0x0800, 0), ethHeader(macA, macB, 0x86dd, 0)
	pairs := []struct {
		name       string
		lead1, f1  []byte
		lead2, f2  []byte
		wantSame   bool
		wantDiffer bool
	}{
		{"tcp v4 both ways", l4, tcpIP("198.18.50.1", "198.18.60.2", 40000, 443, 10), r4, tcpIP("198.18.60.2", "198.18.50.1", 443, 40000, 0), true, false},
		{"tcp v6 both ways", l6, tcpIP("2001:db8::1", "2001:db8::2", 5555, 80, 10), r6, tcpIP("2001:db8::2", "2001:db8::1", 80, 5555, 10), true, false},
		{"same addresses, ports swapped on one side only", l4, tcpIP("198.18.0.1", "198.18.0.1", 1000, 2000, 0), l4, tcpIP("198.18.0.1", "198.18.0.1", 2000, 1000, 0), true, false},
		{"a frame given whole or as lead and rest", l4, tcpIP("198.18.50.1", "198.18.60.2", 1, 2, 0), nil, append(ethHeader(macB, macA, 0x0800, 0), tcpIP("198.18.50.1", "198.18.60.2", 1, 2, 0)...), true, false},
		{"tagged frame as its untagged self", nil, append(ethHeader(macB, macA, 0x0800, 9), tcpIP("198.18.50.1", "198.18.60.2", 1, 2, 0)...), l4, tcpIP("198.18.50.1", "198.18.60.2", 1, 2, 0), true, false},
		{"first and later fragment", l4, frag(tcpIP("198.18.50.1", "198.18.60.2", 1, 2, 64), 0), l4, frag(tcpIP("198.18.50.1", "198.18.60.2", 9, 9, 64), 3), true, false},
		{"non-ip frames both ways", nil, ethHeader(macB, macA, 0x0806, 0), nil, ethHeader(macA, macB, 0x0806, 0), true, false},
	}
	for _, p := range pairs {
		a, b := port(p.lead1, p.f1), port(p.lead2, p.f2)
		if p.wantSame && a != b {
			t.Errorf("%s: source ports %d and %d, want one", p.name, a, b)
		}
	}
	// 200 client ports to one server: the source ports spread over the
	// dynamic range.
	seen := map[uint16]bool{}
	for i := range 200 {
		seen[port(l4, tcpIP("198.18.50.1", "198.18.60.2", uint16(30000+i), 443, 0))] = true
	}
	if len(seen) < 190 {
		t.Errorf("200 flows got %d source ports, want them spread", len(seen))
	}
}

// reassemble puts the outer fragments of one datagram back together and
// checks what every fragment must satisfy: at most mtu bytes, one
// identification, offsets contiguous, MF on all but the last, DF clear.
func reassemble(t *testing.T, pkts []Packet, mtu int) []byte {
	t.Helper()
	type piece struct {
		off  int
		data []byte
		more bool
	}
	var pieces []piece
	var hdr []byte
	var ids = map[uint32]bool{}
	for i, p := range pkts {
		b := join(p)
		if len(b) > mtu {
			t.Errorf("fragment %d is %d bytes, mtu %d", i, len(b), mtu)
		}
		if b[0]>>4 == 4 {
			fo := binary.BigEndian.Uint16(b[6:])
			if fo&0x4000 != 0 {
				t.Errorf("fragment %d has DF set", i)
			}
			var c pkt.Stream
			c.Add(b[:20])
			if c.Checksum() != 0 {
				t.Errorf("fragment %d: bad header checksum", i)
			}
			if int(binary.BigEndian.Uint16(b[2:])) != len(b) {
				t.Errorf("fragment %d: total length %d, is %d", i, binary.BigEndian.Uint16(b[2:]), len(b))
			}
			ids[uint32(binary.BigEndian.Uint16(b[4:]))] = true
			pieces = append(pieces, piece{int(fo&0x1fff) * 8, b[20:], fo&0x2000 != 0})
			if i == 0 {
				hdr = append([]byte(nil), b[:20]...)
			}
		} else {
			if b[6] != pkt.ProtoFragment || 40+int(binary.BigEndian.Uint16(b[4:])) != len(b) {
				t.Fatalf("fragment %d: next header %d, payload length %d of %d bytes", i, b[6], binary.BigEndian.Uint16(b[4:]), len(b))
			}
			fh := b[40:48]
			ids[binary.BigEndian.Uint32(fh[4:])] = true
			fo := binary.BigEndian.Uint16(fh[2:])
			pieces = append(pieces, piece{int(fo &^ 7), b[48:], fo&1 != 0})
			if i == 0 {
				hdr = append([]byte(nil), b[:40]...)
				hdr[6] = fh[0]
			}
		}
	}
	if len(ids) != 1 {
		t.Errorf("fragments carry %d identifications, want 1", len(ids))
	}
	sort.Slice(pieces, func(i, j int) bool { return pieces[i].off < pieces[j].off })
	var data []byte
	for i, p := range pieces {
		if p.off != len(data) {
			t.Fatalf("fragment at %d, want %d", p.off, len(data))
		}
		if p.more != (i < len(pieces)-1) {
			t.Errorf("fragment %d: MF %v", i, p.more)
		}
		if p.more && len(p.data)%8 != 0 {
			t.Errorf("fragment %d carries %d bytes, not a multiple of 8", i, len(p.data))
		}
		data = append(data, p.data...)
	}
	if hdr[0]>>4 == 4 {
		binary.BigEndian.PutUint16(hdr[2:], uint16(20+len(data)))
		binary.BigEndian.PutUint16(hdr[6:], 0)
		pkt.IPv4HeaderChecksum(hdr)
	} else {
		binary.BigEndian.PutUint16(hdr[4:], uint16(len(data)))
	}
	return append(hdr, data...)
}

// TestEncapSizePolicy: a frame whose encapsulation passes the MTU is
// fragmented (VXLAN, GRE), whole after reassembly, or cut to fit with T set
// (ERSPAN); frames that fit are neither.
func TestEncapSizePolicy(t *testing.T) {
	big4 := tcpIP("198.18.50.1", "198.18.60.2", 40000, 443, 1500-40)    // a full 1500-byte packet
	big6 := tcpIP("2001:db8:50::1", "2001:db8:60::2", 40000, 443, 8900) // a jumbo frame
	lead4, lead6 := ethHeader(macB, macA, 0x0800, 0), ethHeader(macB, macA, 0x86dd, 0)
	tests := []struct {
		name      string
		cfg       Config
		lead, ip  []byte
		mtu       int
		wantFrags int
		wantTrunc bool
	}{
		{"vxlan v4, 1514-byte frame, mtu 1500", Config{Format: VXLAN, Src: src4, Dst: dst4, VNI: 1}, lead4, big4, 1500, 2, false},
		{"vxlan v6, jumbo frame, mtu 1500", Config{Format: VXLAN, Src: src6, Dst: dst6, VNI: 1}, lead6, big6, 1500, 7, false},
		{"gre v4, jumbo frame as v6, mtu 1400", Config{Format: GRE, Src: src4, Dst: dst4}, lead6, big6, 1400, 7, false},
		{"gre v6, 1514-byte frame, mtu 1280", Config{Format: GRE, Src: src6, Dst: dst6}, lead4, big4, 1280, 2, false},
		{"vxlan v4 fits a 1600 path", Config{Format: VXLAN, Src: src4, Dst: dst4, VNI: 1}, lead4, big4, 1600, 0, false},
		{"erspan II v4 cut to 1500", Config{Format: ERSPAN2, Src: src4, Dst: dst4, Session: 1}, lead4, big4, 1500, 0, true},
		{"erspan III v6 jumbo cut to 1500", Config{Format: ERSPAN3, Src: src6, Dst: dst6, Session: 1}, lead6, big6, 1500, 0, true},
		{"erspan II fits a 9000 path", Config{Format: ERSPAN2, Src: src4, Dst: dst4, Session: 1}, lead4, big4, 9000, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustNew(t, tt.cfg)
			pkts, res, err := e.Encap(tt.lead, tt.ip, Meta{}, tt.mtu)
			if err != nil {
				t.Fatal(err)
			}
			if res.Fragments != tt.wantFrags || res.Truncated != tt.wantTrunc {
				t.Fatalf("result %+v, want %d fragments, truncated %v", res, tt.wantFrags, tt.wantTrunc)
			}
			whole := join(pkts[0])
			if tt.wantFrags > 0 {
				if len(pkts) != tt.wantFrags {
					t.Fatalf("%d packets, want %d", len(pkts), tt.wantFrags)
				}
				whole = reassemble(t, pkts, tt.mtu)
			} else if len(pkts) != 1 || len(whole) > tt.mtu {
				t.Fatalf("%d packets of %d bytes, want one of at most %d", len(pkts), len(whole), tt.mtu)
			}
			d, err := Decode(whole)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			frame := append(append([]byte(nil), tt.lead...), tt.ip...)
			if tt.wantTrunc {
				if len(whole) != tt.mtu || !d.Truncated || !bytes.Equal(d.Inner, frame[:len(d.Inner)]) {
					t.Errorf("%d bytes, T %v, want the frame's first bytes in exactly %d, T set", len(whole), d.Truncated, tt.mtu)
				}
				return
			}
			if !bytes.Equal(d.Inner, frame) || d.Truncated {
				t.Errorf("inner frame of %d bytes (T %v), want the %d-byte frame whole", len(d.Inner), d.Truncated, len(frame))
			}
		})
	}
}

func TestEncapErrors(t *testing.T) {
	configs := []struct {
		name string
		cfg  Config
	}{
		{"no format", Config{Src: src4, Dst: dst4}},
		{"no addresses", Config{Format: VXLAN}},
		{"two families", Config{Format: GRE, Src: src4, Dst: dst6}},
		{"vni too large", Config{Format: VXLAN, Src: src4, Dst: dst4, VNI: 1 << 24}},
		{"session too large", Config{Format: ERSPAN2, Src: src4, Dst: dst4, Session: 1024}},
		{"hardware id too large", Config{Format: ERSPAN3, Src: src4, Dst: dst4, HardwareID: 64}},
	}
	for _, c := range configs {
		if _, err := New(c.cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: New = %v, want ErrConfig", c.name, err)
		}
	}
	e4 := mustNew(t, Config{Format: ERSPAN3, Src: src4, Dst: dst4})
	e6 := mustNew(t, Config{Format: VXLAN, Src: src6, Dst: dst6})
	frame := append(ethHeader(macB, macA, 0x0800, 0), tcpIP("198.18.0.1", "198.18.0.2", 1, 2, 0)...)
	calls := []struct {
		name  string
		e     *Encapsulator
		lead  []byte
		frame []byte
		mtu   int
		want  error
	}{
		{"short frame", e4, nil, frame[:13], 1500, ErrShortFrame},
		{"lead too long", e4, make([]byte, 20), frame, 1500, ErrShortFrame},
		{"mtu below the headers", e4, nil, frame, 60, ErrMTU},
		{"ipv6 mtu below 1280", e6, nil, frame, 1200, ErrMTU},
		{"frame beyond 64 KiB", e6, nil, make([]byte, 65520), 1500, ErrTooBig},
	}
	for _, c := range calls {
		if _, _, err := c.e.Encap(c.lead, c.frame, Meta{}, c.mtu); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestEncapNoAllocs(t *testing.T) {
	lead := ethHeader(macB, macA, 0x0800, 0)
	small := tcpIP("198.18.50.1", "198.18.60.2", 1, 2, 100)
	big := tcpIP("198.18.50.1", "198.18.60.2", 1, 2, 8000)
	for _, f := range []Format{VXLAN, GRE, ERSPAN2, ERSPAN3} {
		for _, v6 := range []bool{false, true} {
			c := Config{Format: f, Src: src4, Dst: dst4}
			if v6 {
				c.Src, c.Dst = src6, dst6
			}
			e := mustNew(t, c)
			e.Encap(lead, big, Meta{}, 1500) // warm
			allocs := testing.AllocsPerRun(100, func() {
				e.Encap(lead, small, Meta{Time: time.Now()}, 1500)
				e.Encap(lead, big, Meta{}, 1500)
			})
			if allocs != 0 {
				t.Errorf("%v v6=%v: %v allocations per run", f, v6, allocs)
			}
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	e := mustNew(t, Config{Format: VXLAN, Src: src4, Dst: dst4, VNI: 5})
	frame := append(ethHeader(macB, macA, 0x0800, 0), tcpIP("198.18.0.1", "198.18.0.2", 1, 2, 0)...)
	pkts, _, err := e.Encap(nil, frame, Meta{}, 1500)
	if err != nil {
		t.Fatal(err)
	}
	good := join(pkts[0])
	badIP := append([]byte(nil), good...)
	badIP[8]-- // the TTL, under the header checksum
	withUDP := append([]byte(nil), good...)
	withUDP[20+6], withUDP[20+7] = 0x12, 0x34
	frag := append([]byte(nil), good...)
	frag[6] |= 0x20
	pkt.IPv4HeaderChecksum(frag[:20])
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"ip header checksum", badIP, ErrChecksum},
		{"udp checksum", withUDP, ErrChecksum},
		{"fragment", frag, ErrFragment},
		{"not ip", []byte{0x10, 1, 2, 3}, ErrNotTunnel},
	}
	for _, c := range cases {
		if _, err := Decode(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func BenchmarkEncap(b *testing.B) {
	lead := ethHeader(macB, macA, 0x0800, 0)
	for _, bc := range []struct {
		name string
		cfg  Config
		n    int
	}{
		{"vxlan4/1500", Config{Format: VXLAN, Src: src4, Dst: dst4, VNI: 1}, 1460},
		{"vxlan6/1500", Config{Format: VXLAN, Src: src6, Dst: dst6, VNI: 1}, 1460},
		{"vxlan4/200", Config{Format: VXLAN, Src: src4, Dst: dst4, VNI: 1}, 160},
		{"erspan3/1500", Config{Format: ERSPAN3, Src: src4, Dst: dst4, Session: 1}, 1460},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := mustNew(b, bc.cfg)
			ip := tcpIP("198.18.50.1", "198.18.60.2", 1, 2, bc.n)
			m := Meta{Time: time.Now()}
			b.SetBytes(int64(len(ip)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := e.Encap(lead, ip, m, 1500); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
