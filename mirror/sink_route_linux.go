package mirror

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nfmirror/nfmirror/route"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// localRefresh is how often the set of local destinations is read again in
// full, besides the refresh on every change notified for the local table.
const localRefresh = 5 * time.Second

// RouteSink replays IP copies onto a mirror port through fwmark policy
// routing (route.Setup): IPv4 through a raw socket with IP_HDRINCL, IPv6
// through a raw socket with IPV6_HDRINCL, both marked with the port's mark
// and bound to the port, so that a copy leaves through the port or not at
// all. The copy keeps its TTL or hop limit, TOS or traffic class and flow
// label.
//
// Routing cannot carry every copy: one addressed to an address of this host
// would be delivered locally (the local table comes before any fwmark rule),
// and broadcast and multicast ones would not follow the fwmark rule. The sink
// keeps the set of destinations of the kernel's local table (refreshed on
// every route change of that table and every 5 s) and writes those copies,
// and every multicast and broadcast copy, at layer 2 instead, with an
// AF_PACKET socket on the port and an Ethernet header built for it: the
// port's own MAC as destination (what NOARP gives routed copies), the
// multicast MAC for multicast, ff:ff:ff:ff:ff:ff for broadcast. IPv6
// link-local copies go at layer 2 too: routing them needs a link-local source
// address on the port.
//
// A TCP copy larger than the port MTU is written whole at layer 2 for the
// kernel or the port to segment (GSO, see gso_linux.go); another one larger
// than the MTU is split into IP fragments. Checksums of every untruncated
// copy are recomputed (local packets may carry partial ones). Truncated
// copies are sent as they are.
//
// When the port disappears, sends fail and are counted; the sink looks the
// port up by name again, at most once a second, and resumes when it is back
// (route.Routing.Reapply puts its routes back).
type RouteSink struct {
	mu     sync.Mutex
	fd4    int
	fd6    int
	ps     *packetSocket
	gso    *gsoSocket // nil when the kernel refused GSO frames
	eth    [14]byte
	vh     [vnetHdrLen]byte
	pst    portState
	seg    segmenter
	c      sinkCounters
	local  atomic.Pointer[localSet]
	sa4    unix.SockaddrInet4
	sa6    unix.SockaddrInet6
	b4, b6 mmsgBatch // SendBatch's pending datagrams per raw socket
	cancel context.CancelFunc
	done   chan struct{}
}

var _ BatchSink = (*RouteSink)(nil)

// localSet holds the destinations of the kernel's local table.
type localSet struct {
	addrs    map[netip.Addr]struct{}
	bcast    map[netip.Addr]struct{} // the broadcast routes among addrs
	prefixes []netip.Prefix          // local routes wider than one address (127.0.0.0/8)
}

func (l *localSet) has(a netip.Addr) bool {
	if _, ok := l.addrs[a]; ok {
		return true
	}
	for _, p := range l.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// NewRouteSink opens a route sink on port. log may be nil. The port must have
// been set up by route.Setup in the same namespace.
func NewRouteSink(port route.Port, log *slog.Logger, opts ...SinkOption) (*RouteSink, error) {
	var cfg sinkConfig
	for _, o := range opts {
		o(&cfg)
	}
	log = discardIfNil(log)
	h, err := netlinkHandle(cfg.netnsFD)
	if err != nil {
		return nil, err
	}
	s := &RouteSink{fd4: -1, fd6: -1, pst: portState{port: port, h: h, log: log}}
	s.seg.fragID = uint32(time.Now().UnixNano())
	fail := func(err error) (*RouteSink, error) {
		s.closeAll()
		return nil, fmt.Errorf("route sink on %s: %w", port.Name, err)
	}
	err = inNetNS(cfg.netnsFD, func() error {
		var err error
		if s.fd4, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW); err != nil {
			return fmt.Errorf("open ipv4 raw socket: %w", err)
		}
		if s.fd6, err = unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW); err != nil {
			return fmt.Errorf("open ipv6 raw socket: %w", err)
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	if err := unix.SetsockoptInt(s.fd6, unix.IPPROTO_IPV6, unix.IPV6_HDRINCL, 1); err != nil {
		return fail(fmt.Errorf("set ipv6 hdrincl: %w", err))
	}
	for _, fd := range []int{s.fd4, s.fd6} {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(port.Mark)); err != nil {
			return fail(fmt.Errorf("set mark %#x: %w", port.Mark, err))
		}
		// Bound to the port: the route lookup is made for the port only,
		// so a copy goes out of the port or fails.
		if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, port.Name); err != nil {
			return fail(fmt.Errorf("bind raw socket to %s: %w", port.Name, err))
		}
	}
	if s.ps, err = openPacketSocket(cfg.netnsFD, port.Index, port.Mark); err != nil {
		return fail(err)
	}
	if s.gso, err = openGSOSocket(cfg.netnsFD, port.Index, port.Mark); err != nil {
		log.Warn("no GSO on the mirror port: super-packets are segmented in userspace", "port", port.Name, "err", err)
	}
	if err := s.refreshLocal(); err != nil {
		return fail(err)
	}
	// Route changes of the local table trigger a refresh.
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.done = make(chan struct{})
	updates := make(chan netlink.RouteUpdate, 64)
	subOpts := netlink.RouteSubscribeOptions{
		ErrorCallback: func(err error) { log.Debug("route updates", "err", err) },
	}
	if cfg.netnsFD != 0 {
		ns := netns.NsHandle(cfg.netnsFD)
		subOpts.Namespace = &ns
	}
	if err := netlink.RouteSubscribeWithOptions(updates, ctx.Done(), subOpts); err != nil {
		cancel()
		return fail(fmt.Errorf("subscribe to route updates: %w", err))
	}
	go s.watchLocal(ctx, updates)
	return s, nil
}

// watchLocal refreshes the local set on local-table changes and periodically.
func (s *RouteSink) watchLocal(ctx context.Context, updates <-chan netlink.RouteUpdate) {
	defer close(s.done)
	t := time.NewTicker(localRefresh)
	defer t.Stop()
	for {
		refresh := false
		select {
		case <-ctx.Done():
			return
		case u, ok := <-updates:
			if !ok {
				// The subscription ended (error): fall back to the ticker.
				updates = nil
				continue
			}
			refresh = u.Table == unix.RT_TABLE_LOCAL
		case <-t.C:
			refresh = true
		}
		if refresh {
			if err := s.refreshLocal(); err != nil {
				s.pst.log.Warn("refresh local addresses", "err", err)
			}
		}
	}
}

// refreshLocal reads the destinations of the local table.
func (s *RouteSink) refreshLocal() error {
	set := &localSet{addrs: map[netip.Addr]struct{}{}, bcast: map[netip.Addr]struct{}{}}
	filter := &netlink.Route{Table: unix.RT_TABLE_LOCAL}
	err := s.pst.h.RouteListFilteredIter(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_TABLE, func(r netlink.Route) bool {
		if r.Type != unix.RTN_LOCAL && r.Type != unix.RTN_BROADCAST && r.Type != unix.RTN_ANYCAST {
			return true
		}
		if r.Dst == nil {
			return true
		}
		a, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok {
			return true
		}
		a = a.Unmap()
		ones, bits := r.Dst.Mask.Size()
		if ones == bits {
			set.addrs[a] = struct{}{}
			if r.Type == unix.RTN_BROADCAST {
				set.bcast[a] = struct{}{}
			}
		} else {
			set.prefixes = append(set.prefixes, netip.PrefixFrom(a, ones).Masked())
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("list local table: %w", err)
	}
	s.local.Store(set)
	return nil
}

// l2Dest says whether an IP packet must be written at layer 2, and to which
// MAC address.
func (s *RouteSink) l2Dest(ip []byte, own net.HardwareAddr, mac []byte) bool {
	var dst netip.Addr
	if ip[0]>>4 == 4 {
		d := [4]byte(ip[16:20])
		dst = netip.AddrFrom4(d)
		switch {
		case d[0]&0xf0 == 0xe0: // 224.0.0.0/4
			copy(mac, []byte{0x01, 0x00, 0x5e, d[1] & 0x7f, d[2], d[3]})
			return true
		case d == [4]byte{255, 255, 255, 255}:
			copy(mac, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
			return true
		}
	} else {
		d := [16]byte(ip[24:40])
		dst = netip.AddrFrom16(d)
		if d[0] == 0xff {
			copy(mac, []byte{0x33, 0x33, d[12], d[13], d[14], d[15]})
			return true
		}
		if d[0] == 0xfe && d[1]&0xc0 == 0x80 {
			// Link-local: the route lookup wants a link-local source
			// address on the port, which a mirror port need not have.
			copy(mac, own)
			return true
		}
	}
	local := s.local.Load()
	if dst.IsUnspecified() || dst.IsLoopback() || local.has(dst) {
		copy(mac, own)
		if _, ok := local.bcast[dst]; ok {
			// A directed broadcast of one of our subnets.
			copy(mac, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		}
		return true
	}
	return false
}

// Send replays one IP copy.
func (s *RouteSink) Send(p *Packet) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c.packets.Add(1)
	if err := s.send(p); err != nil {
		return s.failed(err)
	}
	return nil
}

// failed counts a copy that could not be sent, re-resolves the port when
// the error says it is gone, and returns the error to report.
func (s *RouteSink) failed(err error) error {
	s.pst.sendFailed(err, &s.c, s.rebind)
	return fmt.Errorf("replay copy to %s: %w", s.pst.port.Name, err)
}

func (s *RouteSink) send(p *Packet) error {
	d := p.Data
	if !plausibleIP(d) {
		return fmt.Errorf("not an IP packet (%d bytes)", len(d))
	}
	port := &s.pst.port
	if s.gso != nil && p.OrigLen <= len(d) && len(d) > port.MTU {
		if done, err := s.sendGSO(d); done {
			return err
		}
	}
	frames, err := s.seg.split(d, port.MTU, p.OrigLen > len(d))
	if err != nil {
		return err
	}
	if len(frames) > 1 {
		s.c.segmented.Add(1)
	}
	var mac [6]byte
	l2 := s.l2Dest(d, port.MAC, mac[:])
	if l2 {
		s.c.l2.Add(1)
	}
	for _, f := range frames {
		ip := f[headroom:]
		switch {
		case l2:
			etype := uint16(0x0800)
			if ip[0]>>4 == 6 {
				etype = 0x86dd
			}
			fr := f[headroom-14:]
			ethernetHeader(fr, mac[:], port.MAC, etype)
			err = s.ps.write(fr)
		case ip[0]>>4 == 4:
			s.sa4.Addr = [4]byte(ip[16:20])
			err = unix.Sendto(s.fd4, ip, unix.MSG_DONTWAIT, &s.sa4)
		default:
			s.sa6.Addr = [16]byte(ip[24:40])
			err = unix.Sendto(s.fd6, ip, unix.MSG_DONTWAIT, &s.sa6)
		}
		if err != nil {
			return err
		}
		s.c.sent.Add(1)
	}
	return nil
}

// SendBatch replays pkts in order. The common copy (routed, untruncated or
// not, no larger than the port MTU) has its checksums fixed in place and goes
// out in one sendmmsg per raw socket for the whole batch; the others
// (segmented, or written at layer 2) are sent one by one as Send does, after
// the datagrams before them, so a flow's copies keep their order.
func (s *RouteSink) SendBatch(pkts []*Packet, errs []error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b4.fd, s.b6.fd = s.fd4, s.fd6
	flush := func() {
		for _, b := range []*mmsgBatch{&s.b4, &s.b6} {
			if b.n == 0 {
				continue
			}
			s.c.sent.Add(uint64(b.flush(func(i int, err error) { errs[i] = s.failed(err) })))
		}
	}
	for i, p := range pkts {
		s.c.packets.Add(1)
		errs[i] = nil
		if ip, v4, ok := s.routable(p); ok {
			b, dst := &s.b6, ip[24:40]
			if v4 {
				b, dst = &s.b4, ip[16:20]
			}
			if b.full() {
				flush()
			}
			b.add(ip, dst, i)
			continue
		}
		flush()
		if err := s.send(p); err != nil {
			errs[i] = s.failed(err)
		}
	}
	flush()
}

// routable reports whether p can go out as one routed datagram, and if so
// returns it with its checksums fixed (in place: the sink owns Data until it
// returns) and whether it is IPv4. Copies that need segmenting, layer-2
// writing or that are not IP take the one-by-one path.
func (s *RouteSink) routable(p *Packet) (ip []byte, v4, ok bool) {
	d := p.Data
	if !plausibleIP(d) {
		return nil, false, false // send says what is wrong
	}
	l, ok := parseIP(d)
	if !ok {
		return nil, false, false
	}
	port := &s.pst.port
	var mac [6]byte
	if s.l2Dest(d, port.MAC, mac[:]) {
		return nil, false, false
	}
	if p.OrigLen > len(d) {
		if len(d) > port.MTU {
			return nil, false, false
		}
		return d, l.v4, true // truncated: as seen
	}
	if l.end > port.MTU {
		return nil, false, false
	}
	fixChecksums(d[:l.end])
	return d[:l.end], l.v4, true
}

// sendGSO writes the TCP super-packet d whole, at layer 2, for the kernel
// or the port to segment: to the port's own MAC, as routing over a NOARP
// port would address it (or to the multicast, broadcast or own MAC l2Dest
// picks). done is false when d is not such a packet, or the kernel refused
// GSO, and it must be segmented in userspace.
func (s *RouteSink) sendGSO(d []byte) (done bool, err error) {
	port := &s.pst.port
	l, ok := parseIP(d)
	if !ok || !gsoHeader(&s.vh, d, l, len(s.eth), port.MTU) {
		return false, nil
	}
	var mac [6]byte
	l2 := s.l2Dest(d, port.MAC, mac[:])
	if !l2 {
		copy(mac[:], port.MAC)
	}
	etype := uint16(0x86dd)
	if l.v4 {
		etype = 0x0800
	}
	ethernetHeader(s.eth[:], mac[:], port.MAC, etype)
	if err := s.gso.write(&s.vh, s.eth[:], d[:l.end]); err != nil {
		if gsoRefused(err) {
			s.pst.log.Warn("the kernel refused a GSO frame: super-packets are segmented in userspace from now on", "port", port.Name, "err", err)
			s.gso.close()
			s.gso = nil
			return false, nil
		}
		return true, err
	}
	if l2 {
		s.c.l2.Add(1)
	}
	s.c.gso.Add(1)
	s.c.sent.Add(1)
	return true, nil
}

// plausibleIP reports whether d starts with a whole IPv4 or IPv6 header.
func plausibleIP(d []byte) bool {
	return len(d) >= 20 && (d[0]>>4 == 4 || (d[0]>>4 == 6 && len(d) >= 40))
}

// rebind binds the sockets to the port's new ifindex.
func (s *RouteSink) rebind(port route.Port) error {
	err := s.ps.bind(port.Index)
	if s.gso != nil {
		if gerr := s.gso.bind(port.Index); gerr != nil && err == nil {
			err = gerr
		}
	}
	for _, fd := range []int{s.fd4, s.fd6} {
		if berr := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, port.Name); berr != nil && err == nil {
			err = fmt.Errorf("bind raw socket to %s: %w", port.Name, berr)
		}
	}
	return err
}

// Stats returns the sink's counters.
func (s *RouteSink) Stats() SinkStats { return s.c.stats() }

// Close stops the local-table watcher and closes the sink's sockets.
func (s *RouteSink) Close() error {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeAll()
}

func (s *RouteSink) closeAll() error {
	var err error
	for _, fd := range []int{s.fd4, s.fd6} {
		if fd >= 0 {
			if cerr := unix.Close(fd); cerr != nil && err == nil {
				err = fmt.Errorf("close raw socket: %w", cerr)
			}
		}
	}
	s.fd4, s.fd6 = -1, -1
	if s.ps != nil {
		s.ps.close()
		s.ps = nil
	}
	if s.gso != nil {
		s.gso.close()
		s.gso = nil
	}
	s.pst.h.Close()
	return err
}
