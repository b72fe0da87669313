package mirror

import (
	"bytes"
	"testing"

	"github.com/nfmirror/nfmirror/nfrules"
)

// TestNFLOGReaderHandle feeds hand-made kernel datagrams through the
// builtin reader's decoding and frame assembly and checks what the sink
// gets and what is counted.
func TestNFLOGReaderHandle(t *testing.T) {
	ip := []byte{0x45, 0, 0, 24, 0, 0, 0, 0, 64, 1, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2, 8, 0, 0, 0}
	mac := []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0}
	frame := append(append([]byte(nil), mac...), ip...)
	tagged := append(append(append([]byte(nil), mac[:12]...), 0x81, 0, 0, 42), append(mac[12:], ip...)...)
	vlan := nlattr(nfulaVLAN|0x8000, append(nlattr(nfulaVLANProto, be16(0x8100)), nlattr(nfulaVLANTCI, be16(42))...))
	seqs := func(attrs [][]byte, seq ...uint32) []byte {
		var d []byte
		for _, s := range seq {
			d = append(d, packetMsg(5, 1, append(attrs, nlattr(nfulaSeq, be32(s)))...)...)
		}
		return d
	}
	tests := []struct {
		name     string
		ch       nfrules.Channel
		dgram    []byte
		want     []byte
		wantN    int
		wantGaps uint64
		wantRule int
	}{
		{
			name:  "inet copy with a rule prefix",
			ch:    nfrules.Channel{Family: nfrules.FamilyInet},
			dgram: seqs([][]byte{nlattr(nfulaPayload, ip), nlattr(nfulaPrefix, []byte("nfm:1\x00"))}, 1, 2, 3),
			want:  ip, wantN: 3, wantRule: 1,
		},
		{
			name:  "sequence gaps count lost copies",
			ch:    nfrules.Channel{Family: nfrules.FamilyInet},
			dgram: seqs([][]byte{nlattr(nfulaPayload, ip)}, 7, 8, 12, 13, 20),
			want:  ip, wantN: 5, wantGaps: 3 + 6, wantRule: -1,
		},
		{
			name:  "ingress frame is the L2 header then the payload",
			ch:    nfrules.Channel{Family: nfrules.FamilyNetdev, Hook: nfrules.HookIngress},
			dgram: seqs([][]byte{nlattr(nfulaHwHeader, mac), nlattr(nfulaL2Hdr, mac), nlattr(nfulaPayload, ip), nlattr(nfulaPrefix, []byte("nfm:2\x00"))}, 1),
			want:  frame, wantN: 1, wantRule: 2,
		},
		{
			name:  "ingress without L2HDR falls back to the hardware header",
			ch:    nfrules.Channel{Family: nfrules.FamilyNetdev, Hook: nfrules.HookIngress},
			dgram: seqs([][]byte{nlattr(nfulaHwHeader, mac), nlattr(nfulaPayload, ip)}, 1),
			want:  frame, wantN: 1, wantRule: -1,
		},
		{
			name:  "egress payload is already the frame",
			ch:    nfrules.Channel{Family: nfrules.FamilyNetdev, Hook: nfrules.HookEgress},
			dgram: seqs([][]byte{nlattr(nfulaL2Hdr, mac), nlattr(nfulaPayload, frame)}, 1),
			want:  frame, wantN: 1, wantRule: -1,
		},
		{
			name:  "offloaded VLAN tag goes back after the MAC addresses",
			ch:    nfrules.Channel{Family: nfrules.FamilyNetdev, Hook: nfrules.HookIngress},
			dgram: seqs([][]byte{vlan, nlattr(nfulaL2Hdr, mac), nlattr(nfulaPayload, ip)}, 1),
			want:  tagged, wantN: 1, wantRule: -1,
		},
		{
			name:  "offloaded VLAN tag at egress",
			ch:    nfrules.Channel{Family: nfrules.FamilyNetdev, Hook: nfrules.HookEgress},
			dgram: seqs([][]byte{vlan, nlattr(nfulaPayload, frame)}, 1),
			want:  tagged, wantN: 1, wantRule: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.ch.Dest = "m0"
			p := testPipeline(t, &recordSink{}, 64, tt.ch)
			r := &nflogReader{cs: p.chans[0]}
			if err := parseNFLOGDatagram(tt.dgram, &r.msg, r.handle); err != nil {
				t.Fatal(err)
			}
			q := p.chans[0].q
			if q.len() != tt.wantN {
				t.Fatalf("%d copies queued, want %d", q.len(), tt.wantN)
			}
			for pkt := q.peek(); pkt != nil; pkt = q.peek() {
				if !bytes.Equal(pkt.Data, tt.want) || pkt.RuleID != tt.wantRule {
					t.Fatalf("copy rule %d %x, want rule %d %x", pkt.RuleID, pkt.Data, tt.wantRule, tt.want)
				}
				q.release()
			}
			if c := p.Counters().Snapshot().Channels[0]; c.SeqGaps != tt.wantGaps || c.Received != uint64(tt.wantN) {
				t.Errorf("channel counters %+v, want %d received, %d lost", c, tt.wantN, tt.wantGaps)
			}
		})
	}
}
