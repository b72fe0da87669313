package mirror

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nfmirror/nfmirror/internal/encap"
	"github.com/nfmirror/nfmirror/internal/pkt"
)

// CollectorConfig describes one remote collector: where its copies go and
// in which tunnel format.
type CollectorConfig struct {
	// Name is the destination's name, for logs and errors.
	Name string
	// Format is the tunnel format: encap.VXLAN, encap.GRE, encap.ERSPAN2
	// or encap.ERSPAN3.
	Format encap.Format
	// Addr is the collector's address, IPv4 or IPv6: the outer family.
	Addr netip.Addr
	// VNI is the VXLAN network identifier.
	VNI uint32
	// Port is the VXLAN UDP destination port; 0 means 4789.
	Port uint16
	// Session is the ERSPAN session id (0-1023).
	Session uint16
	// HardwareID is the ERSPAN III hardware id (0-63).
	HardwareID uint8
	// TTL is the outer TTL or hop limit; 0 means 64.
	TTL uint8
	// Src is the outer source address; the zero Addr means the one the
	// kernel's route to the collector prefers (followed as it changes).
	Src netip.Addr
	// Mark is the fwmark of the packets the collector writes: nfmirror's
	// loop guard (meta mark & MASK == MARK return, first in every chain)
	// recognises it, so no rule ever copies them.
	Mark uint32
	// InnerMTU is the MTU of the mirror port the inner frames stand for:
	// a copy's IP packet larger than this (a GRO/TSO super-packet) is cut
	// into TCP segments or IP fragments of at most InnerMTU bytes before
	// it is encapsulated, as a local port of that MTU would carry it. 0
	// means 1500.
	InnerMTU int
	// NetNS is a file descriptor of the network namespace to work in (0:
	// the caller's). The calling goroutine never stays in it.
	NetNS int
}

// DefaultInnerMTU is CollectorConfig.InnerMTU when 0.
const DefaultInnerMTU = 1500

// Collector writes every copy bound for one remote collector, wrapped in
// VXLAN, GRE or ERSPAN, as Ethernet frames it builds itself and writes with
// AF_PACKET on the device the kernel's route to the collector names. It
// implements BatchSink.
//
// Why AF_PACKET rather than a UDP or raw IP socket. A socket's packets go
// through the host's IP stack: the inet output and postrouting hooks, so a
// host firewall with policy drop refuses them, NAT may rewrite them and
// conntrack makes an entry per outer flow (a VXLAN source port per inner
// flow: one entry per mirrored flow); and nfmirror's own postrouting rules
// would see them, so a `postrouting { mirror to $lab }` whose tunnel leaves
// by the same uplink would copy its own copies if the loop guard ever
// missed. An AF_PACKET write (PACKET_QDISC_BYPASS, straight to the driver)
// passes none of that: only netdev egress chains of the device see it, and
// the socket's SO_MARK makes the loop guard that starts every nfmirror
// chain skip it — by design, not because a mark survived an encapsulation.
// TestCollectorBypassesNetfilter and TestCollectorMarkAtNetdevEgress prove
// both on this kernel. The price is doing what the IP stack would do:
//
//   - Route: RouteGet(collector) gives the device, the next hop, the
//     preferred source address and a path MTU (a route's mtu metric or a
//     cached PMTU, else the device's MTU).
//   - Neighbour: the next hop's MAC comes from the kernel's neighbour table.
//     When it is unknown, failed or stale, the collector asks the kernel to
//     resolve it (RTM_NEWNEIGH with NTF_USE, the neighbour layer's own
//     ARP/ND probe: no packet of ours passes the firewall) and counts copies
//     as errors (ErrNoNeighbour) until it resolves. Production traffic never
//     waits on any of this.
//   - Fragmentation and checksums: internal/encap builds the outer headers
//     (IPv4 header checksum; UDP checksum 0 over IPv4, computed over IPv6)
//     and applies the size policy: VXLAN and GRE outer packets larger than
//     the path MTU are fragmented (IPv4 with DF clear, IPv6 with a fragment
//     header), ERSPAN frames are cut to fit and get the T bit.
//
// Inner frames are what a local mirror port of InnerMTU would carry (see
// Writer): frames from netdev hooks as seen; IP copies behind an Ethernet
// header whose source and destination are the MAC of the device the tunnel
// leaves by (02:00:00:00:00:01 on a device without one), multicast and
// broadcast destinations mapped as on a port; partial checksums completed;
// super-packets cut to InnerMTU.
//
// ICMP errors about the tunnel have no socket to go to, so the collector
// reads them itself (collector_icmp_linux.go): destination unreachable
// reports are counted and shown (ICMPUnreachable: the copies left but the
// collector's port or protocol is closed, or a router has no route), and a
// packet-too-big lowers the path MTU for 10 minutes, as the kernel's PMTU
// cache would for a socket.
//
// Refresh looks the route, device and neighbour up again; the service calls
// it periodically (every second or two) and on link changes, and a failed
// write (no route, no neighbour, device gone) looks again by itself at most
// once a second. Route, neighbour, MTU and source changes are followed;
// each is logged once.
type Collector struct {
	mu  sync.Mutex
	cfg CollectorConfig
	h   *netlink.Handle
	log *slog.Logger

	path     collectorPath
	lastLook time.Time
	enc      *encap.Encapsulator
	icmp     *icmpWatch // nil if its socket could not be opened
	mtu      int        // the path MTU of the batch being sent

	seg   pkt.Segmenter
	eth   [14]byte // the inner Ethernet header of an IP copy
	hdr   [batchHdrMax]byte
	b     frameBatch
	now   time.Time // the batch's time, for copies without one
	frag  bool      // the copy being queued was fragmented
	trunc bool      // ... or truncated to fit
	c     collectorCounters
}

var _ BatchSink = (*Collector)(nil)

// collectorPath is how copies reach the collector now.
type collectorPath struct {
	err     error // why copies cannot leave (ErrNoRoute, ErrNoNeighbour), or nil
	ifindex int
	dev     string
	mtu     int // the path MTU: outer packets are at most this long
	mac     net.HardwareAddr
	ether   bool // the device takes Ethernet frames
	src     netip.Addr
	nextHop netip.Addr
	nhMAC   net.HardwareAddr
	neigh   string // the neighbour entry's state, for status
	fd      int
}

// ErrNoNeighbour is counted for a copy that could not leave because the
// next hop to its collector has no resolved link-layer address (yet): the
// kernel has been asked to resolve it.
var ErrNoNeighbour = errors.New("next hop to the collector not resolved")

// tunnelMAC is the inner MAC address of IP copies when the device the
// tunnel leaves by has none.
var tunnelMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}

// NewCollector opens the writer of one collector and looks up its route.
// A collector without a route or neighbour yet is not an error: copies fail
// and are counted until one appears. log may be nil.
func NewCollector(cfg CollectorConfig, log *slog.Logger) (*Collector, error) {
	if cfg.InnerMTU == 0 {
		cfg.InnerMTU = DefaultInnerMTU
	}
	if cfg.InnerMTU < 576 {
		return nil, fmt.Errorf("collector %s: inner mtu %d: at least 576", cfg.Name, cfg.InnerMTU)
	}
	src := cfg.Src
	if !src.IsValid() { // a placeholder until the route says
		src = netip.IPv4Unspecified()
		if cfg.Addr.Unmap().Is6() {
			src = netip.IPv6Unspecified()
		}
	}
	enc, err := encap.New(encap.Config{
		Format: cfg.Format, Src: src, Dst: cfg.Addr, VNI: cfg.VNI, Port: cfg.Port,
		Session: cfg.Session, HardwareID: cfg.HardwareID, TTL: cfg.TTL,
	})
	if err != nil {
		return nil, fmt.Errorf("collector %s: %w", cfg.Name, err)
	}
	cfg.Addr = cfg.Addr.Unmap()
	c := &Collector{cfg: cfg, log: discardIfNil(log), enc: enc, path: collectorPath{fd: -1, err: ErrNoRoute}}
	h, err := netlinkHandle(cfg.NetNS)
	if err != nil {
		return nil, fmt.Errorf("collector %s: %w", cfg.Name, err)
	}
	c.h = h
	if c.icmp, err = openICMPWatch(cfg.NetNS, cfg.Addr.Is6()); err != nil {
		c.log.Warn("collector: ICMP errors about the tunnel will not be seen", "dest", cfg.Name, "err", err)
	}
	if err := c.Refresh(); err != nil && !errors.Is(err, ErrNoRoute) && !errors.Is(err, ErrNoNeighbour) {
		c.Close()
		return nil, fmt.Errorf("collector %s: %w", cfg.Name, err)
	}
	return c, nil
}

// Refresh looks up the route to the collector, its device, MTU and source
// address, and the next hop's MAC, asking the kernel to resolve it when it
// is not known, and opens or moves the socket to match. It returns why
// copies cannot leave now (wrapping ErrNoRoute or ErrNoNeighbour), or nil.
func (c *Collector) Refresh() error {
	next := c.lookup()
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.path
	if next.err == nil || next.ifindex != 0 {
		switch {
		case old.fd >= 0 && old.ifindex == next.ifindex:
			next.fd = old.fd
			old.fd = -1
		default:
			fd, err := openWriteSocket(c.cfg.NetNS, next.ifindex, c.cfg.Mark)
			if err != nil {
				next.err = fmt.Errorf("open socket on %s: %w", next.dev, err)
			}
			next.fd = fd
		}
	}
	if old.fd >= 0 {
		unix.Close(old.fd)
	}
	if next.src.IsValid() && next.src != c.enc.Config().Src {
		if err := c.enc.SetSource(next.src); err != nil {
			next.err = err
		}
	}
	if c.icmp != nil {
		c.icmp.setFlow(c.enc.Config().Src, c.cfg.Addr)
	}
	c.logChange(old, next)
	c.path = next
	return next.err
}

// logChange logs once what changed between two paths.
func (c *Collector) logChange(old, next collectorPath) {
	name, addr := c.cfg.Name, c.cfg.Addr
	switch {
	case next.err != nil && (old.err == nil || old.err.Error() != next.err.Error()):
		c.log.Warn("copies to the collector cannot leave: they are counted as errors until they can", "dest", name, "collector", addr, "err", next.err)
	case next.err == nil && (old.err != nil || old.ifindex != next.ifindex || old.nextHop != next.nextHop ||
		!slices.Equal(old.nhMAC, next.nhMAC) || old.src != next.src || old.mtu != next.mtu):
		c.log.Info("copies to the collector leave by", "dest", name, "collector", addr, "format", c.cfg.Format,
			"device", next.dev, "next_hop", next.nextHop, "mac", next.nhMAC, "src", next.src, "mtu", next.mtu)
	}
}

// lookup asks the kernel for the path to the collector. It takes no lock:
// only netlink requests.
func (c *Collector) lookup() collectorPath {
	p := collectorPath{fd: -1}
	routes, err := c.h.RouteGet(c.cfg.Addr.AsSlice())
	if err != nil || len(routes) == 0 {
		p.err = fmt.Errorf("%w: %v", ErrNoRoute, err)
		return p
	}
	r := routes[0]
	link, err := c.h.LinkByIndex(r.LinkIndex)
	if err != nil {
		p.err = fmt.Errorf("%w: device %d: %v", ErrNoRoute, r.LinkIndex, err)
		return p
	}
	a := link.Attrs()
	p.ifindex, p.dev, p.mtu = a.Index, a.Name, a.MTU
	if r.MTU > 0 && r.MTU < p.mtu {
		p.mtu = r.MTU // a route's mtu, or a PMTU the kernel learnt
	}
	p.src = c.cfg.Src
	if !p.src.IsValid() {
		src, ok := netip.AddrFromSlice(r.Src)
		if !ok {
			p.err = fmt.Errorf("%w: the route to %v gives no source address", ErrNoRoute, c.cfg.Addr)
			return p
		}
		p.src = src.Unmap()
	}
	p.mac = slices.Clone(a.HardwareAddr)
	loopback := a.Flags&net.FlagLoopback != 0
	p.ether = (a.EncapType == "ether" || loopback) && len(p.mac) == 6
	p.nextHop = c.cfg.Addr
	if gw, ok := netip.AddrFromSlice(r.Gw); ok && r.Gw != nil {
		p.nextHop = gw.Unmap()
	}
	switch {
	case !p.ether:
		p.neigh = "none needed"
	case loopback:
		p.nhMAC, p.neigh = p.mac, "none needed"
	default:
		p.nhMAC, p.neigh, p.err = c.neighbour(p.ifindex, p.nextHop)
	}
	return p
}

// Neighbour states (linux/neighbour.h) whose address can be used: the
// kernel itself sends to STALE, DELAY and PROBE entries while it confirms
// them.
const usableNUD = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE |
	netlink.NUD_PERMANENT | netlink.NUD_NOARP

// neighbour returns the MAC address of ip on the device ifindex from the
// kernel's table. Unless the entry is reachable it asks the kernel to
// resolve or confirm it (NTF_USE: the neighbour layer probes as if a packet
// were waiting), so a stale address is re-checked and a failed one retried.
func (c *Collector) neighbour(ifindex int, ip netip.Addr) (net.HardwareAddr, string, error) {
	fam := netlink.FAMILY_V4
	if ip.Is6() {
		fam = netlink.FAMILY_V6
	}
	var mac net.HardwareAddr
	state := "none"
	usable := false
	neighs, err := c.h.NeighList(ifindex, fam)
	if err == nil {
		for _, n := range neighs {
			if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == ip {
				state = neighState(n.State)
				if n.State&usableNUD != 0 && len(n.HardwareAddr) == 6 {
					mac, usable = slices.Clone(n.HardwareAddr), true
				}
				if n.State&(netlink.NUD_REACHABLE|netlink.NUD_PERMANENT|netlink.NUD_NOARP) != 0 {
					return mac, state, nil
				}
				break
			}
		}
	}
	c.c.neighRequests.Add(1)
	uerr := c.h.NeighSet(&netlink.Neigh{LinkIndex: ifindex, Family: fam, IP: ip.AsSlice(), Flags: netlink.NTF_USE})
	if usable {
		return mac, state, nil
	}
	if uerr != nil {
		return nil, state, fmt.Errorf("%w: %v (%s): ask the kernel to resolve it: %v", ErrNoNeighbour, ip, state, uerr)
	}
	return nil, state, fmt.Errorf("%w: %v (%s): resolving", ErrNoNeighbour, ip, state)
}

func neighState(s int) string {
	for _, n := range []struct {
		s    int
		name string
	}{
		{netlink.NUD_REACHABLE, "reachable"}, {netlink.NUD_STALE, "stale"}, {netlink.NUD_DELAY, "delay"},
		{netlink.NUD_PROBE, "probe"}, {netlink.NUD_PERMANENT, "permanent"}, {netlink.NUD_NOARP, "noarp"},
		{netlink.NUD_INCOMPLETE, "incomplete"}, {netlink.NUD_FAILED, "failed"},
	} {
		if s&n.s != 0 {
			return n.name
		}
	}
	return "none"
}

// Send writes one copy.
func (c *Collector) Send(p *Packet) error {
	var err [1]error
	c.SendBatch([]*Packet{p}, err[:])
	return err[0]
}

// SendBatch encapsulates and writes pkts in order, up to sendBatchMax
// frames per sendmmsg, and sets errs[i] for each copy not (completely)
// written: ErrNoRoute or ErrNoNeighbour when it could not leave, the
// kernel's error when a write failed.
func (c *Collector) SendBatch(pkts []*Packet, errs []error) {
	if !c.sendBatch(pkts, errs) {
		return
	}
	if err := c.Refresh(); err != nil {
		c.log.Debug("look up the path to the collector", "dest", c.cfg.Name, "err", err)
	}
}

// sendBatch is SendBatch under the lock; it reports whether a lookup is
// due.
func (c *Collector) sendBatch(pkts []*Packet, errs []error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = time.Now()
	c.mtu = c.path.mtu
	if c.icmp != nil {
		if m := c.icmp.pathMTU(c.now); m > 0 && m < c.mtu {
			c.mtu = m // learnt from a packet-too-big
		}
	}
	failed := func(i int, err error) {
		if errs[i] == nil {
			errs[i] = err
		}
	}
	for i, p := range pkts {
		errs[i] = nil
		c.c.packets.Add(1)
		c.frag, c.trunc = false, false
		if err := c.queue(p, i, failed); err != nil {
			failed(i, err)
		}
		if c.frag {
			c.c.fragmented.Add(1)
		}
		if c.trunc {
			c.c.truncated.Add(1)
		}
	}
	c.flush(failed)
	for _, err := range errs[:len(pkts)] {
		if err != nil {
			c.c.count(err)
		}
	}
	return lookupDue(errs[:len(pkts)], &c.lastLook, &c.c.lookups, ErrNoRoute, ErrNoNeighbour)
}

// queue encapsulates copy i and queues its frames; an error is the copy's
// failure before any write.
func (c *Collector) queue(p *Packet, i int, failed func(int, error)) error {
	if c.path.err != nil {
		if errors.Is(c.path.err, ErrNoNeighbour) {
			return ErrNoNeighbour
		}
		return ErrNoRoute
	}
	truncated := p.OrigLen > len(p.Data)
	var lead, ip []byte
	if p.L2 {
		f := p.Data
		mac, etype := pkt.MACHeaderLen(f)
		if mac == 0 {
			return encap.ErrShortFrame
		}
		c.c.l2.Add(1)
		if etype != pkt.EthIPv4 && etype != pkt.EthIPv6 {
			// Not IP: as seen, cut at the inner MTU if it is longer.
			if len(f) > mac+c.cfg.InnerMTU {
				f, truncated = f[:mac+c.cfg.InnerMTU], true
			}
			return c.encapOne(nil, f, p, truncated, i, failed)
		}
		lead, ip = f[:mac], f[mac:]
	} else {
		if !pkt.Plausible(p.Data) {
			return errNotIP
		}
		c.c.framed.Add(1)
		ip, lead = p.Data, c.eth[:]
		own := tunnelMAC
		if c.path.ether {
			own = c.path.mac
		}
		pkt.EthernetHeader(lead, ip, own)
	}
	l, ok := pkt.Parse(ip)
	whole := ok && !truncated
	if whole && !p.L2 {
		ip = ip[:l.End]
	}
	switch {
	case !whole:
		if len(ip) > c.cfg.InnerMTU {
			ip, truncated = ip[:c.cfg.InnerMTU], true
		}
		return c.encapOne(lead, ip, p, truncated, i, failed)
	case l.End <= c.cfg.InnerMTU:
		if pkt.CompleteChecksumLayout(ip, l) {
			c.c.checksums.Add(1)
		}
		return c.encapOne(lead, ip, p, false, i, failed) // a frame keeps its padding
	}
	// A super-packet: cut it as a port of InnerMTU would carry it. The
	// segments live in c.seg until the next split, so they are sent
	// before this returns.
	c.flush(failed)
	frames, err := c.seg.Split(ip, c.cfg.InnerMTU, false)
	if err != nil {
		return err
	}
	c.c.segmented.Add(1)
	for _, f := range frames {
		if err := c.encapOne(lead, f, p, false, i, failed); err != nil {
			return err
		}
	}
	c.flush(failed)
	return nil
}

// encapOne encapsulates the inner frame lead+frame of copy p and queues the
// outer frames.
func (c *Collector) encapOne(lead, frame []byte, p *Packet, truncated bool, i int, failed func(int, error)) error {
	m := encap.Meta{Truncated: truncated, Egress: p.Hook.Egress(), Time: p.Time}
	if m.Time.IsZero() {
		m.Time = c.now
	}
	outs, res, err := c.enc.Encap(lead, frame, m, c.mtu)
	if err != nil {
		return err
	}
	c.frag = c.frag || res.Fragments > 0
	c.trunc = c.trunc || res.Truncated
	etype := uint16(pkt.EthIPv4)
	if c.cfg.Addr.Is6() {
		etype = pkt.EthIPv6
	}
	for _, o := range outs {
		hdr := c.hdr[:0]
		proto := etype
		if c.path.ether {
			hdr = append(hdr, c.path.nhMAC...)
			hdr = append(hdr, c.path.mac...)
			hdr = append(hdr, byte(etype>>8), byte(etype))
			proto = 0
		}
		hdr = append(hdr, o.Head...)
		if c.b.fd != c.path.fd || c.b.full() {
			c.flush(failed)
			c.b.fd = c.path.fd
		}
		c.b.add(nil, hdr, o.Body, c.path.ifindex, proto, i)
	}
	return nil
}

// flush sends the pending batch.
func (c *Collector) flush(failed func(int, error)) {
	if c.b.n == 0 {
		return
	}
	sent, bytes := c.b.flushBytes(failed)
	c.c.frames.Add(uint64(sent))
	c.c.bytes.Add(uint64(bytes))
}

// Close closes the collector's socket and netlink handle.
func (c *Collector) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	if c.path.fd >= 0 {
		if cerr := unix.Close(c.path.fd); cerr != nil {
			err = fmt.Errorf("close packet socket: %w", cerr)
		}
		c.path.fd = -1
	}
	c.path.err = ErrNoRoute
	if c.h != nil {
		c.h.Close()
		c.h = nil
	}
	if c.icmp != nil {
		c.icmp.close()
		c.icmp = nil
	}
	return err
}

// collectorCounters count what a collector did.
type collectorCounters struct {
	packets, frames, bytes, framed, l2, segmented, checksums, fragmented, truncated atomic.Uint64
	errors, noRoute, noNeigh, sendErrs, otherErrs                                   atomic.Uint64
	lookups, neighRequests                                                          atomic.Uint64
}

// count counts one failed copy by its reason.
func (c *collectorCounters) count(err error) {
	c.errors.Add(1)
	switch {
	case err == ErrNoRoute:
		c.noRoute.Add(1)
	case err == ErrNoNeighbour:
		c.noNeigh.Add(1)
	case errors.As(err, new(unix.Errno)):
		c.sendErrs.Add(1)
	default:
		c.otherErrs.Add(1)
	}
}

// CollectorStats counts what a collector did and says where its copies go.
type CollectorStats struct {
	// Format is "vxlan", "gre", "erspan2" or "erspan3"; Collector its
	// address.
	Format    string `json:"format"`
	Collector string `json:"collector"`
	// Device, Source, NextHop and NextHopMAC say how the tunnel leaves
	// now; Neighbour is the next hop's neighbour state; MTU the path MTU.
	// Empty when there is no route.
	Device     string `json:"device,omitempty"`
	Source     string `json:"source,omitempty"`
	NextHop    string `json:"next_hop,omitempty"`
	NextHopMAC string `json:"next_hop_mac,omitempty"`
	Neighbour  string `json:"neighbour,omitempty"`
	MTU        int    `json:"mtu,omitempty"`
	// Down says why copies cannot leave now; empty when they can.
	Down string `json:"down,omitempty"`
	// Packets counts copies handed to the collector; Frames and Bytes the
	// outer frames written and their bytes (Ethernet header included).
	Packets uint64 `json:"packets"`
	Frames  uint64 `json:"frames"`
	Bytes   uint64 `json:"bytes"`
	// IP and Ethernet count IP copies framed here and frames from netdev
	// hooks.
	IP       uint64 `json:"ip"`
	Ethernet uint64 `json:"ethernet"`
	// Segmented counts super-packets cut to InnerMTU;
	// ChecksumsCompleted copies whose partial checksum was completed.
	Segmented          uint64 `json:"segmented"`
	ChecksumsCompleted uint64 `json:"checksums_completed"`
	// Fragmented counts copies whose outer packet passed the path MTU and
	// was fragmented (VXLAN, GRE); Truncated copies cut to fit, T bit set
	// (ERSPAN).
	Fragmented uint64 `json:"fragmented"`
	Truncated  uint64 `json:"truncated"`
	// Errors counts copies not (completely) written, by reason: NoRoute
	// (no route or source address), NoNeighbour (next hop unresolved),
	// Send (the kernel refused a write), Other (a copy that cannot be
	// encapsulated).
	Errors      uint64 `json:"errors"`
	NoRoute     uint64 `json:"no_route"`
	NoNeighbour uint64 `json:"no_neighbour"`
	SendErrors  uint64 `json:"send_errors"`
	OtherErrors uint64 `json:"other_errors"`
	// ICMPUnreachable counts ICMP destination unreachable reports about
	// the tunnel's packets (the collector's port or protocol closed, no
	// route on the way): the copies left, but did not arrive. Unreachable
	// is the last such report when it came within the last 10 s.
	ICMPUnreachable uint64 `json:"icmp_unreachable"`
	Unreachable     string `json:"unreachable,omitempty"`
	// PacketTooBig counts ICMP packet-too-big (fragmentation-needed)
	// reports, each lowering the path MTU (shown in MTU) for 10 minutes.
	PacketTooBig uint64 `json:"packet_too_big"`
	// Lookups counts lookups after failed writes; NeighbourRequests the
	// times the kernel was asked to resolve or confirm the next hop.
	Lookups           uint64 `json:"lookups"`
	NeighbourRequests uint64 `json:"neighbour_requests"`
}

// Stats returns the collector's counters and path.
func (c *Collector) Stats() CollectorStats {
	c.mu.Lock()
	p := c.path
	icmp := c.icmp
	c.mu.Unlock()
	k := &c.c
	st := CollectorStats{
		Format: c.cfg.Format.String(), Collector: c.cfg.Addr.String(),
		Packets: k.packets.Load(), Frames: k.frames.Load(), Bytes: k.bytes.Load(),
		IP: k.framed.Load(), Ethernet: k.l2.Load(), Segmented: k.segmented.Load(), ChecksumsCompleted: k.checksums.Load(),
		Fragmented: k.fragmented.Load(), Truncated: k.truncated.Load(),
		Errors: k.errors.Load(), NoRoute: k.noRoute.Load(), NoNeighbour: k.noNeigh.Load(), SendErrors: k.sendErrs.Load(),
		OtherErrors: k.otherErrs.Load(), Lookups: k.lookups.Load(), NeighbourRequests: k.neighRequests.Load(),
	}
	if p.ifindex != 0 {
		st.Device, st.MTU, st.Neighbour = p.dev, p.mtu, p.neigh
		if p.src.IsValid() {
			st.Source = p.src.String()
		}
		st.NextHop = p.nextHop.String()
		if p.nhMAC != nil {
			st.NextHopMAC = p.nhMAC.String()
		}
	}
	if p.err != nil {
		st.Down = p.err.Error()
	}
	if icmp != nil {
		now := time.Now()
		st.ICMPUnreachable, st.Unreachable, st.PacketTooBig = icmp.report(now)
		if m := icmp.pathMTU(now); m > 0 && m < st.MTU {
			st.MTU = m
		}
	}
	return st
}

// Describe says in one line where the copies go and what the size policy
// did.
func (st CollectorStats) Describe() string {
	var policy string
	switch st.Format {
	case "erspan2", "erspan3":
		policy = fmt.Sprintf("%d truncated to fit (T bit)", st.Truncated)
	default:
		policy = fmt.Sprintf("%d fragmented", st.Fragmented)
	}
	if st.Down != "" {
		return fmt.Sprintf("%s to %s: down (%s): copies are counted as errors; %s", st.Format, st.Collector, st.Down, policy)
	}
	if st.Unreachable != "" {
		policy += "; unreachable: " + st.Unreachable
	}
	return fmt.Sprintf("%s to %s from %s by device %s via %s (%s, %s), path mtu %d; %d IP copies framed, %d Ethernet frames as seen, %d segmented here, %s",
		st.Format, st.Collector, st.Source, st.Device, st.NextHop, st.NextHopMAC, st.Neighbour, st.MTU,
		st.IP, st.Ethernet, st.Segmented, policy)
}
