package mirror

import (
	"encoding/binary"
	"fmt"
)

// This file decodes NFQUEUE packet messages (NFQNL_MSG_PACKET) and builds the
// verdict and configuration messages, see
// include/uapi/linux/netfilter/nfnetlink_queue.h. Unlike NFLOG, the kernel
// sends every queued packet in a datagram of its own.

// nfnetlink_queue constants (values checked against the uapi header).
const (
	nfnlSubsysQueue      = 3
	nfqnlMsgPacket       = 0
	nfqnlMsgConfig       = 2
	nfqnlMsgVerdictBatch = 3

	nfqaPacketHdr  = 1
	nfqaVerdictHdr = 2
	nfqaTimestamp  = 4
	nfqaInDev      = 5
	nfqaOutDev     = 6
	nfqaPayload    = 10
	nfqaCapLen     = 13

	nfqaCfgCmd         = 1
	nfqaCfgParams      = 2
	nfqaCfgQueueMaxLen = 3
	nfqaCfgMask        = 4
	nfqaCfgFlags       = 5

	nfqnlCfgCmdBind   = 1
	nfqnlCopyPacket   = 2
	nfqaCfgFFailOpen  = 1
	nfqaCfgFGSO       = 4
	nfAccept          = 1
	nlmFRequest       = 0x1
	nfqVerdictMsgSize = nlmsgHdrLen + 4 + 4 + 8
)

// nfqueueMsg is one decoded NFQUEUE packet. Payload aliases the datagram.
type nfqueueMsg struct {
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

// parseNFQUEUEDatagram decodes the NFQNL_MSG_PACKET messages of one datagram
// into msg and calls fn for each. A netlink error message (a refused verdict)
// is returned as an error after the rest of the datagram was decoded.
func parseNFQUEUEDatagram(b []byte, msg *nfqueueMsg, fn func(*nfqueueMsg)) error {
	return walkNetlink(b, nfnlSubsysQueue<<8|nfqnlMsgPacket, func(body []byte) error {
		if err := parseNFQUEUEPacket(body, msg); err != nil {
			return err
		}
		fn(msg)
		return nil
	})
}

// parseNFQUEUEPacket decodes the body of one NFQNL_MSG_PACKET message.
func parseNFQUEUEPacket(b []byte, m *nfqueueMsg) error {
	*m = nfqueueMsg{}
	if len(b) < 4 {
		return errShortMessage
	}
	m.Family = b[0]
	return walkAttrs(b[4:], func(typ uint16, v []byte) error {
		switch typ {
		case nfqaPacketHdr:
			if len(v) < 4 {
				return errShortMessage
			}
			m.ID, m.HasID = binary.BigEndian.Uint32(v), true
			if len(v) >= 7 { // packet_id, hw_protocol, hook
				m.Hook = v[6]
			}
		case nfqaPayload:
			m.Payload = v
		case nfqaTimestamp:
			if len(v) < 16 {
				return errShortMessage
			}
			m.TsSec, m.TsUsec, m.HasTs = binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]), true
		case nfqaInDev:
			if len(v) < 4 {
				return errShortMessage
			}
			m.InDev = binary.BigEndian.Uint32(v)
		case nfqaOutDev:
			if len(v) < 4 {
				return errShortMessage
			}
			m.OutDev = binary.BigEndian.Uint32(v)
		case nfqaCapLen:
			if len(v) < 4 {
				return errShortMessage
			}
			m.CapLen = binary.BigEndian.Uint32(v)
		}
		return nil
	})
}

// putNFQUEUEVerdictBatch writes into b (nfqVerdictMsgSize bytes) a message
// that accepts every packet of queue with an id up to id.
func putNFQUEUEVerdictBatch(b []byte, queue uint16, id uint32) {
	binary.NativeEndian.PutUint32(b[0:], nfqVerdictMsgSize)
	binary.NativeEndian.PutUint16(b[4:], nfnlSubsysQueue<<8|nfqnlMsgVerdictBatch)
	binary.NativeEndian.PutUint16(b[6:], nlmFRequest)
	binary.NativeEndian.PutUint32(b[8:], 0)  // sequence
	binary.NativeEndian.PutUint32(b[12:], 0) // port id: the kernel
	b[16], b[17] = 0, 0                      // AF_UNSPEC, NFNETLINK_V0
	binary.BigEndian.PutUint16(b[18:], queue)
	binary.NativeEndian.PutUint16(b[20:], 4+8)
	binary.NativeEndian.PutUint16(b[22:], nfqaVerdictHdr)
	binary.BigEndian.PutUint32(b[24:], nfAccept)
	binary.BigEndian.PutUint32(b[28:], id)
}

// walkNetlink calls fn with the body of every message of type typ in one
// datagram, skipping other types. A netlink error message is returned as an
// error once the datagram has been walked; fn's error stops the walk.
func walkNetlink(b []byte, typ uint16, fn func(body []byte) error) error {
	var nlerr error
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			return errShortMessage
		}
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		t := binary.NativeEndian.Uint16(b[4:6])
		if l < nlmsgHdrLen || l > len(b) {
			return errShortMessage
		}
		body := b[nlmsgHdrLen:l]
		b = b[min(align4(l), len(b)):]
		switch {
		case t == nlmsgNoop || t == nlmsgDone:
		case t == nlmsgError:
			if len(body) >= 4 {
				if e := int32(binary.NativeEndian.Uint32(body[:4])); e != 0 && nlerr == nil {
					nlerr = fmt.Errorf("netlink error message: errno %d", -e)
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

// walkAttrs calls fn for every netlink attribute in b, with its type
// stripped of the nested and byte-order flags.
func walkAttrs(b []byte, fn func(typ uint16, v []byte) error) error {
	for len(b) > 0 {
		if len(b) < 4 {
			return errShortMessage
		}
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4]) & nlaTypeMask
		if l < 4 || l > len(b) {
			return errShortMessage
		}
		v := b[4:l]
		b = b[min(align4(l), len(b)):]
		if err := fn(typ, v); err != nil {
			return err
		}
	}
	return nil
}
