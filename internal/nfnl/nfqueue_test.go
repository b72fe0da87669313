package nfnl_test

import (
	"errors"

	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nfmirror/nfmirror/internal/nfnl"
	"github.com/nfmirror/nfmirror/internal/nfnl/nfnltest"
)

func TestParseNFQUEUEDatagram(t *testing.T) {
	ipv4 := []byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2, 0, 1, 0, 2, 0, 8, 0, 0}
	errMsg := nfnltest.Msg(nfnl.NlmsgError, binary.NativeEndian.AppendUint32(nil, uint32(0xfffffffe))) // -ENOENT
	tests := []struct {
		name    string
		dgram   []byte
		want    []nfnl.NFQUEUEMsg
		wantErr string
		errno   unix.Errno // the kernel's errno, kept in the error
	}{
		{
			name:  "whole packet",
			dgram: nfnltest.NFQUEUEPacket(7, nfnltest.Attr(nfnl.NfqaPacketHdr, nfnltest.QueuePacketHdr(41)), nfnltest.Attr(5, nfnltest.BE32(3)), nfnltest.Attr(nfnl.NfqaPayload, ipv4)),
			want:  []nfnl.NFQUEUEMsg{{ID: 41, HasID: true, Payload: ipv4, Family: 2, InDev: 3}},
		},
		{
			name: "hook, devices and timestamp",
			dgram: nfnltest.NFQUEUEPacket(7, nfnltest.Attr(nfnl.NfqaPacketHdr, append(nfnltest.BE32(46), 0x86, 0xdd, 4)), nfnltest.Attr(nfnl.NfqaTimestamp, append(nfnltest.BE64(1700000001), nfnltest.BE64(7)...)),
				nfnltest.Attr(nfnl.NfqaInDev, nfnltest.BE32(2)), nfnltest.Attr(nfnl.NfqaOutDev, nfnltest.BE32(5)), nfnltest.Attr(nfnl.NfqaPayload, ipv4)),
			want: []nfnl.NFQUEUEMsg{{ID: 46, HasID: true, Payload: ipv4, Family: 2, Hook: 4, InDev: 2, OutDev: 5, TsSec: 1700000001, TsUsec: 7, HasTs: true}},
		},
		{
			name:    "short timestamp",
			dgram:   nfnltest.NFQUEUEPacket(7, nfnltest.Attr(nfnl.NfqaPacketHdr, nfnltest.QueuePacketHdr(47)), nfnltest.Attr(nfnl.NfqaTimestamp, nfnltest.BE32(1))),
			wantErr: "truncated",
		},
		{
			name:  "cut to the copy range",
			dgram: nfnltest.NFQUEUEPacket(7, nfnltest.Attr(nfnl.NfqaPacketHdr, nfnltest.QueuePacketHdr(42)), nfnltest.Attr(nfnl.NfqaCapLen, nfnltest.BE32(1500)), nfnltest.Attr(nfnl.NfqaPayload, ipv4[:20])),
			want:  []nfnl.NFQUEUEMsg{{ID: 42, HasID: true, Payload: ipv4[:20], CapLen: 1500, Family: 2}},
		},
		{
			name:  "no payload",
			dgram: nfnltest.NFQUEUEPacket(7, nfnltest.Attr(nfnl.NfqaPacketHdr, nfnltest.QueuePacketHdr(43))),
			want:  []nfnl.NFQUEUEMsg{{ID: 43, HasID: true, Family: 2}},
		},
		{
			name:  "other message types are skipped",
			dgram: append(nfnltest.Msg(nfnl.NlmsgNoop, nil), nfnltest.NFQUEUEPacket(7, nfnltest.Attr(nfnl.NfqaPacketHdr, nfnltest.QueuePacketHdr(44)))...),
			want:  []nfnl.NFQUEUEMsg{{ID: 44, HasID: true, Family: 2}},
		},
		{
			name:    "a refused verdict is an error, after the packets",
			dgram:   append(errMsg, nfnltest.NFQUEUEPacket(7, nfnltest.Attr(nfnl.NfqaPacketHdr, nfnltest.QueuePacketHdr(45)))...),
			want:    []nfnl.NFQUEUEMsg{{ID: 45, HasID: true, Family: 2}},
			wantErr: "no such file or directory",
			errno:   unix.ENOENT,
		},
		{
			name:    "short packet header",
			dgram:   nfnltest.NFQUEUEPacket(7, nfnltest.Attr(nfnl.NfqaPacketHdr, []byte{1, 2})),
			wantErr: "truncated",
		},
		{
			name:    "attribute longer than the message",
			dgram:   nfnltest.NFQUEUEPacket(7, []byte{200, 0, nfnl.NfqaPayload, 0}),
			wantErr: "truncated",
		},
		{
			name:    "message longer than the datagram",
			dgram:   nfnltest.NFQUEUEPacket(7, nfnltest.Attr(nfnl.NfqaPacketHdr, nfnltest.QueuePacketHdr(1)))[:20],
			wantErr: "truncated",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []nfnl.NFQUEUEMsg
			var m nfnl.NFQUEUEMsg
			err := nfnl.ParseNFQUEUEDatagram(tt.dgram, &m, func(m *nfnl.NFQUEUEMsg) { got = append(got, *m) })
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if tt.errno != 0 && !errors.Is(err, tt.errno) {
				t.Errorf("err = %v, want one that errors.Is %v", err, tt.errno)
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
	var b [nfnl.NfqVerdictMsgSize]byte
	nfnl.PutVerdictBatch(b[:], 6001, 0x01020304)
	want := nfnltest.Msg(nfnl.NfnlSubsysQueue<<8|nfnl.NfqnlMsgVerdictBatch,
		append([]byte{0, 0, 0x17, 0x71}, nfnltest.Attr(nfnl.NfqaVerdictHdr, []byte{0, 0, 0, 1, 1, 2, 3, 4})...))
	binary.NativeEndian.PutUint16(want[6:8], nfnl.NlmFRequest)
	if !bytes.Equal(b[:], want) {
		t.Errorf("verdict\n got % x\nwant % x", b[:], want)
	}
}

func FuzzParseNFQUEUEDatagram(f *testing.F) {
	f.Add(nfnltest.NFQUEUEPacket(1, nfnltest.Attr(nfnl.NfqaPacketHdr, nfnltest.QueuePacketHdr(9)), nfnltest.Attr(nfnl.NfqaPayload, []byte{0x45, 0, 0, 20})))
	f.Add(nfnltest.Msg(nfnl.NlmsgError, nfnltest.BE32(0)))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m nfnl.NFQUEUEMsg
		_ = nfnl.ParseNFQUEUEDatagram(b, &m, func(m *nfnl.NFQUEUEMsg) {
			if len(m.Payload) > len(b) {
				t.Fatalf("payload of %d bytes from a %d-byte datagram", len(m.Payload), len(b))
			}
		})
	})
}
