package pkt

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// TCP flags the Segmenter treats specially.
const (
	TCPFIN = 0x01
	TCPPSH = 0x08
	TCPCWR = 0x80
)

// ErrTooSmallMTU is returned when the headers alone do not fit the MTU.
var ErrTooSmallMTU = errors.New("headers do not fit the port MTU")

// Segmenter turns one IP copy into the packets to put on a port: the copy
// itself with a partial checksum completed (see CompleteChecksum), or, when
// it is larger than the MTU, TCP segments (their checksums computed) or IP
// fragments (the packet's own checksum completed first). It reuses its
// buffers: what Split returns is valid until the next call. It is not safe
// for concurrent use.
type Segmenter struct {
	buf    []byte
	offs   []int // start of each frame in buf, then the end
	frames [][]byte
	fragID uint32 // next IPv6 fragment identification
}

// Split returns the IP packets to send for the IP packet pkt on a port with
// the given MTU. A truncated copy is returned as it is. Before fragmenting, it
// completes a partial checksum in pkt itself; it changes pkt in no other way.
func (s *Segmenter) Split(pkt []byte, mtu int, truncated bool) ([][]byte, error) {
	s.buf = s.buf[:0]
	s.offs = s.offs[:0]
	l, ok := Parse(pkt)
	switch {
	case truncated || !ok:
		// As seen: a truncated copy cannot be checksummed or segmented.
		s.emit(pkt)
	case l.End <= mtu:
		CompleteChecksumLayout(s.emit(pkt[:l.End]), l)
	case l.Proto == ProtoTCP && l.Whole:
		if err := s.tcp(pkt, l, mtu); err != nil {
			return nil, err
		}
	case l.V4:
		CompleteChecksumLayout(pkt, l)
		if err := s.frag4(pkt, l, mtu); err != nil {
			return nil, err
		}
	default:
		CompleteChecksumLayout(pkt, l)
		if err := s.frag6(pkt, l, mtu); err != nil {
			return nil, err
		}
	}
	s.offs = append(s.offs, len(s.buf))
	s.frames = s.frames[:0]
	for i := 0; i+1 < len(s.offs); i++ {
		s.frames = append(s.frames, s.buf[s.offs[i]:s.offs[i+1]])
	}
	return s.frames, nil
}

// emit starts a new frame holding the parts given.
func (s *Segmenter) emit(parts ...[]byte) []byte {
	start := len(s.buf)
	s.offs = append(s.offs, start)
	for _, p := range parts {
		s.buf = append(s.buf, p...)
	}
	return s.buf[start:]
}

// grow makes room for n more bytes so that emit does not reallocate while
// earlier frames are still being patched.
func (s *Segmenter) grow(n int) {
	if cap(s.buf)-len(s.buf) < n {
		nb := make([]byte, len(s.buf), len(s.buf)+n)
		copy(nb, s.buf)
		s.buf = nb
	}
}

// tcp splits a TCP super-packet into MSS-sized segments: sequence numbers
// advance, FIN and PSH stay on the last segment only, CWR on the first only,
// IPv4 ids increase by one per segment, and every length and checksum is
// recomputed.
func (s *Segmenter) tcp(pkt []byte, l Layout, mtu int) error {
	if l.HdrLen+20 > l.End {
		return fmt.Errorf("tcp header: %w", ErrShort)
	}
	thl := int(pkt[l.HdrLen+12]>>4) * 4
	if thl < 20 || l.HdrLen+thl > l.End {
		return fmt.Errorf("tcp header length %d: %w", thl, ErrShort)
	}
	hdrs := l.HdrLen + thl
	mss := mtu - hdrs
	if mss <= 0 {
		return fmt.Errorf("segment tcp for mtu %d: %w", mtu, ErrTooSmallMTU)
	}
	payload := pkt[hdrs:l.End]
	n := (len(payload) + mss - 1) / mss
	s.grow(len(payload) + n*hdrs)
	seq := binary.BigEndian.Uint32(pkt[l.HdrLen+4:])
	flags := pkt[l.HdrLen+13]
	var id uint16
	if l.V4 {
		id = binary.BigEndian.Uint16(pkt[4:])
	}
	for i, off := 0, 0; off < len(payload); i, off = i+1, off+mss {
		chunk := payload[off:min(off+mss, len(payload))]
		seg := s.emit(pkt[:hdrs], chunk)
		if l.V4 {
			binary.BigEndian.PutUint16(seg[2:], uint16(len(seg)))
			binary.BigEndian.PutUint16(seg[4:], id+uint16(i))
			IPv4HeaderChecksum(seg[:l.HdrLen])
		} else {
			binary.BigEndian.PutUint16(seg[4:], uint16(len(seg)-40))
		}
		th := seg[l.HdrLen:]
		binary.BigEndian.PutUint32(th[4:], seq+uint32(off))
		f := flags
		if off+len(chunk) < len(payload) {
			f &^= TCPFIN | TCPPSH
		}
		if i > 0 {
			f &^= TCPCWR
		}
		th[13] = f
		L4Checksum(seg, ProtoTCP, th)
	}
	return nil
}

// ErrShort reports a packet shorter than its headers say.
var ErrShort = errors.New("packet shorter than its headers")

// frag4 splits an IPv4 packet into fragments of at most mtu bytes. A packet that is
// already a fragment is split further (offsets add up, the last piece keeps
// the original MF bit). DF is ignored: this is a copy.
func (s *Segmenter) frag4(pkt []byte, l Layout, mtu int) error {
	ihl := l.HdrLen
	per := (mtu - ihl) &^ 7
	if per <= 0 {
		return fmt.Errorf("fragment ipv4 for mtu %d: %w", mtu, ErrTooSmallMTU)
	}
	data := pkt[ihl:l.End]
	n := (len(data) + per - 1) / per
	s.grow(len(data) + n*ihl)
	fo := binary.BigEndian.Uint16(pkt[6:])
	base := int(fo&0x1fff) * 8
	lastMF := fo & 0x2000
	// Non-first fragments carry only the options with the copied bit.
	var optBuf [40]byte
	later := laterOptions(optBuf[:0], pkt[20:ihl])
	var hdr2 [60]byte
	copy(hdr2[:], pkt[:20])
	copy(hdr2[20:], later)
	ihl2 := 20 + len(later)
	hdr2[0] = 0x40 | byte(ihl2/4)
	for off := 0; off < len(data); off += per {
		chunk := data[off:min(off+per, len(data))]
		var f []byte
		if off == 0 {
			f = s.emit(pkt[:ihl], chunk)
		} else {
			f = s.emit(hdr2[:ihl2], chunk)
		}
		h := f[:ihl]
		if off > 0 {
			h = f[:ihl2]
		}
		mf := uint16(0x2000)
		if off+len(chunk) == len(data) {
			mf = lastMF
		}
		binary.BigEndian.PutUint16(h[2:], uint16(len(f)))
		binary.BigEndian.PutUint16(h[6:], fo&0x4000|mf|uint16((base+off)/8))
		IPv4HeaderChecksum(h)
	}
	return nil
}

// laterOptions appends to dst the IPv4 options of opts that are copied into
// every fragment, padded to a multiple of 4 bytes.
func laterOptions(dst, opts []byte) []byte {
	for i := 0; i < len(opts); {
		t := opts[i]
		if t == 0 { // end of options
			break
		}
		if t == 1 { // no-op
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
			break
		}
		n := int(opts[i+1])
		if t&0x80 != 0 {
			dst = append(dst, opts[i:i+n]...)
		}
		i += n
	}
	for len(dst)%4 != 0 {
		dst = append(dst, 0)
	}
	return dst
}

// frag6 splits an IPv6 packet into fragments with a fragment header after
// its unfragmentable part.
func (s *Segmenter) frag6(pkt []byte, l Layout, mtu int) error {
	if !l.Whole {
		return fmt.Errorf("fragment an ipv6 packet that is a fragment already: %w", errors.ErrUnsupported)
	}
	uf := l.Unfrag
	per := (mtu - uf - 8) &^ 7
	if per <= 0 {
		return fmt.Errorf("fragment ipv6 for mtu %d: %w", mtu, ErrTooSmallMTU)
	}
	// The next-header byte that must name the fragment header: in the
	// fixed header, or in the last unfragmentable extension header.
	nhAt := 6
	for at := 40; at < uf; at += (int(pkt[at+1]) + 1) * 8 {
		nhAt = at
	}
	nh := pkt[nhAt]
	data := pkt[uf:l.End]
	n := (len(data) + per - 1) / per
	s.grow(len(data) + n*(uf+8))
	s.fragID++
	id := s.fragID
	var fh [8]byte
	fh[0] = nh
	binary.BigEndian.PutUint32(fh[4:], id)
	for off := 0; off < len(data); off += per {
		chunk := data[off:min(off+per, len(data))]
		m := uint16(1)
		if off+len(chunk) == len(data) {
			m = 0
		}
		binary.BigEndian.PutUint16(fh[2:], uint16(off)|m)
		f := s.emit(pkt[:uf], fh[:], chunk)
		f[nhAt] = ProtoFragment
		binary.BigEndian.PutUint16(f[4:], uint16(len(f)-40))
	}
	return nil
}
