package nfnl

import (
	"encoding/binary"
	"errors"
)

// This file decodes NFLOG packet messages (NFULNL_MSG_PACKET) as the kernel
// writes them into a NETLINK_NETFILTER socket, see
// include/uapi/linux/netfilter/nfnetlink_log.h. One datagram holds one or
// more netlink messages back to back (the kernel batches up to qthresh copies
// or until its timeout), each: nlmsghdr (16 bytes, host order), nfgenmsg (4
// bytes: family, version, group in network order), then attributes.
//
// go-nflog v2.3.0 drops copies whose nfgenmsg family is NFPROTO_NETDEV (5),
// which is every copy from a netdev ingress or egress hook, hence this
// decoder.

// Netlink and nfnetlink_log constants (linux/netlink.h, nfnetlink_log.h;
// the NFULA_ values checked against enum nfulnl_attr_type of the uapi header).
const (
	NlmsgHdrLen     = 16
	NlmsgNoop       = 0x1
	NlmsgError      = 0x2
	NlmsgDone       = 0x3
	NfnlSubsysULOG  = 4
	NfulnlMsgPacket = 0
	NfulnlMsgConfig = 1

	NfulaPacketHdr = 1
	NfulaTimestamp = 3
	NfulaInDev     = 4
	NfulaOutDev    = 5
	NfulaPayload   = 9
	NfulaPrefix    = 10
	NfulaSeq       = 12
	NfulaHwType    = 15
	NfulaHwHeader  = 16
	NfulaHwLen     = 17
	NfulaVLAN      = 20
	NfulaL2Hdr     = 21

	NfulaVLANProto = 1
	NfulaVLANTCI   = 2

	nlaTypeMask = 0x3fff // strips NLA_F_NESTED and NLA_F_NET_BYTEORDER

	// NfprotoNetdev is the nfgenmsg family of copies from netdev hooks
	// (NFPROTO_NETDEV); their hook is NfNetdevIngress or NfNetdevEgress.
	NfprotoNetdev   = 5
	NfNetdevIngress = 0
	NfNetdevEgress  = 1
)

// NFLOG configuration attributes (nfnetlink_log.h, enum nfulnl_attr_config).
const (
	NfulaCfgCmd      = 1
	NfulaCfgMode     = 2
	NfulaCfgNlBufSiz = 3
	NfulaCfgTimeout  = 4
	NfulaCfgQThresh  = 5
	NfulaCfgFlags    = 6

	NfulnlCfgCmdBind = 1
	NfulnlCopyPacket = 2
	NfulnlCfgFSeq    = 1
)

// ErrShortMessage reports a message cut short or with an impossible length.
var ErrShortMessage = errors.New("truncated netlink message")

// NFLOGMsg is one decoded NFLOG copy. Its slices alias the datagram.
type NFLOGMsg struct {
	Family     uint8
	Group      uint16
	HwProtocol uint16 // ethertype, from the packet header
	Hook       uint8
	Payload    []byte // from skb->data: the network header at ingress/inet hooks, the MAC header at egress
	Prefix     []byte // without the trailing NUL
	HwHeader   []byte // the MAC header as received (ingress)
	L2Hdr      []byte // the MAC header, netdev and bridge families
	HwType     uint16
	InDev      uint32 // input interface index, 0 if none
	OutDev     uint32 // output interface index, 0 if none
	TsSec      uint64 // the kernel's timestamp (NFULA_TIMESTAMP), if HasTs
	TsUsec     uint64
	HasTs      bool
	HwLen      uint16
	Seq        uint32
	HasSeq     bool
	HasVLAN    bool // the tag was offloaded into skb metadata; see VLANProto, VLANTCI
	VLANProto  uint16
	VLANTCI    uint16
}

// ParseNFLOGDatagram calls fn for every NFLOG packet message in one datagram.
// Messages of other types are skipped; a netlink error message is returned as
// an error after the rest was decoded. msg is reused between calls: fn must
// not keep it.
func ParseNFLOGDatagram(b []byte, msg *NFLOGMsg, fn func(*NFLOGMsg)) error {
	return WalkNetlink(b, NfnlSubsysULOG<<8|NfulnlMsgPacket, func(body []byte) error {
		if err := parseNFLOGPacket(body, msg); err != nil {
			return err
		}
		fn(msg)
		return nil
	})
}

// parseNFLOGPacket decodes the body of one NFULNL_MSG_PACKET message.
func parseNFLOGPacket(b []byte, m *NFLOGMsg) error {
	*m = NFLOGMsg{}
	if len(b) < 4 {
		return ErrShortMessage
	}
	m.Family = b[0]
	m.Group = binary.BigEndian.Uint16(b[2:4])
	return WalkAttrs(b[4:], func(typ uint16, v []byte) error {
		switch typ {
		case NfulaPacketHdr:
			if len(v) < 3 {
				return ErrShortMessage
			}
			m.HwProtocol = binary.BigEndian.Uint16(v[0:2])
			m.Hook = v[2]
		case NfulaPayload:
			m.Payload = v
		case NfulaTimestamp:
			if len(v) < 16 {
				return ErrShortMessage
			}
			m.TsSec, m.TsUsec, m.HasTs = binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]), true
		case NfulaInDev:
			if len(v) < 4 {
				return ErrShortMessage
			}
			m.InDev = binary.BigEndian.Uint32(v)
		case NfulaOutDev:
			if len(v) < 4 {
				return ErrShortMessage
			}
			m.OutDev = binary.BigEndian.Uint32(v)
		case NfulaPrefix:
			for i, c := range v {
				if c == 0 {
					v = v[:i]
					break
				}
			}
			m.Prefix = v
		case NfulaSeq:
			if len(v) < 4 {
				return ErrShortMessage
			}
			m.Seq, m.HasSeq = binary.BigEndian.Uint32(v), true
		case NfulaHwType:
			if len(v) < 2 {
				return ErrShortMessage
			}
			m.HwType = binary.BigEndian.Uint16(v)
		case NfulaHwHeader:
			m.HwHeader = v
		case NfulaHwLen:
			if len(v) < 2 {
				return ErrShortMessage
			}
			m.HwLen = binary.BigEndian.Uint16(v)
		case NfulaL2Hdr:
			m.L2Hdr = v
		case NfulaVLAN:
			return parseNFLOGVLAN(v, m)
		}
		return nil
	})
}

func parseNFLOGVLAN(b []byte, m *NFLOGMsg) error {
	return WalkAttrs(b, func(typ uint16, v []byte) error {
		if len(v) < 2 {
			return nil
		}
		switch typ {
		case NfulaVLANProto:
			m.VLANProto, m.HasVLAN = binary.BigEndian.Uint16(v), true
		case NfulaVLANTCI:
			m.VLANTCI, m.HasVLAN = binary.BigEndian.Uint16(v), true
		}
		return nil
	})
}

func align4(n int) int { return (n + 3) &^ 3 }
