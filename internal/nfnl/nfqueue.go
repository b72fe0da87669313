package nfnl

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// This file decodes NFQUEUE packet messages (NFQNL_MSG_PACKET) and builds the
// verdict and configuration messages, see
// include/uapi/linux/netfilter/nfnetlink_queue.h. Unlike NFLOG, the kernel
// sends every queued packet in a datagram of its own.

// nfnetlink_queue constants (values checked against the uapi header).
const (
	NfnlSubsysQueue      = 3
	NfqnlMsgPacket       = 0
	NfqnlMsgConfig       = 2
	NfqnlMsgVerdictBatch = 3

	NfqaPacketHdr  = 1
	NfqaVerdictHdr = 2
	NfqaTimestamp  = 4
	NfqaInDev      = 5
	NfqaOutDev     = 6
	NfqaPayload    = 10
	NfqaCapLen     = 13

	NfqaCfgCmd         = 1
	NfqaCfgParams      = 2
	NfqaCfgQueueMaxLen = 3
	NfqaCfgMask        = 4
	NfqaCfgFlags       = 5

	NfqnlCfgCmdBind   = 1
	NfqnlCopyPacket   = 2
	NfqaCfgFFailOpen  = 1
	NfqaCfgFGSO       = 4
	NfAccept          = 1
	NlmFRequest       = 0x1
	NfqVerdictMsgSize = NlmsgHdrLen + 4 + 4 + 8
)

// NFQUEUEMsg is one decoded NFQUEUE packet. Payload aliases the datagram.
type NFQUEUEMsg struct {
	ID      uint32
	HasID   bool
	Payload []byte
	CapLen  uint32 // the packet's length when Payload was cut to the copy range; 0 if whole
	Family  uint8  // nfgenmsg family: NFPROTO_IPV4, NFPROTO_IPV6, ...
	Hook    uint8  // hook number in Family
	InDev   uint32 // input interface index, 0 if none
	OutDev  uint32 // output interface index, 0 if none
	TsSec   uint64 // the kernel's timestamp (NFQA_TIMESTAMP), if HasTs
	TsUsec  uint64
	HasTs   bool
}

// ParseNFQUEUEDatagram decodes the NFQNL_MSG_PACKET messages of one datagram
// into msg and calls fn for each. A netlink error message (a refused verdict)
// is returned as an error after the rest of the datagram was decoded.
func ParseNFQUEUEDatagram(b []byte, msg *NFQUEUEMsg, fn func(*NFQUEUEMsg)) error {
	return WalkNetlink(b, NfnlSubsysQueue<<8|NfqnlMsgPacket, func(body []byte) error {
		if err := parseNFQUEUEPacket(body, msg); err != nil {
			return err
		}
		fn(msg)
		return nil
	})
}

// parseNFQUEUEPacket decodes the body of one NFQNL_MSG_PACKET message.
func parseNFQUEUEPacket(b []byte, m *NFQUEUEMsg) error {
	*m = NFQUEUEMsg{}
	if len(b) < 4 {
		return ErrShortMessage
	}
	m.Family = b[0]
	return WalkAttrs(b[4:], func(typ uint16, v []byte) error {
		switch typ {
		case NfqaPacketHdr:
			if len(v) < 4 {
				return ErrShortMessage
			}
			m.ID, m.HasID = binary.BigEndian.Uint32(v), true
			if len(v) >= 7 { // packet_id, hw_protocol, hook
				m.Hook = v[6]
			}
		case NfqaPayload:
			m.Payload = v
		case NfqaTimestamp:
			if len(v) < 16 {
				return ErrShortMessage
			}
			m.TsSec, m.TsUsec, m.HasTs = binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]), true
		case NfqaInDev:
			if len(v) < 4 {
				return ErrShortMessage
			}
			m.InDev = binary.BigEndian.Uint32(v)
		case NfqaOutDev:
			if len(v) < 4 {
				return ErrShortMessage
			}
			m.OutDev = binary.BigEndian.Uint32(v)
		case NfqaCapLen:
			if len(v) < 4 {
				return ErrShortMessage
			}
			m.CapLen = binary.BigEndian.Uint32(v)
		}
		return nil
	})
}

// PutVerdictBatch writes into b (NfqVerdictMsgSize bytes) a message
// that accepts every packet of queue with an id up to id.
func PutVerdictBatch(b []byte, queue uint16, id uint32) {
	binary.NativeEndian.PutUint32(b[0:], NfqVerdictMsgSize)
	binary.NativeEndian.PutUint16(b[4:], NfnlSubsysQueue<<8|NfqnlMsgVerdictBatch)
	binary.NativeEndian.PutUint16(b[6:], NlmFRequest)
	binary.NativeEndian.PutUint32(b[8:], 0)  // sequence
	binary.NativeEndian.PutUint32(b[12:], 0) // port id: the kernel
	b[16], b[17] = 0, 0                      // AF_UNSPEC, NFNETLINK_V0
	binary.BigEndian.PutUint16(b[18:], queue)
	binary.NativeEndian.PutUint16(b[20:], 4+8)
	binary.NativeEndian.PutUint16(b[22:], NfqaVerdictHdr)
	binary.BigEndian.PutUint32(b[24:], NfAccept)
	binary.BigEndian.PutUint32(b[28:], id)
}

// WalkNetlink calls fn with the body of every message of type typ in one
// datagram, skipping other types. A netlink error message is returned as an
// error once the datagram has been walked; fn's error stops the walk.
func WalkNetlink(b []byte, typ uint16, fn func(body []byte) error) error {
	var nlerr error
	for len(b) > 0 {
		if len(b) < NlmsgHdrLen {
			return ErrShortMessage
		}
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		t := binary.NativeEndian.Uint16(b[4:6])
		if l < NlmsgHdrLen || l > len(b) {
			return ErrShortMessage
		}
		body := b[NlmsgHdrLen:l]
		b = b[min(align4(l), len(b)):]
		switch {
		case t == NlmsgNoop || t == NlmsgDone:
		case t == NlmsgError:
			if len(body) >= 4 {
				if e := int32(binary.NativeEndian.Uint32(body[:4])); e != 0 && nlerr == nil {
					nlerr = &OpError{Op: "netlink error message", Err: unix.Errno(-e)}
				}
			}
		case t == typ:
			if err := fn(body); err != nil {
				return err
			}
		}
	}
	return nlerr
}

// WalkAttrs calls fn for every netlink attribute in b, with its type
// stripped of the nested and byte-order flags.
func WalkAttrs(b []byte, fn func(typ uint16, v []byte) error) error {
	for len(b) > 0 {
		if len(b) < 4 {
			return ErrShortMessage
		}
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4]) & nlaTypeMask
		if l < 4 || l > len(b) {
			return ErrShortMessage
		}
		v := b[4:l]
		b = b[min(align4(l), len(b)):]
		if err := fn(typ, v); err != nil {
			return err
		}
	}
	return nil
}
