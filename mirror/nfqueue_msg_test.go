package mirror

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// queueMsg builds an NFQNL_MSG_PACKET message as the kernel writes it.
func queueMsg(queue uint16, attrs ...[]byte) []byte {
	body := []byte{2, 0, byte(queue >> 8), byte(queue)}
	for _, a := range attrs {
		body = append(body, a...)
	}
	return nlmsg(nfnlSubsysQueue<<8|nfqnlMsgPacket, body)
}

// queuePacketHdr is struct nfqnl_msg_packet_hdr: id, hw_protocol, hook.
func queuePacketHdr(id uint32) []byte {
	return append(be32(id), 0x08, 0x00, 0)
}

func TestParseNFQUEUEDatagram(t *testing.T) {
	ipv4 := []byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2, 0, 1, 0, 2, 0, 8, 0, 0}
	errMsg := nlmsg(nlmsgError, binary.NativeEndian.AppendUint32(nil, uint32(0xfffffffe))) // -ENOENT
	tests := []struct {
		name    string
		dgram   []byte
		want    []nfqueueMsg
		wantErr string
	}{
		{
			name:  "whole packet",
			dgram: queueMsg(7, nlattr(nfqaPacketHdr, queuePacketHdr(41)), nlattr(5, be32(3)), nlattr(nfqaPayload, ipv4)),
			want:  []nfqueueMsg{{ID: 41, HasID: true, Payload: ipv4, Family: 2, InDev: 3}},
		},
		{
			name: "hook, devices and timestamp",
			dgram: queueMsg(7, nlattr(nfqaPacketHdr, append(be32(46), 0x86, 0xdd, 4)), nlattr(nfqaTimestamp, append(be64(1700000001), be64(7)...)),
				nlattr(nfqaInDev, be32(2)), nlattr(nfqaOutDev, be32(5)), nlattr(nfqaPayload, ipv4)),
			want: []nfqueueMsg{{ID: 46, HasID: true, Payload: ipv4, Family: 2, Hook: 4, InDev: 2, OutDev: 5, TsSec: 1700000001, TsUsec: 7, HasTs: true}},
		},
		{
			name:    "short timestamp",
			dgram:   queueMsg(7, nlattr(nfqaPacketHdr, queuePacketHdr(47)), nlattr(nfqaTimestamp, be32(1))),
			wantErr: "truncated",
		},
		{
			name:  "cut to the copy range",
			dgram: queueMsg(7, nlattr(nfqaPacketHdr, queuePacketHdr(42)), nlattr(nfqaCapLen, be32(1500)), nlattr(nfqaPayload, ipv4[:20])),
			want:  []nfqueueMsg{{ID: 42, HasID: true, Payload: ipv4[:20], CapLen: 1500, Family: 2}},
		},
		{
			name:  "no payload",
			dgram: queueMsg(7, nlattr(nfqaPacketHdr, queuePacketHdr(43))),
			want:  []nfqueueMsg{{ID: 43, HasID: true, Family: 2}},
		},
		{
			name:  "other message types are skipped",
			dgram: append(nlmsg(nlmsgNoop, nil), queueMsg(7, nlattr(nfqaPacketHdr, queuePacketHdr(44)))...),
			want:  []nfqueueMsg{{ID: 44, HasID: true, Family: 2}},
		},
		{
			name:    "a refused verdict is an error, after the packets",
			dgram:   append(errMsg, queueMsg(7, nlattr(nfqaPacketHdr, queuePacketHdr(45)))...),
			want:    []nfqueueMsg{{ID: 45, HasID: true, Family: 2}},
			wantErr: "errno 2",
		},
		{
			name:    "short packet header",
			dgram:   queueMsg(7, nlattr(nfqaPacketHdr, []byte{1, 2})),
			wantErr: "truncated",
		},
		{
			name:    "attribute longer than the message",
			dgram:   queueMsg(7, []byte{200, 0, nfqaPayload, 0}),
			wantErr: "truncated",
		},
		{
			name:    "message longer than the datagram",
			dgram:   queueMsg(7, nlattr(nfqaPacketHdr, queuePacketHdr(1)))[:20],
			wantErr: "truncated",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []nfqueueMsg
			var m nfqueueMsg
			err := parseNFQUEUEDatagram(tt.dgram, &m, func(m *nfqueueMsg) { got = append(got, *m) })
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("%d messages, want %d: %+v", len(got), len(tt.want), got)
			}
			for i := range got {
				g, w := got[i], tt.want[i]
				if !bytes.Equal(g.Payload, w.Payload) || g.ID != w.ID || g.HasID != w.HasID || g.CapLen != w.CapLen ||
					g.Family != w.Family || g.Hook != w.Hook || g.InDev != w.InDev || g.OutDev != w.OutDev ||
					g.TsSec != w.TsSec || g.TsUsec != w.TsUsec || g.HasTs != w.HasTs {
					t.Errorf("message %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

// TestNFQUEUEVerdictBatch checks the verdict message byte for byte against
// what libnetfilter_queue's nfq_set_verdict_batch sends: nlmsghdr, nfgenmsg
// with the queue number, and NFQA_VERDICT_HDR {NF_ACCEPT, id}.
func TestNFQUEUEVerdictBatch(t *testing.T) {
	var b [nfqVerdictMsgSize]byte
	putNFQUEUEVerdictBatch(b[:], 6001, 0x01020304)
	want := nlmsg(nfnlSubsysQueue<<8|nfqnlMsgVerdictBatch,
		append([]byte{0, 0, 0x17, 0x71}, nlattr(nfqaVerdictHdr, []byte{0, 0, 0, 1, 1, 2, 3, 4})...))
	binary.NativeEndian.PutUint16(want[6:8], nlmFRequest)
	if !bytes.Equal(b[:], want) {
		t.Errorf("verdict\n got % x\nwant % x", b[:], want)
	}
}

func FuzzParseNFQUEUEDatagram(f *testing.F) {
	f.Add(queueMsg(1, nlattr(nfqaPacketHdr, queuePacketHdr(9)), nlattr(nfqaPayload, []byte{0x45, 0, 0, 20})))
	f.Add(nlmsg(nlmsgError, be32(0)))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m nfqueueMsg
		_ = parseNFQUEUEDatagram(b, &m, func(m *nfqueueMsg) {
			if len(m.Payload) > len(b) {
				t.Fatalf("payload of %d bytes from a %d-byte datagram", len(m.Payload), len(b))
			}
		})
	})
}
