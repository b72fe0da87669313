package mirror

import (
	"bytes"
	"testing"
	"time"

	"github.com/nfmirror/nfmirror/internal/nfnl/nfnltest"

	"github.com/nfmirror/nfmirror/internal/nfnl"
)

// TestNFLOGReaderHandle feeds hand-made kernel datagrams through the
// builtin reader's decoding and frame assembly and checks what the sink
// gets and what is counted.
func TestNFLOGReaderHandle(t *testing.T) {
	ip := []byte{0x45, 0, 0, 24, 0, 0, 0, 0, 64, 1, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2, 8, 0, 0, 0}
	mac := []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0}
	frame := append(append([]byte(nil), mac...), ip...)
	tagged := append(append(append([]byte(nil), mac[:12]...), 0x81, 0, 0, 42), append(mac[12:], ip...)...)
	vlan := nfnltest.Attr(nfnl.NfulaVLAN|0x8000, append(nfnltest.Attr(nfnl.NfulaVLANProto, nfnltest.BE16(0x8100)), nfnltest.Attr(nfnl.NfulaVLANTCI, nfnltest.BE16(42))...))
	// One group carries copies of every family and hook: each message says
	// which (the nfgenmsg family, the packet header's hook).
	const inet, netdev = 2, nfnl.NfprotoNetdev
	seqsAt := func(family uint8, hook byte, attrs [][]byte, seq ...uint32) []byte {
		var d []byte
		for _, s := range seq {
			hdr := nfnltest.Attr(nfnl.NfulaPacketHdr, []byte{8, 0, hook, 0})
			d = append(d, nfnltest.NFLOGPacket(family, 1, append(append([][]byte{hdr}, attrs...), nfnltest.Attr(nfnl.NfulaSeq, nfnltest.BE32(s)))...)...)
		}
		return d
	}
	ingress := func(attrs [][]byte, seq ...uint32) []byte { return seqsAt(netdev, nfnl.NfNetdevIngress, attrs, seq...) }
	egress := func(attrs [][]byte, seq ...uint32) []byte { return seqsAt(netdev, nfnl.NfNetdevEgress, attrs, seq...) }
	ipv4 := func(attrs [][]byte, seq ...uint32) []byte { return seqsAt(inet, 0, attrs, seq...) }
	tests := []struct {
		name     string
		ch       Channel
		dgram    []byte
		want     []byte
		wantL2   bool
		wantN    int
		wantGaps uint64
		wantRule int
	}{
		{
			name:  "inet copy with a rule prefix",
			dgram: ipv4([][]byte{nfnltest.Attr(nfnl.NfulaPayload, ip), nfnltest.Attr(nfnl.NfulaPrefix, []byte("nfm:1\x00"))}, 1, 2, 3),
			want:  ip, wantN: 3, wantRule: 1,
		},
		{
			name:  "sequence gaps count lost copies",
			dgram: ipv4([][]byte{nfnltest.Attr(nfnl.NfulaPayload, ip)}, 7, 8, 12, 13, 20),
			want:  ip, wantN: 5, wantGaps: 3 + 6, wantRule: -1,
		},
		{
			name:  "ingress frame is the L2 header then the payload",
			dgram: ingress([][]byte{nfnltest.Attr(nfnl.NfulaHwHeader, mac), nfnltest.Attr(nfnl.NfulaL2Hdr, mac), nfnltest.Attr(nfnl.NfulaPayload, ip), nfnltest.Attr(nfnl.NfulaPrefix, []byte("nfm:2\x00"))}, 1),
			want:  frame, wantL2: true, wantN: 1, wantRule: 2,
		},
		{
			name:  "ingress without L2HDR falls back to the hardware header",
			dgram: ingress([][]byte{nfnltest.Attr(nfnl.NfulaHwHeader, mac), nfnltest.Attr(nfnl.NfulaPayload, ip)}, 1),
			want:  frame, wantL2: true, wantN: 1, wantRule: -1,
		},
		{
			name:  "egress payload is already the frame",
			dgram: egress([][]byte{nfnltest.Attr(nfnl.NfulaL2Hdr, mac), nfnltest.Attr(nfnl.NfulaPayload, frame)}, 1),
			want:  frame, wantL2: true, wantN: 1, wantRule: -1,
		},
		{
			name:  "offloaded VLAN tag goes back after the MAC addresses",
			dgram: ingress([][]byte{vlan, nfnltest.Attr(nfnl.NfulaL2Hdr, mac), nfnltest.Attr(nfnl.NfulaPayload, ip)}, 1),
			want:  tagged, wantL2: true, wantN: 1, wantRule: -1,
		},
		{
			name:  "offloaded VLAN tag at egress",
			dgram: egress([][]byte{vlan, nfnltest.Attr(nfnl.NfulaPayload, frame)}, 1),
			want:  tagged, wantL2: true, wantN: 1, wantRule: -1,
		},
		{
			name: "one group, copies of every family and hook in the kernel's order",
			dgram: append(append(ipv4([][]byte{nfnltest.Attr(nfnl.NfulaPayload, ip)}, 1),
				ingress([][]byte{nfnltest.Attr(nfnl.NfulaL2Hdr, mac), nfnltest.Attr(nfnl.NfulaPayload, ip)}, 2)...),
				egress([][]byte{nfnltest.Attr(nfnl.NfulaPayload, frame)}, 3)...),
			wantN: 3, wantRule: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.ch.Dest = "m0"
			tt.ch.Netdev = true
			p := testPipeline(t, &recordSink{}, 64, tt.ch)
			r := &nflogReader{cs: p.chans[0]}
			if err := nfnl.ParseNFLOGDatagram(tt.dgram, &r.msg, r.handle); err != nil {
				t.Fatal(err)
			}
			q := p.chans[0].q
			if q.len() != tt.wantN {
				t.Fatalf("%d copies queued, want %d", q.len(), tt.wantN)
			}
			for i := 0; q.peek() != nil; i++ {
				pkt := q.peek()
				want, wantL2 := tt.want, tt.wantL2
				if want == nil { // the mixed group: IP, then two frames
					want, wantL2 = [][]byte{ip, frame, frame}[i], i > 0
				}
				if !bytes.Equal(pkt.Data, want) || pkt.RuleID != tt.wantRule || pkt.L2 != wantL2 {
					t.Fatalf("copy %d: rule %d L2 %v %x, want rule %d L2 %v %x", i, pkt.RuleID, pkt.L2, pkt.Data, tt.wantRule, wantL2, want)
				}
				q.release()
			}
			if c := p.Counters().Snapshot().Channels[0]; c.SeqGaps != tt.wantGaps || c.Received != uint64(tt.wantN) {
				t.Errorf("channel counters %+v, want %d received, %d lost", c, tt.wantN, tt.wantGaps)
			}
		})
	}
}

// TestNFLOGReaderMeta: the builtin reader tells each copy's hook, device and
// time from the message: the kernel's timestamp when there is one, else the
// time the datagram was read.
func TestNFLOGReaderMeta(t *testing.T) {
	ip := []byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 1, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2}
	frame := append([]byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0}, ip...)
	read := time.Unix(1800000000, 5000)
	stamp := nfnltest.Attr(nfnl.NfulaTimestamp, append(nfnltest.BE64(1700000000), nfnltest.BE64(250000)...))
	devs := [][]byte{nfnltest.Attr(nfnl.NfulaInDev, nfnltest.BE32(3)), nfnltest.Attr(nfnl.NfulaOutDev, nfnltest.BE32(8))}
	msg := func(family, hook uint8, payload []byte, attrs ...[]byte) []byte {
		attrs = append([][]byte{nfnltest.Attr(nfnl.NfulaPacketHdr, []byte{8, 0, hook, 0}), nfnltest.Attr(nfnl.NfulaPayload, payload)}, attrs...)
		return nfnltest.NFLOGPacket(family, 1, attrs...)
	}
	tests := []struct {
		name     string
		dgram    []byte
		wantHook Hook
		wantDev  int
		wantTime time.Time
	}{
		{"prerouting, stamped", msg(2, 0, ip, append(devs, stamp)...), HookPrerouting, 3, time.Unix(1700000000, 250000000)},
		{"input", msg(10, 1, ip, devs...), HookInput, 3, read},
		{"forward", msg(2, 2, ip, devs...), HookForward, 3, read},
		{"output leaves by the output device", msg(2, 3, ip, devs[1]), HookOutput, 8, read},
		{"postrouting unstamped gets the read time", msg(2, 4, ip, devs...), HookPostrouting, 8, read},
		{"netdev ingress", msg(nfnl.NfprotoNetdev, nfnl.NfNetdevIngress, ip, append(devs[:1], stamp, nfnltest.Attr(nfnl.NfulaL2Hdr, frame[:14]))...), HookIngress, 3, time.Unix(1700000000, 250000000)},
		{"netdev egress", msg(nfnl.NfprotoNetdev, nfnl.NfNetdevEgress, frame, devs[1], stamp), HookEgress, 8, time.Unix(1700000000, 250000000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPipeline(t, &recordSink{}, 4, Channel{Dest: "m0", Netdev: true})
			r := &nflogReader{cs: p.chans[0], now: read}
			if err := nfnl.ParseNFLOGDatagram(tt.dgram, &r.msg, r.handle); err != nil {
				t.Fatal(err)
			}
			pkt := p.chans[0].q.peek()
			if pkt == nil {
				t.Fatal("no copy queued")
			}
			if pkt.Hook != tt.wantHook || pkt.Dev != tt.wantDev || !pkt.Time.Equal(tt.wantTime) {
				t.Errorf("hook %v dev %d time %v, want %v %d %v", pkt.Hook, pkt.Dev, pkt.Time, tt.wantHook, tt.wantDev, tt.wantTime)
			}
		})
	}
}
