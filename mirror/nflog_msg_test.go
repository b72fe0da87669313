package mirror

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// nlattr encodes one netlink attribute, padded to 4 bytes.
func nlattr(typ uint16, v []byte) []byte {
	b := make([]byte, 4, align4(4+len(v)))
	binary.NativeEndian.PutUint16(b[0:2], uint16(4+len(v)))
	binary.NativeEndian.PutUint16(b[2:4], typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// nlmsg encodes one netlink message of type typ around body.
func nlmsg(typ uint16, body []byte) []byte {
	b := make([]byte, nlmsgHdrLen, align4(nlmsgHdrLen+len(body)))
	binary.NativeEndian.PutUint32(b[0:4], uint32(nlmsgHdrLen+len(body)))
	binary.NativeEndian.PutUint16(b[4:6], typ)
	b = append(b, body...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// packetMsg builds an NFULNL_MSG_PACKET message as the kernel writes it.
func packetMsg(family uint8, group uint16, attrs ...[]byte) []byte {
	body := []byte{family, 0, byte(group >> 8), byte(group)}
	for _, a := range attrs {
		body = append(body, a...)
	}
	return nlmsg(nfnlSubsysULOG<<8|nfulnlMsgPacket, body)
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

func TestParseNFLOGDatagram(t *testing.T) {
	ipv4 := []byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2, 0, 1, 0, 2, 0, 8, 0, 0}
	mac := []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0}
	vlan := nlattr(nfulaVLAN|0x8000, append(nlattr(nfulaVLANProto, be16(0x8100)), nlattr(nfulaVLANTCI, be16(42))...))
	full := packetMsg(5, 7,
		nlattr(nfulaPacketHdr, []byte{8, 0, 0, 0}),
		nlattr(nfulaPrefix, []byte("nfm:12\x00")),
		nlattr(nfulaHwType, be16(1)),
		nlattr(nfulaHwLen, be16(14)),
		nlattr(nfulaHwHeader, mac),
		nlattr(nfulaL2Hdr, mac),
		vlan,
		nlattr(nfulaPayload, ipv4),
		nlattr(nfulaSeq, be32(99)),
		nlattr(nfulaTimestamp, append(be64(1700000000), be64(123456)...)),
		nlattr(nfulaInDev, be32(4)),
		nlattr(nfulaOutDev, be32(9)),
	)
	tests := []struct {
		name    string
		dgram   []byte
		want    []nflogMsg
		wantErr bool
	}{
		{
			name:  "netdev copy with every attribute",
			dgram: full,
			want: []nflogMsg{{
				Family: 5, Group: 7, HwProtocol: 0x0800, Hook: 0, Payload: ipv4, Prefix: []byte("nfm:12"),
				HwHeader: mac, L2Hdr: mac, HwType: 1, HwLen: 14, Seq: 99, HasSeq: true,
				HasVLAN: true, VLANProto: 0x8100, VLANTCI: 42,
				TsSec: 1700000000, TsUsec: 123456, HasTs: true, InDev: 4, OutDev: 9,
			}},
		},
		{
			name: "batch of two with a done message",
			dgram: bytes.Join([][]byte{
				packetMsg(2, 1, nlattr(nfulaPayload, ipv4[:20]), nlattr(nfulaSeq, be32(1))),
				packetMsg(10, 1, nlattr(nfulaPayload, ipv4), nlattr(nfulaSeq, be32(2))),
				nlmsg(nlmsgDone, []byte{0, 0, 0, 0}),
			}, nil),
			want: []nflogMsg{
				{Family: 2, Group: 1, Payload: ipv4[:20], Seq: 1, HasSeq: true},
				{Family: 10, Group: 1, Payload: ipv4, Seq: 2, HasSeq: true},
			},
		},
		{
			name:  "other message types are skipped",
			dgram: append(nlmsg(nfnlSubsysULOG<<8|nfulnlMsgConfig, []byte{0, 0, 0, 0}), nlmsg(nlmsgNoop, nil)...),
		},
		{
			name:    "netlink error",
			dgram:   nlmsg(nlmsgError, binary.NativeEndian.AppendUint32(nil, uint32(0xffffffff-104))),
			wantErr: true,
		},
		{name: "short header", dgram: full[:10], wantErr: true},
		{name: "length past the end", dgram: full[:len(full)-8], wantErr: true},
		{
			name:    "attribute length past the message",
			dgram:   packetMsg(2, 1, []byte{200, 0, nfulaPayload, 0}),
			wantErr: true,
		},
		{
			name:    "short timestamp",
			dgram:   packetMsg(2, 1, nlattr(nfulaTimestamp, be32(1))),
			wantErr: true,
		},
		{
			name:    "short sequence attribute",
			dgram:   packetMsg(2, 1, nlattr(nfulaSeq, []byte{1, 2})),
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []nflogMsg
			var m nflogMsg
			err := parseNFLOGDatagram(tt.dgram, &m, func(m *nflogMsg) { got = append(got, *m) })
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

func msgEqual(a, b nflogMsg) bool {
	return a.Family == b.Family && a.Group == b.Group && a.HwProtocol == b.HwProtocol && a.Hook == b.Hook &&
		bytes.Equal(a.Payload, b.Payload) && bytes.Equal(a.Prefix, b.Prefix) &&
		bytes.Equal(a.HwHeader, b.HwHeader) && bytes.Equal(a.L2Hdr, b.L2Hdr) &&
		a.HwType == b.HwType && a.HwLen == b.HwLen && a.Seq == b.Seq && a.HasSeq == b.HasSeq &&
		a.HasVLAN == b.HasVLAN && a.VLANProto == b.VLANProto && a.VLANTCI == b.VLANTCI &&
		a.TsSec == b.TsSec && a.TsUsec == b.TsUsec && a.HasTs == b.HasTs && a.InDev == b.InDev && a.OutDev == b.OutDev
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func TestRuleIDFromPrefix(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"nfm:0", 0}, {"nfm:17", 17}, {"nfm:", -1}, {"nfm:1x", -1}, {"other:3", -1}, {"", -1},
		{"nfm:99999999999999999999", -1},
	}
	for _, tt := range tests {
		if got := ruleIDFromPrefix(tt.in); got != tt.want {
			t.Errorf("ruleIDFromPrefix(%q) = %d, want %d", tt.in, got, tt.want)
		}
		if got := ruleIDFromPrefix([]byte(tt.in)); got != tt.want {
			t.Errorf("ruleIDFromPrefix([]byte(%q)) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestIPOrigLen(t *testing.T) {
	v4 := make([]byte, 60)
	v4[0] = 0x45
	binary.BigEndian.PutUint16(v4[2:4], 1500)
	v6 := make([]byte, 60)
	v6[0] = 0x60
	binary.BigEndian.PutUint16(v6[4:6], 1460)
	whole := make([]byte, 40)
	whole[0] = 0x45
	binary.BigEndian.PutUint16(whole[2:4], 40)
	tests := []struct {
		name string
		in   []byte
		want int
	}{
		{"ipv4 truncated", v4, 1500},
		{"ipv6 truncated", v6, 1500},
		{"whole", whole, 0},
		{"empty", nil, 0},
		{"not ip", []byte{0x20, 0, 0, 0}, 0},
	}
	for _, tt := range tests {
		if got := ipOrigLen(tt.in); got != tt.want {
			t.Errorf("%s: ipOrigLen = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func FuzzParseNFLOGDatagram(f *testing.F) {
	ipv4 := []byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2}
	f.Add(packetMsg(2, 1, nlattr(nfulaPayload, ipv4), nlattr(nfulaPrefix, []byte("nfm:3\x00")), nlattr(nfulaSeq, be32(5))))
	f.Add(packetMsg(5, 2, nlattr(nfulaVLAN, nlattr(nfulaVLANTCI, be16(1))), nlattr(nfulaHwHeader, make([]byte, 14))))
	f.Add(nlmsg(nlmsgDone, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m nflogMsg
		_ = parseNFLOGDatagram(b, &m, func(m *nflogMsg) {
			// Every slice must lie inside the datagram.
			for _, s := range [][]byte{m.Payload, m.Prefix, m.HwHeader, m.L2Hdr} {
				if len(s) > len(b) {
					t.Fatalf("slice of %d bytes from a %d-byte datagram", len(s), len(b))
				}
			}
			_ = ruleIDFromPrefix(m.Prefix)
			_ = ipOrigLen(m.Payload)
		})
	})
}

func BenchmarkParseNFLOGDatagram(b *testing.B) {
	payload := make([]byte, 1400)
	payload[0] = 0x45
	dgram := bytes.Join([][]byte{
		packetMsg(2, 1, nlattr(nfulaPacketHdr, []byte{8, 0, 0, 0}), nlattr(nfulaPrefix, []byte("nfm:3\x00")),
			nlattr(nfulaPayload, payload), nlattr(nfulaSeq, be32(5))),
		packetMsg(2, 1, nlattr(nfulaPacketHdr, []byte{8, 0, 0, 0}), nlattr(nfulaPrefix, []byte("nfm:3\x00")),
			nlattr(nfulaPayload, payload), nlattr(nfulaSeq, be32(6))),
	}, nil)
	var m nflogMsg
	n := 0
	fn := func(m *nflogMsg) { n += ruleIDFromPrefix(m.Prefix) }
	b.ReportAllocs()
	b.SetBytes(int64(len(dgram)))
	for b.Loop() {
		if err := parseNFLOGDatagram(dgram, &m, fn); err != nil {
			b.Fatal(err)
		}
	}
	if n == 0 {
		b.Fatal("no message parsed")
	}
}
