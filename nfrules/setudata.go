package nfrules

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// A set's userdata is opaque to the kernel, but nft reads it back to list
// the set: the key's byte order (host-order keys are byte-swapped when they
// are printed), whether intervals are merged, and the expression the key
// was typed from ("typeof"), which gives the length of a concatenation's
// parts. nft 1.0.6 writes it in mnl_nft_set_add (src/mnl.c) and
// *_expr_build_udata; nfmirror writes the same bytes, so that nft lists its
// sets exactly as it lists its own.

// The userdata attributes (libnftnl include/udata.h).
const (
	udataKeyByteOrder = 0 // NFTNL_UDATA_SET_KEYBYTEORDER
	udataMerge        = 2 // NFTNL_UDATA_SET_MERGE_ELEMENTS
	udataKeyTypeof    = 3 // NFTNL_UDATA_SET_KEY_TYPEOF

	udataTypeofExpr = 0 // NFTNL_UDATA_SET_TYPEOF_EXPR
	udataTypeofData = 1 // NFTNL_UDATA_SET_TYPEOF_DATA
)

// nft's expression types (enum expr_types) and protocol descriptions (enum
// proto_desc_id) as they appear in the userdata.
const (
	exprPayload = 7
	exprMeta    = 9
	exprCt      = 12
	exprConcat  = 13
)

var protoDescIDs = map[string]uint32{
	"icmp": 4, "udp": 6, "udplite": 7, "tcp": 8, "sctp": 10, "th": 11,
	"ip": 12, "ip6": 13, "icmpv6": 14, "arp": 15, "vlan": 16, "ether": 17,
}

// nft's byte order values (enum byteorder).
const (
	byteOrderInvalid = 0
	byteOrderHost    = 1
	byteOrderBig     = 2
)

func udataPut(b []byte, typ byte, val []byte) []byte {
	return append(append(b, typ, byte(len(val))), val...)
}

func udataU32(b []byte, typ byte, v uint32) []byte {
	return udataPut(b, typ, binary.LittleEndian.AppendUint32(nil, v))
}

// byteOrder is nft's byte order of f's values.
func (f *Field) byteOrder() uint32 {
	if f.Order == HostEndian || f.Type.kind == kindString {
		return byteOrderHost
	}
	return byteOrderBig
}

// typeofUdata returns the description of f nft records, and false for a
// field nft cannot describe (one not aligned on bytes, whose key is a
// masked load).
func (f *Field) typeofUdata() ([]byte, bool) {
	var expr uint32
	var data []byte
	switch f.Kind {
	case KindMeta:
		expr = exprMeta
		data = udataU32(nil, 0, uint32(f.Meta))
	case KindCt:
		expr = exprCt
		dir := uint32(0xffffffff)
		if f.Dir >= 0 {
			dir = uint32(f.Dir)
		}
		data = udataU32(udataU32(nil, 0, uint32(f.Ct)), 1, dir)
	default:
		if !f.aligned() {
			return nil, false
		}
		expr = exprPayload
		data = udataU32(udataU32(nil, 0, protoDescIDs[f.Proto]), 1, uint32(f.Template))
		if f.Type == typeInteger || f.Type == typeGateway {
			data = udataU32(data, 4, uint32(f.Bits)) // the length of an integer field
		}
	}
	return udataPut(udataU32(nil, udataTypeofExpr, expr), udataTypeofData, data), true
}

// userdata returns the set's userdata as nft writes it.
func (s *anonSet) userdata() []byte {
	var b []byte
	switch {
	case s.concat:
		b = udataU32(b, udataKeyByteOrder, byteOrderInvalid)
	case len(s.fields) == 1:
		b = udataU32(b, udataKeyByteOrder, s.fields[0].byteOrder())
	}
	if s.interval {
		b = udataU32(b, udataMerge, 1)
	}
	if !s.concat {
		if len(s.fields) == 1 {
			if t, ok := s.fields[0].typeofUdata(); ok {
				b = udataPut(b, udataKeyTypeof, t)
			}
		}
		return b
	}
	// A concatenation lists its parts up to the first nft cannot
	// describe: a masked load, or a host-order part an interval set
	// converts to big-endian.
	var parts []byte
	for i, f := range s.fields {
		t, ok := f.typeofUdata()
		if !ok || s.interval && f.Order == HostEndian && f.Len() > 1 {
			break
		}
		parts = udataPut(parts, byte(i), t)
	}
	typeof := udataPut(udataU32(nil, udataTypeofExpr, exprConcat), udataTypeofData, parts)
	return udataPut(b, udataKeyTypeof, typeof)
}

// Attributes of a set description (linux/netfilter/nf_tables.h) that
// x/sys/unix lacks.
const (
	nftaSetDescConcat = 2 // NFTA_SET_DESC_CONCAT
	nftaSetFieldLen   = 1 // NFTA_SET_FIELD_LEN
)

// desc returns the payload of the set's NFTA_SET_DESC attribute as nft
// sends it: the number of elements and, for an interval set of a
// concatenation, the length of each part.
func (s *anonSet) desc() []byte {
	be := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	b := appendNLA(nil, unix.NFTA_SET_DESC_SIZE, be(uint32(len(s.elems))))
	if s.concat && s.interval {
		var fields []byte
		for _, f := range s.fields {
			fields = appendNLA(fields, unix.NLA_F_NESTED|unix.NFTA_LIST_ELEM, appendNLA(nil, nftaSetFieldLen, be(f.Len())))
		}
		b = appendNLA(b, unix.NLA_F_NESTED|nftaSetDescConcat, fields)
	}
	return b
}

// appendNLA appends a netlink attribute, padded to 4 bytes.
func appendNLA(b []byte, typ uint16, val []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(val)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, val...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
