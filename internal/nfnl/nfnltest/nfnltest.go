// Package nfnltest builds netlink messages as the kernel writes them into a
// NETLINK_NETFILTER socket, for the tests of the packages that decode them.
package nfnltest

import (
	"encoding/binary"

	"github.com/nfmirror/nfmirror/internal/nfnl"
)

// Attr encodes one netlink attribute, padded to 4 bytes.
func Attr(typ uint16, v []byte) []byte {
	b := make([]byte, 4, align4(4+len(v)))
	binary.NativeEndian.PutUint16(b[0:2], uint16(4+len(v)))
	binary.NativeEndian.PutUint16(b[2:4], typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// Msg encodes one netlink message of type typ around body.
func Msg(typ uint16, body []byte) []byte {
	b := make([]byte, nfnl.NlmsgHdrLen, align4(nfnl.NlmsgHdrLen+len(body)))
	binary.NativeEndian.PutUint32(b[0:4], uint32(nfnl.NlmsgHdrLen+len(body)))
	binary.NativeEndian.PutUint16(b[4:6], typ)
	b = append(b, body...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// NFLOGPacket builds an NFULNL_MSG_PACKET message as the kernel writes it.
func NFLOGPacket(family uint8, group uint16, attrs ...[]byte) []byte {
	body := []byte{family, 0, byte(group >> 8), byte(group)}
	for _, a := range attrs {
		body = append(body, a...)
	}
	return Msg(nfnl.NfnlSubsysULOG<<8|nfnl.NfulnlMsgPacket, body)
}

// BE16 is v in network byte order.
func BE16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// NFQUEUEPacket builds an NFQNL_MSG_PACKET message as the kernel writes it.
func NFQUEUEPacket(queue uint16, attrs ...[]byte) []byte {
	body := []byte{2, 0, byte(queue >> 8), byte(queue)}
	for _, a := range attrs {
		body = append(body, a...)
	}
	return Msg(nfnl.NfnlSubsysQueue<<8|nfnl.NfqnlMsgPacket, body)
}

// QueuePacketHdr is struct nfqnl_msg_packet_hdr: id, hw_protocol, hook.
func QueuePacketHdr(id uint32) []byte {
	return append(BE32(id), 0x08, 0x00, 0)
}

// BE32 is v in network byte order.
func BE32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// BE64 is v in network byte order.
func BE64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func align4(n int) int { return (n + 3) &^ 3 }
