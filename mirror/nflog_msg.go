package mirror

import (
	"encoding/binary"
	"errors"
	"time"
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
	nlmsgHdrLen     = 16
	nlmsgNoop       = 0x1
	nlmsgError      = 0x2
	nlmsgDone       = 0x3
	nfnlSubsysULOG  = 4
	nfulnlMsgPacket = 0
	nfulnlMsgConfig = 1

	nfulaPacketHdr = 1
	nfulaTimestamp = 3
	nfulaInDev     = 4
	nfulaOutDev    = 5
	nfulaPayload   = 9
	nfulaPrefix    = 10
	nfulaSeq       = 12
	nfulaHwType    = 15
	nfulaHwHeader  = 16
	nfulaHwLen     = 17
	nfulaVLAN      = 20
	nfulaL2Hdr     = 21

	nfulaVLANProto = 1
	nfulaVLANTCI   = 2

	nlaTypeMask = 0x3fff // strips NLA_F_NESTED and NLA_F_NET_BYTEORDER

	// nfprotoNetdev is the nfgenmsg family of copies from netdev hooks
	// (NFPROTO_NETDEV); their hook is nfNetdevIngress or nfNetdevEgress.
	nfprotoNetdev   = 5
	nfNetdevIngress = 0
	nfNetdevEgress  = 1
)

// errShortMessage reports a message cut short or with an impossible length.
var errShortMessage = errors.New("truncated netlink message")

// nflogMsg is one decoded NFLOG copy. Its slices alias the datagram.
type nflogMsg struct {
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

// parseNFLOGDatagram calls fn for every NFLOG packet message in one datagram.
// Messages of other types are skipped; a netlink error message is returned as
// an error after the rest was decoded. msg is reused between calls: fn must
// not keep it.
func parseNFLOGDatagram(b []byte, msg *nflogMsg, fn func(*nflogMsg)) error {
	return walkNetlink(b, nfnlSubsysULOG<<8|nfulnlMsgPacket, func(body []byte) error {
		if err := parseNFLOGPacket(body, msg); err != nil {
			return err
		}
		fn(msg)
		return nil
	})
}

// parseNFLOGPacket decodes the body of one NFULNL_MSG_PACKET message.
func parseNFLOGPacket(b []byte, m *nflogMsg) error {
	*m = nflogMsg{}
	if len(b) < 4 {
		return errShortMessage
	}
	m.Family = b[0]
	m.Group = binary.BigEndian.Uint16(b[2:4])
	return walkAttrs(b[4:], func(typ uint16, v []byte) error {
		switch typ {
		case nfulaPacketHdr:
			if len(v) < 3 {
				return errShortMessage
			}
			m.HwProtocol = binary.BigEndian.Uint16(v[0:2])
			m.Hook = v[2]
		case nfulaPayload:
			m.Payload = v
		case nfulaTimestamp:
			if len(v) < 16 {
				return errShortMessage
			}
			m.TsSec, m.TsUsec, m.HasTs = binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]), true
		case nfulaInDev:
			if len(v) < 4 {
				return errShortMessage
			}
			m.InDev = binary.BigEndian.Uint32(v)
		case nfulaOutDev:
			if len(v) < 4 {
				return errShortMessage
			}
			m.OutDev = binary.BigEndian.Uint32(v)
		case nfulaPrefix:
			for i, c := range v {
				if c == 0 {
					v = v[:i]
					break
				}
			}
			m.Prefix = v
		case nfulaSeq:
			if len(v) < 4 {
				return errShortMessage
			}
			m.Seq, m.HasSeq = binary.BigEndian.Uint32(v), true
		case nfulaHwType:
			if len(v) < 2 {
				return errShortMessage
			}
			m.HwType = binary.BigEndian.Uint16(v)
		case nfulaHwHeader:
			m.HwHeader = v
		case nfulaHwLen:
			if len(v) < 2 {
				return errShortMessage
			}
			m.HwLen = binary.BigEndian.Uint16(v)
		case nfulaL2Hdr:
			m.L2Hdr = v
		case nfulaVLAN:
			return parseNFLOGVLAN(v, m)
		}
		return nil
	})
}

func parseNFLOGVLAN(b []byte, m *nflogMsg) error {
	return walkAttrs(b, func(typ uint16, v []byte) error {
		if len(v) < 2 {
			return nil
		}
		switch typ {
		case nfulaVLANProto:
			m.VLANProto, m.HasVLAN = binary.BigEndian.Uint16(v), true
		case nfulaVLANTCI:
			m.VLANTCI, m.HasVLAN = binary.BigEndian.Uint16(v), true
		}
		return nil
	})
}

// kernelTime returns the time of a kernel timestamp in seconds and
// microseconds (NFULA_TIMESTAMP, NFQA_TIMESTAMP), or fallback when the
// message had none.
func kernelTime(has bool, sec, usec uint64, fallback time.Time) time.Time {
	if !has || sec == 0 && usec == 0 {
		return fallback
	}
	return time.Unix(int64(sec), int64(usec)*1000)
}

func align4(n int) int { return (n + 3) &^ 3 }

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// ruleIDFromPrefix returns ID from a log prefix "nfm:ID", or -1.
func ruleIDFromPrefix[T string | []byte](p T) int {
	const tag = "nfm:"
	if len(p) <= len(tag) || string(p[:len(tag)]) != tag {
		return -1
	}
	id := 0
	for i := len(tag); i < len(p); i++ {
		c := p[i]
		if c < '0' || c > '9' || id > 1<<24 {
			return -1
		}
		id = id*10 + int(c-'0')
	}
	return id
}

// ipOrigLen returns the length an IP packet claims in its header when the copy
// b is shorter (truncated by a snaplen), else 0.
func ipOrigLen(b []byte) int {
	if len(b) < 1 {
		return 0
	}
	n := 0
	switch b[0] >> 4 {
	case 4:
		if len(b) < 4 {
			return 0
		}
		n = int(binary.BigEndian.Uint16(b[2:4]))
	case 6:
		if len(b) < 6 {
			return 0
		}
		n = 40 + int(binary.BigEndian.Uint16(b[4:6]))
	}
	if n > len(b) {
		return n
	}
	return 0
}
