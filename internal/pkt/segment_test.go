package pkt_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/nfmirror/nfmirror/internal/pkt"
	"github.com/nfmirror/nfmirror/internal/pkt/pkttest"
)

func TestIPv4HeaderChecksumVector(t *testing.T) {
	// The example header of RFC 1071 tutorials: checksum 0xb861.
	h := []byte{0x45, 0, 0, 0x73, 0, 0, 0x40, 0, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0, 1, 0xc0, 0xa8, 0, 0xc7}
	pkt.IPv4HeaderChecksum(h)
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
			pk := pkttest.Packet(tt.v6, pkt.ProtoTCP, tt.n)
			orig := append([]byte(nil), pk...)
			var s pkt.Segmenter
			frames, err := s.Split(pk, tt.mtu, false)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pk, orig) {
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
				seg := f
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
					if pkttest.NaiveSum(seg[:20]) != 0xffff {
						t.Errorf("segment %d: bad IPv4 header checksum", i)
					}
					if seg[1] != orig[1] || seg[6] != orig[6] || seg[8] != orig[8] {
						t.Errorf("segment %d: TOS/DF/TTL changed", i)
					}
				}
				th := seg[ipl:]
				if pkttest.NaiveSum(pkttest.Pseudo(seg, pkt.ProtoTCP, len(th)), th) != 0xffff {
					t.Errorf("segment %d: bad TCP checksum", i)
				}
				if got := binary.BigEndian.Uint32(th[4:]); got != seq0+uint32(len(stream)) {
					t.Errorf("segment %d: seq %#x, want %#x", i, got, seq0+uint32(len(stream)))
				}
				wantFlags := byte(0x10)
				if i == 0 {
					wantFlags |= pkt.TCPCWR
				}
				if last {
					wantFlags |= pkt.TCPFIN | pkt.TCPPSH
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
		p := f
		var off int
		var mf bool
		var body []byte
		if v6 {
			if p[6] != pkt.ProtoFragment {
				t.Fatalf("fragment %d: next header %d, want 44", i, p[6])
			}
			if got := int(binary.BigEndian.Uint16(p[4:])); got != len(p)-40 {
				t.Fatalf("fragment %d: payload length %d, want %d", i, got, len(p)-40)
			}
			fo := binary.BigEndian.Uint16(p[42:])
			off, mf = int(fo&^7), fo&1 == 1
			if i > 0 && binary.BigEndian.Uint32(p[44:]) != binary.BigEndian.Uint32(frames[0][44:]) {
				t.Errorf("fragment %d: identification differs", i)
			}
			if i == 0 {
				hdr = append([]byte(nil), p[:40]...)
				hdr[6] = p[40]
			}
			body = p[48:]
		} else {
			if pkttest.NaiveSum(p[:20]) != 0xffff {
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
		pkt.IPv4HeaderChecksum(hdr)
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
			pk := pkttest.Packet(tt.v6, pkt.ProtoUDP, tt.n)
			var s pkt.Segmenter
			frames, err := s.Split(pk, tt.mtu, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(frames) != tt.frags {
				t.Errorf("%d fragments, want %d", len(frames), tt.frags)
			}
			for i, f := range frames {
				if len(f) > tt.mtu {
					t.Errorf("fragment %d: %d bytes > mtu", i, len(f))
				}
			}
			got := reassemble(t, frames, tt.v6)
			ipl := 20
			if tt.v6 {
				ipl = 40
			}
			if pkttest.NaiveSum(pkttest.Pseudo(got, pkt.ProtoUDP, len(got)-ipl), got[ipl:]) != 0xffff {
				t.Error("reassembled packet has a bad UDP checksum")
			}
			want := append([]byte(nil), pk...)
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
		for _, proto := range []byte{pkt.ProtoTCP, pkt.ProtoUDP} {
			ipl := 20
			if v6 {
				ipl = 40
			}
			at := ipl + 6
			if proto == pkt.ProtoTCP {
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
					pk := pkttest.Packet(v6, proto, 100)
					tc.mangle(pk)
					if !v6 {
						pk[10] ^= 0xff // a broken IPv4 header checksum stays broken
					}
					orig := append([]byte(nil), pk...)
					var s pkt.Segmenter
					frames, err := s.Split(pk, 1500, false)
					if err != nil || len(frames) != 1 {
						t.Fatalf("split: %d frames, %v", len(frames), err)
					}
					p := frames[0]
					valid := pkttest.NaiveSum(pkttest.Pseudo(p, proto, len(p)-ipl), p[ipl:]) == 0xffff
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
					if !bytes.Equal(pk, orig) {
						t.Error("split modified its input")
					}
				})
			}
		}
	}
}

func TestSplitTruncatedAsIs(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		pk := pkttest.Packet(v6, pkt.ProtoTCP, 3000)[:2000] // a snaplen of 2000
		var s pkt.Segmenter
		frames, err := s.Split(pk, 1500, true)
		if err != nil || len(frames) != 1 {
			t.Fatalf("v6=%v: %d frames, %v", v6, len(frames), err)
		}
		if !bytes.Equal(frames[0], pk) {
			t.Errorf("v6=%v: truncated copy changed", v6)
		}
	}
}

func TestSplitNoAllocs(t *testing.T) {
	pkts := [][]byte{
		pkttest.Packet(false, pkt.ProtoTCP, 65483),
		pkttest.Packet(true, pkt.ProtoUDP, 30000),
		pkttest.Packet(false, pkt.ProtoUDP, 30000),
		pkttest.Packet(true, pkt.ProtoTCP, 100),
	}
	var s pkt.Segmenter
	for _, p := range pkts {
		s.Split(p, 1500, false) // warm up the buffers
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, p := range pkts {
			if _, err := s.Split(p, 1500, false); err != nil {
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
			pk := pkttest.Packet(v6, pkt.ProtoTCP, n)
			var s pkt.Segmenter
			b.SetBytes(int64(len(pk)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Split(pk, 1500, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
