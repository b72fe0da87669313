package nfnl_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/nfmirror/nfmirror/internal/nfnl"
	"github.com/nfmirror/nfmirror/internal/nfnl/nfnltest"

	"github.com/nfmirror/nfmirror/internal/pkt"
)

func TestParseNFLOGDatagram(t *testing.T) {
	ipv4 := []byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2, 0, 1, 0, 2, 0, 8, 0, 0}
	mac := []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0}
	vlan := nfnltest.Attr(nfnl.NfulaVLAN|0x8000, append(nfnltest.Attr(nfnl.NfulaVLANProto, nfnltest.BE16(0x8100)), nfnltest.Attr(nfnl.NfulaVLANTCI, nfnltest.BE16(42))...))
	full := nfnltest.NFLOGPacket(5, 7,
		nfnltest.Attr(nfnl.NfulaPacketHdr, []byte{8, 0, 0, 0}),
		nfnltest.Attr(nfnl.NfulaPrefix, []byte("nfm:12\x00")),
		nfnltest.Attr(nfnl.NfulaHwType, nfnltest.BE16(1)),
		nfnltest.Attr(nfnl.NfulaHwLen, nfnltest.BE16(14)),
		nfnltest.Attr(nfnl.NfulaHwHeader, mac),
		nfnltest.Attr(nfnl.NfulaL2Hdr, mac),
		vlan,
		nfnltest.Attr(nfnl.NfulaPayload, ipv4),
		nfnltest.Attr(nfnl.NfulaSeq, nfnltest.BE32(99)),
		nfnltest.Attr(nfnl.NfulaTimestamp, append(nfnltest.BE64(1700000000), nfnltest.BE64(123456)...)),
		nfnltest.Attr(nfnl.NfulaInDev, nfnltest.BE32(4)),
		nfnltest.Attr(nfnl.NfulaOutDev, nfnltest.BE32(9)),
	)
	tests := []struct {
		name    string
		dgram   []byte
		want    []nfnl.NFLOGMsg
		wantErr bool
	}{
		{
			name:  "netdev copy with every attribute",
			dgram: full,
			want: []nfnl.NFLOGMsg{{
				Family: 5, Group: 7, HwProtocol: 0x0800, Hook: 0, Payload: ipv4, Prefix: []byte("nfm:12"),
				HwHeader: mac, L2Hdr: mac, HwType: 1, HwLen: 14, Seq: 99, HasSeq: true,
				HasVLAN: true, VLANProto: 0x8100, VLANTCI: 42,
				TsSec: 1700000000, TsUsec: 123456, HasTs: true, InDev: 4, OutDev: 9,
			}},
		},
		{
			name: "batch of two with a done message",
			dgram: bytes.Join([][]byte{
				nfnltest.NFLOGPacket(2, 1, nfnltest.Attr(nfnl.NfulaPayload, ipv4[:20]), nfnltest.Attr(nfnl.NfulaSeq, nfnltest.BE32(1))),
				nfnltest.NFLOGPacket(10, 1, nfnltest.Attr(nfnl.NfulaPayload, ipv4), nfnltest.Attr(nfnl.NfulaSeq, nfnltest.BE32(2))),
				nfnltest.Msg(nfnl.NlmsgDone, []byte{0, 0, 0, 0}),
			}, nil),
			want: []nfnl.NFLOGMsg{
				{Family: 2, Group: 1, Payload: ipv4[:20], Seq: 1, HasSeq: true},
				{Family: 10, Group: 1, Payload: ipv4, Seq: 2, HasSeq: true},
			},
		},
		{
			name:  "other message types are skipped",
			dgram: append(nfnltest.Msg(nfnl.NfnlSubsysULOG<<8|nfnl.NfulnlMsgConfig, []byte{0, 0, 0, 0}), nfnltest.Msg(nfnl.NlmsgNoop, nil)...),
		},
		{
			name:    "netlink error",
			dgram:   nfnltest.Msg(nfnl.NlmsgError, binary.NativeEndian.AppendUint32(nil, uint32(0xffffffff-104))),
			wantErr: true,
		},
		{name: "short header", dgram: full[:10], wantErr: true},
		{name: "length past the end", dgram: full[:len(full)-8], wantErr: true},
		{
			name:    "attribute length past the message",
			dgram:   nfnltest.NFLOGPacket(2, 1, []byte{200, 0, nfnl.NfulaPayload, 0}),
			wantErr: true,
		},
		{
			name:    "short timestamp",
			dgram:   nfnltest.NFLOGPacket(2, 1, nfnltest.Attr(nfnl.NfulaTimestamp, nfnltest.BE32(1))),
			wantErr: true,
		},
		{
			name:    "short sequence attribute",
			dgram:   nfnltest.NFLOGPacket(2, 1, nfnltest.Attr(nfnl.NfulaSeq, []byte{1, 2})),
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []nfnl.NFLOGMsg
			var m nfnl.NFLOGMsg
			err := nfnl.ParseNFLOGDatagram(tt.dgram, &m, func(m *nfnl.NFLOGMsg) { got = append(got, *m) })
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d messages, want %d: %+v", len(got), len(tt.want), got)
			}
			for i := range got {
				if !msgEqual(got[i], tt.want[i]) {
					t.Errorf("message %d:\n got %+v\nwant %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func msgEqual(a, b nfnl.NFLOGMsg) bool {
	return a.Family == b.Family && a.Group == b.Group && a.HwProtocol == b.HwProtocol && a.Hook == b.Hook &&
		bytes.Equal(a.Payload, b.Payload) && bytes.Equal(a.Prefix, b.Prefix) &&
		bytes.Equal(a.HwHeader, b.HwHeader) && bytes.Equal(a.L2Hdr, b.L2Hdr) &&
		a.HwType == b.HwType && a.HwLen == b.HwLen && a.Seq == b.Seq && a.HasSeq == b.HasSeq &&
		a.HasVLAN == b.HasVLAN && a.VLANProto == b.VLANProto && a.VLANTCI == b.VLANTCI &&
		a.TsSec == b.TsSec && a.TsUsec == b.TsUsec && a.HasTs == b.HasTs && a.InDev == b.InDev && a.OutDev == b.OutDev
}

func FuzzParseNFLOGDatagram(f *testing.F) {
	ipv4 := []byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2}
	f.Add(nfnltest.NFLOGPacket(2, 1, nfnltest.Attr(nfnl.NfulaPayload, ipv4), nfnltest.Attr(nfnl.NfulaPrefix, []byte("nfm:3\x00")), nfnltest.Attr(nfnl.NfulaSeq, nfnltest.BE32(5))))
	f.Add(nfnltest.NFLOGPacket(5, 2, nfnltest.Attr(nfnl.NfulaVLAN, nfnltest.Attr(nfnl.NfulaVLANTCI, nfnltest.BE16(1))), nfnltest.Attr(nfnl.NfulaHwHeader, make([]byte, 14))))
	f.Add(nfnltest.Msg(nfnl.NlmsgDone, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m nfnl.NFLOGMsg
		_ = nfnl.ParseNFLOGDatagram(b, &m, func(m *nfnl.NFLOGMsg) {
			// Every slice must lie inside the datagram.
			for _, s := range [][]byte{m.Payload, m.Prefix, m.HwHeader, m.L2Hdr} {
				if len(s) > len(b) {
					t.Fatalf("slice of %d bytes from a %d-byte datagram", len(s), len(b))
				}
			}
			_ = pkt.OrigLen(m.Payload)
		})
	})
}

func BenchmarkParseNFLOGDatagram(b *testing.B) {
	payload := make([]byte, 1400)
	payload[0] = 0x45
	dgram := bytes.Join([][]byte{
		nfnltest.NFLOGPacket(2, 1, nfnltest.Attr(nfnl.NfulaPacketHdr, []byte{8, 0, 0, 0}), nfnltest.Attr(nfnl.NfulaPrefix, []byte("nfm:3\x00")),
			nfnltest.Attr(nfnl.NfulaPayload, payload), nfnltest.Attr(nfnl.NfulaSeq, nfnltest.BE32(5))),
		nfnltest.NFLOGPacket(2, 1, nfnltest.Attr(nfnl.NfulaPacketHdr, []byte{8, 0, 0, 0}), nfnltest.Attr(nfnl.NfulaPrefix, []byte("nfm:3\x00")),
			nfnltest.Attr(nfnl.NfulaPayload, payload), nfnltest.Attr(nfnl.NfulaSeq, nfnltest.BE32(6))),
	}, nil)
	var m nfnl.NFLOGMsg
	n := 0
	fn := func(m *nfnl.NFLOGMsg) { n += len(m.Prefix) }
	b.ReportAllocs()
	b.SetBytes(int64(len(dgram)))
	for b.Loop() {
		if err := nfnl.ParseNFLOGDatagram(dgram, &m, fn); err != nil {
			b.Fatal(err)
		}
	}
	if n == 0 {
		b.Fatal("no message parsed")
	}
}
