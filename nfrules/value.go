package nfrules

import (
	"bytes"
	"encoding/binary"
	"slices"
)

// hostLittleEndian is true on little-endian machines.
var hostLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// encode turns a value of f (big-endian, f.valueLen() bytes; a string's
// bytes) into the register bytes the kernel compares: shifted into place for
// a sub-byte payload field, in host order for host-order fields, NUL-padded
// for strings.
func (f *Field) encode(val []byte) []byte {
	n := int(f.Len())
	if f.Type.kind == kindString {
		b := make([]byte, n)
		copy(b, val)
		return b
	}
	if s := f.shift(); s > 0 || f.Offset%8 != 0 {
		v := bytesUint(val) << s
		return uintBytes(v, n)
	}
	b := make([]byte, n)
	copy(b[n-min(n, len(val)):], val[max(0, len(val)-n):])
	if f.Order == HostEndian && hostLittleEndian {
		slices.Reverse(b)
	}
	return b
}

// decodeReg is the inverse of encode: the value (big-endian,
// f.valueLen() bytes) held in register bytes.
func (f *Field) decodeReg(reg []byte) []byte {
	if f.Type.kind == kindString {
		return bytes.Clone(reg)
	}
	b := bytes.Clone(reg)
	if f.Order == HostEndian && hostLittleEndian {
		slices.Reverse(b)
	}
	if f.Kind == KindPayload && !f.aligned() {
		v := bytesUint(b) >> f.shift()
		if m := f.Bits; m < 64 {
			v &= 1<<m - 1
		}
		return uintBytes(v, f.valueLen())
	}
	if len(b) > f.valueLen() {
		b = b[len(b)-f.valueLen():]
	}
	return b
}

// bigEndianKey converts register bytes of f to big-endian, the order the
// kernel compares intervals and <, > in (nft adds a byteorder expression
// for host-order fields).
func (f *Field) bigEndianKey(reg []byte) []byte {
	b := bytes.Clone(reg)
	if f.Order == HostEndian && hostLittleEndian {
		slices.Reverse(b)
	}
	return b
}

// fromBigEndianKey is the inverse of bigEndianKey.
func (f *Field) fromBigEndianKey(key []byte) []byte { return f.bigEndianKey(key) }

// maskBytes returns register bytes with the top bits ones of a value of
// f: the mask of a prefix of length bits.
func prefixMask(n, bits int) []byte {
	m := make([]byte, n)
	for i := 0; i < bits && i < n*8; i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

// andBytes returns a & b.
func andBytes(a, b []byte) []byte {
	r := make([]byte, len(a))
	for i := range a {
		r[i] = a[i] & b[i]
	}
	return r
}

// orBytes returns a | b.
func orBytes(a, b []byte) []byte {
	r := make([]byte, len(a))
	for i := range a {
		r[i] = a[i] | b[i]
	}
	return r
}

// xorBytes returns a ^ b.
func xorBytes(a, b []byte) []byte {
	r := make([]byte, len(a))
	for i := range a {
		r[i] = a[i] ^ b[i]
	}
	return r
}

// notBytes returns ^a.
func notBytes(a []byte) []byte {
	r := make([]byte, len(a))
	for i := range a {
		r[i] = ^a[i]
	}
	return r
}

// allOnes reports whether every bit of b is set.
func allOnes(b []byte) bool {
	for _, c := range b {
		if c != 0xff {
			return false
		}
	}
	return true
}

// isZero reports whether every byte of b is zero.
func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// increment returns b+1 as a big-endian number, and false on overflow.
func increment(b []byte) ([]byte, bool) {
	r := bytes.Clone(b)
	for i := len(r) - 1; i >= 0; i-- {
		r[i]++
		if r[i] != 0 {
			return r, true
		}
	}
	return nil, false
}

// decrement returns b-1 as a big-endian number (b must not be zero).
func decrement(b []byte) []byte {
	r := bytes.Clone(b)
	for i := len(r) - 1; i >= 0; i-- {
		r[i]--
		if r[i] != 0xff {
			break
		}
	}
	return r
}

// prefixLen returns the length of the contiguous run of ones at the top of
// mask, and whether mask is such a run followed by zeros only.
func prefixLen(mask []byte) (int, bool) {
	n := 0
	for n < len(mask)*8 && mask[n/8]&(0x80>>(n%8)) != 0 {
		n++
	}
	for i := n; i < len(mask)*8; i++ {
		if mask[i/8]&(0x80>>(i%8)) != 0 {
			return n, false
		}
	}
	return n, true
}
