package mirror

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nfmirror/nfmirror/route"
)

// L2Sink writes whole Ethernet frames (copies from netdev hooks) onto a
// mirror port, byte-exact, with an AF_PACKET socket bound to the port. Its
// frames carry the port's mark and bypass the qdisc, so nfmirror never
// mirrors them again.
//
// A frame larger than the port MTU that is an untruncated TCP super-packet
// (GRO on the capture side) is written whole for the kernel or the port to
// segment (GSO, see gso_linux.go); another untruncated IPv4 or IPv6 one is
// fragmented in userspace and each piece written with the original MAC
// header (checksums recomputed); other frames,
// and truncated copies, are written as they are (an oversize one fails with
// EMSGSIZE and is counted). When the port disappears, sends fail and are
// counted; the sink looks the port up by name again, at most once a second,
// and resumes on the new ifindex.
type L2Sink struct {
	mu  sync.Mutex
	ps  *packetSocket
	gso *gsoSocket // nil when the kernel refused GSO frames
	vh  [vnetHdrLen]byte
	pst portState
	seg segmenter
	c   sinkCounters
	b   mmsgBatch // SendBatch's pending frames
}

var _ BatchSink = (*L2Sink)(nil)

// NewL2Sink opens an L2 sink on port. log may be nil.
func NewL2Sink(port route.Port, log *slog.Logger, opts ...SinkOption) (*L2Sink, error) {
	var cfg sinkConfig
	for _, o := range opts {
		o(&cfg)
	}
	h, err := netlinkHandle(cfg.netnsFD)
	if err != nil {
		return nil, err
	}
	ps, err := openPacketSocket(cfg.netnsFD, port.Index, port.Mark)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("l2 sink on %s: %w", port.Name, err)
	}
	s := &L2Sink{ps: ps, pst: portState{port: port, h: h, log: discardIfNil(log)}}
	if s.gso, err = openGSOSocket(cfg.netnsFD, port.Index, port.Mark); err != nil {
		s.pst.log.Warn("no GSO on the mirror port: super-frames are segmented in userspace", "port", port.Name, "err", err)
	}
	return s, nil
}

// Send writes one frame.
func (s *L2Sink) Send(p *Packet) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c.packets.Add(1)
	if err := s.send(p); err != nil {
		return s.failed(err)
	}
	return nil
}

// failed counts a frame that could not be written, re-resolves the port when
// the error says it is gone, and returns the error to report.
func (s *L2Sink) failed(err error) error {
	s.pst.sendFailed(err, &s.c, s.rebind)
	return fmt.Errorf("write frame to %s: %w", s.pst.port.Name, err)
}

// rebind binds the sockets to the port's new ifindex.
func (s *L2Sink) rebind(port route.Port) error {
	err := s.ps.bind(port.Index)
	if s.gso != nil {
		if gerr := s.gso.bind(port.Index); gerr != nil && err == nil {
			err = gerr
		}
	}
	return err
}

// SendBatch writes pkts in order: frames that go out as they are in one
// sendmmsg, super-frames that need segmenting one by one after the frames
// before them.
func (s *L2Sink) SendBatch(pkts []*Packet, errs []error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.fd = s.ps.fd
	flush := func() {
		s.c.sent.Add(uint64(s.b.flush(func(i int, err error) { errs[i] = s.failed(err) })))
	}
	for i, p := range pkts {
		s.c.packets.Add(1)
		errs[i] = nil
		if s.asIs(p) {
			if s.b.full() {
				flush()
			}
			s.b.add(p.Data, nil, i)
			continue
		}
		flush()
		if err := s.send(p); err != nil {
			errs[i] = s.failed(err)
		}
	}
	flush()
}

// asIs reports whether p's frame is written exactly as it came: it fits the
// port, or it cannot be segmented (too short, truncated, unknown MTU).
func (s *L2Sink) asIs(p *Packet) bool {
	f, mtu := p.Data, s.pst.port.MTU
	return len(f) < 14 || len(f)-14 <= mtu || p.OrigLen > len(f) || mtu <= 0
}

func (s *L2Sink) send(p *Packet) error {
	f := p.Data
	mtu := s.pst.port.MTU
	if s.asIs(p) {
		if err := s.ps.write(f); err != nil {
			return err
		}
		s.c.sent.Add(1)
		return nil
	}
	mac := 12
	etype := binary.BigEndian.Uint16(f[12:])
	if etype == 0x8100 && len(f) >= 18 { // one 802.1Q tag
		mac = 16
		etype = binary.BigEndian.Uint16(f[16:])
	}
	mac += 2
	if etype != 0x0800 && etype != 0x86dd {
		if err := s.ps.write(f); err != nil { // fails: too big, counted
			return err
		}
		s.c.sent.Add(1)
		return nil
	}
	if s.gso != nil {
		if l, ok := parseIP(f[mac:]); ok && gsoHeader(&s.vh, f[mac:], l, mac, mtu) {
			err := s.gso.write(&s.vh, f[:mac], f[mac:mac+l.end])
			switch {
			case err == nil:
				s.c.gso.Add(1)
				s.c.sent.Add(1)
				return nil
			case !gsoRefused(err):
				return err
			}
			s.pst.log.Warn("the kernel refused a GSO frame: super-frames are segmented in userspace from now on", "port", s.pst.port.Name, "err", err)
			s.gso.close()
			s.gso = nil
		}
	}
	frames, err := s.seg.split(f[mac:], mtu, false) // a VLAN tag may exceed the MTU
	if err != nil {
		return err
	}
	s.c.segmented.Add(1)
	for _, fr := range frames {
		fr = fr[headroom-mac:]
		copy(fr, f[:mac])
		if err := s.ps.write(fr); err != nil {
			return err
		}
		s.c.sent.Add(1)
	}
	return nil
}

// Stats returns the sink's counters.
func (s *L2Sink) Stats() SinkStats { return s.c.stats() }

// Close closes the sink's socket.
func (s *L2Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pst.h.Close()
	if s.gso != nil {
		s.gso.close()
		s.gso = nil
	}
	return s.ps.close()
}
