package mirror

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
)

// naiveSum is an independent one's complement sum (byte pairs, no tricks) used
// to verify checksums: a correct packet sums to 0xffff.
func naiveSum(parts ...[]byte) uint16 {
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

// pseudo builds the pseudo header of an L4 segment of length n.
func pseudo(ip []byte, proto byte, n int) []byte {
	if ip[0]>>4 == 4 {
		p := append([]byte{}, ip[12:20]...)
		return append(p, 0, proto, byte(n>>8), byte(n))
	}
	p := append([]byte{}, ip[8:40]...)
	return append(p, byte(n>>24), byte(n>>16), byte(n>>8), byte(n), 0, 0, 0, proto)
}

// testPacket builds an IPv4 or IPv6 packet with a TCP (32-byte header) or
// UDP header and n payload bytes, with a partial L4 checksum: the
// pseudo-header sum the kernel leaves for the device to complete.
func testPacket(v6 bool, proto byte, n int) []byte {
	var ip []byte
	var l4 []byte
	if proto == protoTCP {
		l4 = make([]byte, 32)
		binary.BigEndian.PutUint16(l4[0:], 40000)
		binary.BigEndian.PutUint16(l4[2:], 5201)
		binary.BigEndian.PutUint32(l4[4:], 0xfffff000) // wraps while segmenting
		binary.BigEndian.PutUint32(l4[8:], 0x01020304)
		l4[12] = 8 << 4
		l4[13] = tcpCWR | tcpPSH | tcpFIN | 0x10 // ACK
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
		ipv4HeaderChecksum(ip)
	}
	pkt := append(append(ip, l4...), payload...)
	at := len(ip) + 6
	if proto == protoTCP {
		at = len(ip) + 16
	}
	binary.BigEndian.PutUint16(pkt[at:], partialSeed(pkt, proto, len(l4)+n))
	return pkt
}

func TestIPv4HeaderChecksumVector(t *testing.T) {
	// The example header of RFC 1071 tutorials: checksum 0xb861.
	h := []byte{0x45, 0, 0, 0x73, 0, 0, 0x40, 0, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0, 1, 0xc0, 0xa8, 0, 0xc7}
	ipv4HeaderChecksum(h)
	if got := binary.BigEndian.Uint16(h[10:]); got != 0xb861 {
		t.Errorf("checksum %#04x, want 0xb861", got)
	}
}

func TestSplitTCP(t *testing.T) {
	tests := []struct {
		v6   bool
		n    int
		mtu  int
		segs int
	}{
		{false, 8948, 1500, 7},   // 9000-byte IPv4 packet, MSS 1448
		{false, 65483, 1500, 46}, // a full 64 KiB GSO packet
		{true, 8928, 1500, 7},    // 9000-byte IPv6 packet, MSS 1428
		{true, 65463, 1280, 55},  // minimum IPv6 MTU, MSS 1208
		{false, 1448, 1500, 1},   // exactly the MTU: one packet, checksums fixed
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("v6=%v/%d/mtu%d", tt.v6, tt.n, tt.mtu), func(t *testing.T) {
			pkt := testPacket(tt.v6, protoTCP, tt.n)
			orig := append([]byte(nil), pkt...)
			var s segmenter
			frames, err := s.split(pkt, tt.mtu, false)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pkt, orig) {
				t.Error("split modified its input")
			}
			if len(frames) != tt.segs {
				t.Errorf("%d segments, want %d", len(frames), tt.segs)
			}
			ipl := 20
			if tt.v6 {
				ipl = 40
			}
			var stream []byte
			seq0 := binary.BigEndian.Uint32(orig[ipl+4:])
			for i, f := range frames {
				seg := f[headroom:]
				last := i == len(frames)-1
				if len(seg) > tt.mtu {
					t.Errorf("segment %d: %d bytes > mtu %d", i, len(seg), tt.mtu)
				}
				if tt.v6 {
					if got := int(binary.BigEndian.Uint16(seg[4:])); got != len(seg)-40 {
						t.Errorf("segment %d: payload length %d, want %d", i, got, len(seg)-40)
					}
					if !bytes.Equal(seg[:4], orig[:4]) || !bytes.Equal(seg[6:40], orig[6:40]) {
						t.Errorf("segment %d: IPv6 header changed beyond the length: % x", i, seg[:40])
					}
				} else {
					if got := int(binary.BigEndian.Uint16(seg[2:])); got != len(seg) {
						t.Errorf("segment %d: total length %d, want %d", i, got, len(seg))
					}
					if got, want := binary.BigEndian.Uint16(seg[4:]), uint16(0xfffe+i); got != want {
						t.Errorf("segment %d: id %#x, want %#x", i, got, want)
					}
					if naiveSum(seg[:20]) != 0xffff {
						t.Errorf("segment %d: bad IPv4 header checksum", i)
					}
					if seg[1] != orig[1] || seg[6] != orig[6] || seg[8] != orig[8] {
						t.Errorf("segment %d: TOS/DF/TTL changed", i)
					}
				}
				th := seg[ipl:]
				if naiveSum(pseudo(seg, protoTCP, len(th)), th) != 0xffff {
					t.Errorf("segment %d: bad TCP checksum", i)
				}
				if got := binary.BigEndian.Uint32(th[4:]); got != seq0+uint32(len(stream)) {
					t.Errorf("segment %d: seq %#x, want %#x", i, got, seq0+uint32(len(stream)))
				}
				wantFlags := byte(0x10)
				if i == 0 {
					wantFlags |= tcpCWR
				}
				if last {
					wantFlags |= tcpFIN | tcpPSH
				}
				if th[13] != wantFlags {
					t.Errorf("segment %d: flags %#x, want %#x", i, th[13], wantFlags)
				}
				if !bytes.Equal(th[20:32], orig[ipl+20:ipl+32]) {
					t.Errorf("segment %d: TCP options changed", i)
				}
				stream = append(stream, th[32:]...)
			}
			if !bytes.Equal(stream, orig[ipl+32:]) {
				t.Errorf("reassembled stream differs (%d bytes, want %d)", len(stream), tt.n)
			}
		})
	}
}

// reassemble puts fragments back together into the original packet, from
// the offsets and MF bits alone.
func reassemble(t *testing.T, frames [][]byte, v6 bool) []byte {
	t.Helper()
	var hdr, data []byte
	for i, f := range frames {
		p := f[headroom:]
		var off int
		var mf bool
		var body []byte
		if v6 {
			if p[6] != protoFragment {
				t.Fatalf("fragment %d: next header %d, want 44", i, p[6])
			}
			if got := int(binary.BigEndian.Uint16(p[4:])); got != len(p)-40 {
				t.Fatalf("fragment %d: payload length %d, want %d", i, got, len(p)-40)
			}
			fo := binary.BigEndian.Uint16(p[42:])
			off, mf = int(fo&^7), fo&1 == 1
			if i > 0 && binary.BigEndian.Uint32(p[44:]) != binary.BigEndian.Uint32(frames[0][headroom+44:]) {
				t.Errorf("fragment %d: identification differs", i)
			}
			if i == 0 {
				hdr = append([]byte(nil), p[:40]...)
				hdr[6] = p[40]
			}
			body = p[48:]
		} else {
			if naiveSum(p[:20]) != 0xffff {
				t.Errorf("fragment %d: bad IPv4 header checksum", i)
			}
			if got := int(binary.BigEndian.Uint16(p[2:])); got != len(p) {
				t.Fatalf("fragment %d: total length %d, want %d", i, got, len(p))
			}
			fo := binary.BigEndian.Uint16(p[6:])
			off, mf = int(fo&0x1fff)*8, fo&0x2000 != 0
			if i == 0 {
				hdr = append([]byte(nil), p[:20]...)
			}
			body = p[20:]
		}
		if off != len(data) {
			t.Fatalf("fragment %d: offset %d, want %d", i, off, len(data))
		}
		if mf != (i < len(frames)-1) {
			t.Errorf("fragment %d: MF %v", i, mf)
		}
		if mf && len(body)%8 != 0 {
			t.Errorf("fragment %d: %d data bytes, not a multiple of 8", i, len(body))
		}
		data = append(data, body...)
	}
	if v6 {
		binary.BigEndian.PutUint16(hdr[4:], uint16(len(data)))
	} else {
		binary.BigEndian.PutUint16(hdr[2:], uint16(20+len(data)))
		hdr[6] &^= 0x20
		ipv4HeaderChecksum(hdr)
	}
	return append(hdr, data...)
}

func TestSplitFragment(t *testing.T) {
	tests := []struct {
		v6    bool
		n     int
		mtu   int
		frags int
	}{
		{false, 8972, 1500, 7},
		{false, 65000, 1500, 44},
		{true, 8952, 1500, 7},
		{true, 65000, 1280, 53},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("v6=%v/%d/mtu%d", tt.v6, tt.n, tt.mtu), func(t *testing.T) {
			pkt := testPacket(tt.v6, protoUDP, tt.n)
			var s segmenter
			frames, err := s.split(pkt, tt.mtu, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(frames) != tt.frags {
				t.Errorf("%d fragments, want %d", len(frames), tt.frags)
			}
			for i, f := range frames {
				if len(f)-headroom > tt.mtu {
					t.Errorf("fragment %d: %d bytes > mtu", i, len(f)-headroom)
				}
			}
			got := reassemble(t, frames, tt.v6)
			ipl := 20
			if tt.v6 {
				ipl = 40
			}
			if naiveSum(pseudo(got, protoUDP, len(got)-ipl), got[ipl:]) != 0xffff {
				t.Error("reassembled packet has a bad UDP checksum")
			}
			want := append([]byte(nil), pkt...)
			copy(want[ipl+6:], got[ipl+6:ipl+8]) // the checksum was partial on purpose
			if !bytes.Equal(got, want) {
				t.Errorf("reassembled packet differs from the original")
			}
		})
	}
}

// TestSplitSmallCompletesPartialChecksums: a packet that fits the MTU gets a
// partial checksum completed, and nothing else changes: a checksum that was
// wrong in another way (as on the wire) stays wrong, and so does a broken
// IPv4 header checksum.
func TestSplitSmallCompletesPartialChecksums(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, proto := range []byte{protoTCP, protoUDP} {
			ipl := 20
			if v6 {
				ipl = 40
			}
			at := ipl + 6
			if proto == protoTCP {
				at = ipl + 16
			}
			for _, tc := range []struct {
				name      string
				mangle    func(p []byte)
				wantValid bool
			}{
				{"partial", func([]byte) {}, true},
				{"corrupt on the wire", func(p []byte) { p[at] ^= 0x5a }, false},
			} {
				t.Run(fmt.Sprintf("v6=%v/proto%d/%s", v6, proto, tc.name), func(t *testing.T) {
					pkt := testPacket(v6, proto, 100)
					tc.mangle(pkt)
					if !v6 {
						pkt[10] ^= 0xff // a broken IPv4 header checksum stays broken
					}
					orig := append([]byte(nil), pkt...)
					var s segmenter
					frames, err := s.split(pkt, 1500, false)
					if err != nil || len(frames) != 1 {
						t.Fatalf("split: %d frames, %v", len(frames), err)
					}
					p := frames[0][headroom:]
					valid := naiveSum(pseudo(p, proto, len(p)-ipl), p[ipl:]) == 0xffff
					if valid != tc.wantValid {
						t.Errorf("L4 checksum valid = %v, want %v", valid, tc.wantValid)
					}
					want := append([]byte(nil), orig...)
					copy(want[at:at+2], p[at:at+2])
					if !bytes.Equal(p, want) {
						t.Error("split changed more than the L4 checksum")
					}
					if !tc.wantValid && !bytes.Equal(p, orig) {
						t.Error("split changed a checksum that was not partial")
					}
					if !bytes.Equal(pkt, orig) {
						t.Error("split modified its input")
					}
				})
			}
		}
	}
}

func TestSplitTruncatedAsIs(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		pkt := testPacket(v6, protoTCP, 3000)[:2000] // a snaplen of 2000
		var s segmenter
		frames, err := s.split(pkt, 1500, true)
		if err != nil || len(frames) != 1 {
			t.Fatalf("v6=%v: %d frames, %v", v6, len(frames), err)
		}
		if !bytes.Equal(frames[0][headroom:], pkt) {
			t.Errorf("v6=%v: truncated copy changed", v6)
		}
	}
}

func TestSplitNoAllocs(t *testing.T) {
	pkts := [][]byte{
		testPacket(false, protoTCP, 65483),
		testPacket(true, protoUDP, 30000),
		testPacket(false, protoUDP, 30000),
		testPacket(true, protoTCP, 100),
	}
	var s segmenter
	for _, p := range pkts {
		s.split(p, 1500, false) // warm up the buffers
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, p := range pkts {
			if _, err := s.split(p, 1500, false); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per round in the steady state", allocs)
	}
}

func BenchmarkSegmentTCP64K(b *testing.B) {
	for _, v6 := range []bool{false, true} {
		b.Run(fmt.Sprintf("v6=%v", v6), func(b *testing.B) {
			n := 65483
			if v6 {
				n = 65463
			}
			pkt := testPacket(v6, protoTCP, n)
			var s segmenter
			b.SetBytes(int64(len(pkt)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.split(pkt, 1500, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
