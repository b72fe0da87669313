package mirror

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nfmirror/nfmirror/internal/pkt"
	"github.com/nfmirror/nfmirror/route"
)

// Writer writes every copy bound for one destination, IP packets and
// Ethernet frames alike, onto the device the destination's policy route
// names, with an AF_PACKET socket. It is the only way copies leave.
//
// The fwmark policy routing that route.Setup installs is the control plane:
// the default route of the destination's table (ip rule fwmark MARK|i lookup
// TABLE+i) decides the device each family's copies leave by, and the writer
// looks it up again whenever Refresh is called (the service calls it on every
// link and route change) or a write says the device is gone. An operator can
// point the table at another device and the copies follow.
//
// The data plane bypasses the host's netfilter. Copies are written with
// PACKET_QDISC_BYPASS, straight to the driver: no table's hooks (inet
// output and postrouting, netdev egress), no conntrack, no NAT see them, so
// a host firewall with policy drop cannot refuse them and no conntrack entry
// is made for them. Nothing is ever resolved either.
//
// Frames look as they did on the wire:
//   - IP copies get an Ethernet header built for the device: the device's
//     own MAC as destination (what routing over a NOARP port would give;
//     the analyzer needs promiscuous mode), the multicast MAC for multicast,
//     ff:ff:ff:ff:ff:ff for the limited broadcast, and the device's MAC as
//     source. A device without a link-layer header (tun, wireguard) gets
//     the IP packet as it is.
//   - Ethernet frames from netdev hooks are written byte-exact.
//   - A TCP, UDP checksum the kernel left for the device to compute is
//     completed (pkt.CompleteChecksum); any other checksum is left as it came.
//   - A copy larger than the device's MTU is cut into TCP segments or IP
//     fragments here, every checksum computed, unless the device segments
//     TCP in hardware: a NIC (a device with a parent bus) with TSO on gets
//     TCP super-packets whole, with a virtio_net_hdr (GSO). A veth or any
//     other virtual device would pass a super-packet to its peer whole, so
//     it never gets one. The operator's offload settings are never changed.
//   - Truncated copies (snaplen) are written as they are, cut again at the
//     MTU if the snaplen was larger than the device carries.
//
// All copies of a destination go through one socket per device, in the
// order they are given: the order the kernel made them in.
type Writer struct {
	mu   sync.Mutex
	dest route.Port // Name, Mark and Table are used
	h    *netlink.Handle
	nsfd int
	log  *slog.Logger

	// out[0] is where IPv4 copies leave, out[1] IPv6 copies; nil when the
	// family has no route in the destination's table. Both may be one
	// device. Frames from netdev hooks leave by out[0], else out[1].
	out      [2]*egress
	lastLook time.Time          // last lookup after a failed write
	hwGSO    func(*egress) bool // tests' override of the hardware GSO decision

	seg pkt.Segmenter
	vh  [pkt.VnetHdrLen]byte
	eth [maxLinkHdr]byte
	b   frameBatch
	c   writerCounters
}

var _ BatchSink = (*Writer)(nil)

// egress is one device copies leave by, and the socket writing to it.
type egress struct {
	ifindex int
	name    string
	mtu     int
	mac     net.HardwareAddr
	ether   bool // frames carry an Ethernet header
	hwGSO   bool // the device segments TCP itself: super-packets go whole
	carrier bool // up with carrier: frames can leave
	fd      int
}

// WriterOption changes how a Writer is opened.
type WriterOption func(*Writer)

// WithNetNS opens the writer's sockets and netlink handle in the network
// namespace of the given fd (0: the current namespace). The calling
// goroutine never stays in that namespace.
func WithNetNS(fd int) WriterOption {
	return func(w *Writer) { w.nsfd = fd }
}

// withHardwareGSO overrides the writer's decision whether a device segments
// TCP in hardware (tests: a veth standing in for a NIC with TSO).
func withHardwareGSO(f func(*egress) bool) WriterOption {
	return func(w *Writer) { w.hwGSO = f }
}

// NewWriter opens the writer of a destination set up by route.Setup (its
// Name, Mark and Table are used) and looks up the devices its table routes
// to. A family without a route is not an error: its copies fail and are
// counted until a route appears. log may be nil.
func NewWriter(dest route.Port, log *slog.Logger, opts ...WriterOption) (*Writer, error) {
	w := &Writer{dest: dest, log: discardIfNil(log)}
	for _, o := range opts {
		o(w)
	}
	h, err := netlinkHandle(w.nsfd)
	if err != nil {
		return nil, fmt.Errorf("writer for %s: %w", dest.Name, err)
	}
	// Strict checking makes the kernel dump only the table each Refresh
	// asks for (the service refreshes every few seconds) instead of every
	// route of the host, a full BGP table on a router; kernels before 4.20
	// lack it and dump them all.
	if err := h.SetStrictCheck(true); err != nil && !errors.Is(err, unix.ENOPROTOOPT) {
		h.Close()
		return nil, fmt.Errorf("writer for %s: netlink strict checking: %w", dest.Name, err)
	}
	w.h = h
	if err := w.Refresh(); err != nil {
		h.Close()
		return nil, fmt.Errorf("writer for %s: %w", dest.Name, err)
	}
	return w, nil
}

// Refresh looks up again which device each family's copies leave by, and
// that device's MTU and address, and opens or closes sockets to match. Each
// change is logged once.
func (w *Writer) Refresh() error {
	v4, v6, err := route.Lookup(w.h, w.dest.Table)
	if err != nil {
		return err
	}
	want := [2]int{v4, v6}
	var links [2]netlink.Link
	for i, idx := range want {
		if idx == 0 {
			continue
		}
		if links[i], err = w.h.LinkByIndex(idx); err != nil {
			want[i] = 0 // the route outlived its device for a moment
		}
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	var next [2]*egress
	var errs []error
	for i, idx := range want {
		if idx == 0 {
			continue
		}
		if i == 1 && idx == want[0] && next[0] != nil {
			next[1] = next[0]
			continue
		}
		e := w.egressFor(idx)
		if e == nil {
			e = &egress{ifindex: idx, fd: -1}
		}
		if err := w.update(e, links[i]); err != nil {
			errs = append(errs, err)
			continue
		}
		next[i] = e
	}
	for _, old := range w.out {
		if old != nil && old != next[0] && old != next[1] && old.fd >= 0 {
			unix.Close(old.fd)
			old.fd = -1
		}
	}
	for i, fam := range []string{"ipv4", "ipv6"} {
		switch o, n := w.out[i], next[i]; {
		case n == nil && o != nil:
			w.log.Warn("mirror destination has no route for a family any more: its copies are counted as errors", "dest", w.dest.Name, "family", fam, "table", w.dest.Table)
		case n != nil && (o == nil || o.ifindex != n.ifindex):
			w.log.Info("mirror destination leaves by", "dest", w.dest.Name, "family", fam, "device", n.name, "mtu", n.mtu, "segments", n.segmentation())
		}
	}
	w.out = next
	return errors.Join(errs...)
}

// egressFor returns the egress already open on ifindex, or nil.
func (w *Writer) egressFor(ifindex int) *egress {
	for _, e := range w.out {
		if e != nil && e.ifindex == ifindex && e.fd >= 0 {
			return e
		}
	}
	return nil
}

// update reads link's MTU, address and kind into e, opening e's socket if it
// has none. A changed MTU is logged.
func (w *Writer) update(e *egress, link netlink.Link) error {
	a := link.Attrs()
	if e.fd < 0 {
		fd, err := openWriteSocket(w.nsfd, a.Index, w.dest.Mark)
		if err != nil {
			return fmt.Errorf("open socket on %s: %w", a.Name, err)
		}
		e.fd = fd
	} else if e.mtu != a.MTU {
		w.log.Info("mirror device MTU changed", "dest", w.dest.Name, "device", a.Name, "mtu", a.MTU, "was", e.mtu)
	}
	carrier := a.RawFlags&unix.IFF_UP != 0 && a.RawFlags&unix.IFF_LOWER_UP != 0
	if e.fd >= 0 && e.name != "" && carrier != e.carrier {
		w.log.Info("mirror device carrier changed", "dest", w.dest.Name, "device", a.Name, "carrier", carrier)
	}
	e.carrier = carrier
	e.name, e.mtu = a.Name, a.MTU
	e.mac = slices.Clone(a.HardwareAddr)
	e.ether = a.EncapType == "ether" && len(e.mac) == 6
	switch {
	case !e.ether:
		e.hwGSO = false
	case w.hwGSO != nil:
		e.hwGSO = w.hwGSO(e)
	default:
		// A NIC has a parent bus (pci, virtio, ...); a veth, a bridge,
		// a tunnel has none and would pass a super-packet on whole.
		e.hwGSO = a.ParentDevBus != "" && tsoOn(e)
	}
	return nil
}

// segmentation says who cuts super-packets for this device, for logs and
// status.
func (e *egress) segmentation() string {
	if e.hwGSO {
		return "device (TSO)"
	}
	return "nfmirror"
}

// tsoOn reports whether TCP segmentation offload is on for e's device.
func tsoOn(e *egress) bool {
	on, err := ethtoolGetTSO(e.fd, e.name)
	return err == nil && on
}

// openWriteSocket opens an AF_PACKET socket that writes frames, each
// preceded by a virtio_net_hdr, straight to the driver of ifindex (no qdisc,
// no netfilter hook), with mark. It receives nothing.
func openWriteSocket(nsfd, ifindex int, mark uint32) (int, error) {
	var fd int
	err := inNetNS(nsfd, func() error {
		var err error
		// Protocol 0: the socket receives nothing, so nothing queues up.
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return -1, fmt.Errorf("open packet socket: %w", err)
	}
	opts := []struct {
		what       string
		level, opt int
		val        int
	}{
		// The mark keeps a copy from being copied again should it pass a
		// hook after all (a tunnel device re-enters the stack with it):
		// every chain's loop guard skips it.
		{"mark", unix.SOL_SOCKET, unix.SO_MARK, int(mark)},
		{"qdisc bypass", unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1},
		{"vnet header", unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1},
	}
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, o.val); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("set %s on packet socket: %w", o.what, err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifindex}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind packet socket to ifindex %d: %w", ifindex, err)
	}
	return fd, nil
}

// ethtool ioctl (linux/ethtool.h, linux/sockios.h).
const (
	siocEthtool = 0x8946
	ethtoolGTSO = 0x1e
)

// ethtoolGetTSO asks the kernel whether TCP segmentation offload is on for
// the device name (ETHTOOL_GTSO, any of the TSO features), through fd.
func ethtoolGetTSO(fd int, name string) (bool, error) {
	val := struct{ cmd, data uint32 }{cmd: ethtoolGTSO}
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [16]byte
	}
	copy(ifr.name[:], name)
	ifr.data = unsafe.Pointer(&val)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), siocEthtool, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
		return false, errno
	}
	return val.data != 0, nil
}

// Errors a copy can fail with before it reaches the kernel.
var (
	// ErrNoRoute is counted for a copy of a family that has no route in its
	// destination's table: the family is off on the host (disable_ipv6) or
	// the device is gone.
	ErrNoRoute = errors.New("no route for this family in the destination's table")
	// errNotIP is counted for an IP copy that is not an IP packet.
	errNotIP = errors.New("not an IP packet")
	// errNotEthernet is counted for an Ethernet frame bound for a device
	// without Ethernet headers.
	errNotEthernet = errors.New("an Ethernet frame for a device without Ethernet headers")
	// ErrNoCarrier is counted for a copy bound for a device that is down
	// or has no carrier: nothing would carry it.
	ErrNoCarrier = errors.New("the mirror device is down or has no carrier")
)

// Send writes one copy.
func (w *Writer) Send(p *Packet) error {
	var err [1]error
	w.SendBatch([]*Packet{p}, err[:])
	return err[0]
}

// SendBatch writes pkts in order, up to sendBatchMax frames per sendmmsg.
func (w *Writer) SendBatch(pkts []*Packet, errs []error) {
	if !w.sendBatch(pkts, errs) {
		return
	}
	// The device is gone, changed its MTU or the route moved: look again
	// (at most once a second) without waiting for Refresh.
	if err := w.Refresh(); err != nil {
		w.log.Debug("look up the mirror device", "dest", w.dest.Name, "err", err)
	}
}

// sendBatch is SendBatch under the writer's lock; it reports whether the
// errors call for a lookup of the device.
func (w *Writer) sendBatch(pkts []*Packet, errs []error) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.fd = -1
	failed := func(i int, err error) {
		if errs[i] == nil {
			errs[i] = err // the pipeline logs it with the destination's name
		}
	}
	for i, p := range pkts {
		errs[i] = nil
		w.c.packets.Add(1)
		if err := w.queue(p, i, failed); err != nil {
			failed(i, err)
		}
	}
	w.flush(failed)
	for i := range pkts {
		if errs[i] != nil {
			w.c.errors.Add(1)
			switch {
			case errors.Is(errs[i], ErrNoRoute):
				w.c.noRoute.Add(1)
			case errors.Is(errs[i], ErrNoCarrier):
				w.c.noCarrier.Add(1)
			}
		}
	}
	return lookupDue(errs, &w.lastLook, &w.c.lookups, ErrNoRoute, ErrNoCarrier)
}

// lookupDue reports whether errs hold an error that a fresh lookup of the
// device may cure (one of cures, or an error of a device that went away,
// went down or shrank its MTU) and the last lookup, at *last, is at least a
// second old; it then moves *last and counts the lookup in n.
func lookupDue(errs []error, last *time.Time, n *atomic.Uint64, cures ...error) bool {
	stale := false
	for _, err := range errs {
		if err == nil {
			continue
		}
		for _, c := range cures {
			stale = stale || errors.Is(err, c)
		}
		if stale || errors.Is(err, unix.ENXIO) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENETDOWN) || errors.Is(err, unix.EMSGSIZE) {
			stale = true
			break
		}
	}
	if !stale || time.Since(*last) < time.Second {
		return false
	}
	*last = time.Now()
	n.Add(1)
	return true
}

// flush sends the pending batch.
func (w *Writer) flush(failed func(int, error)) {
	if w.b.n == 0 {
		return
	}
	w.c.frames.Add(uint64(w.b.flush(failed)))
}

// add queues one frame on e's socket, flushing first when the batch is for
// another device or full.
func (w *Writer) add(e *egress, vh *[pkt.VnetHdrLen]byte, link, data []byte, proto uint16, who int, failed func(int, error)) {
	if w.b.fd != e.fd || w.b.full() {
		w.flush(failed)
		w.b.fd = e.fd
	}
	if e.ether {
		proto = 0
	}
	w.b.add(vh, link, data, e.ifindex, proto, who)
}

// queue prepares the frames of copy i and queues them; an error is the
// copy's failure before any write.
func (w *Writer) queue(p *Packet, i int, failed func(int, error)) error {
	var (
		e    *egress
		link []byte // the link-layer header, in front of ip
		ip   []byte // the IP packet, or the rest of a frame that is not IP
		v6   bool
	)
	if p.L2 {
		e = w.out[0]
		if e == nil {
			e = w.out[1]
		}
		if e == nil {
			return ErrNoRoute
		}
		if !e.ether {
			return errNotEthernet
		}
		if !e.carrier {
			return ErrNoCarrier
		}
		w.c.l2.Add(1)
		f := p.Data
		mac, etype := pkt.MACHeaderLen(f)
		if etype != pkt.EthIPv4 && etype != pkt.EthIPv6 || p.OrigLen > len(f) {
			w.add(e, nil, nil, f, 0, i, failed) // as seen; the kernel refuses one too big
			return nil
		}
		link, ip, v6 = f[:mac], f[mac:], etype == pkt.EthIPv6
	} else {
		if !pkt.Plausible(p.Data) {
			return fmt.Errorf("%w (%d bytes)", errNotIP, len(p.Data))
		}
		ip, v6 = p.Data, p.Data[0]>>4 == 6
		if e = w.out[b2i(v6)]; e == nil {
			return ErrNoRoute
		}
		if !e.carrier {
			return ErrNoCarrier
		}
		w.c.framed.Add(1)
		if e.ether {
			link = w.eth[:14]
			pkt.EthernetHeader(link, ip, e.mac)
		}
	}
	proto := uint16(pkt.EthIPv4)
	if v6 {
		proto = pkt.EthIPv6
	}
	l, ok := pkt.Parse(ip)
	whole := ok && p.OrigLen <= len(p.Data)
	if whole && !p.L2 {
		ip = ip[:l.End]
	}
	switch {
	case !whole:
		// As seen; a copy cut by a snaplen larger than the port carries
		// is cut again at the port's MTU.
		if ok && len(ip) > e.mtu {
			ip = ip[:e.mtu]
		}
		w.add(e, nil, link, ip, proto, i, failed)
		return nil
	case l.End <= e.mtu:
		if pkt.CompleteChecksumLayout(ip, l) {
			w.c.checksums.Add(1)
		}
		w.add(e, nil, link, ip, proto, i, failed)
		return nil
	case e.hwGSO && pkt.GSOHeader(&w.vh, ip, l, len(link), e.mtu):
		w.c.gso.Add(1)
		w.add(e, &w.vh, link, ip[:l.End], proto, i, failed)
		return nil
	}
	// Cut it here. The segments live in w.seg until the next split, so
	// they are sent before this returns; the link header is copied per
	// frame by the batch.
	w.flush(failed)
	frames, err := w.seg.Split(ip, e.mtu, false)
	if err != nil {
		return err
	}
	w.c.segmented.Add(1)
	for _, f := range frames {
		w.add(e, nil, link, f, proto, i, failed)
	}
	w.flush(failed)
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Close closes the writer's sockets and netlink handle.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var err error
	for i, e := range w.out {
		if e != nil && e.fd >= 0 {
			if cerr := unix.Close(e.fd); cerr != nil && err == nil {
				err = fmt.Errorf("close packet socket: %w", cerr)
			}
			e.fd = -1
		}
		w.out[i] = nil
	}
	if w.h != nil {
		w.h.Close()
		w.h = nil
	}
	return err
}

// writerCounters count what a writer did.
type writerCounters struct {
	packets, frames, framed, l2, segmented, gso, checksums, errors, noRoute, noCarrier, lookups atomic.Uint64
}

// Stats returns the writer's counters and devices.
func (w *Writer) Stats() WriterStats {
	w.mu.Lock()
	var devs []WriterDevice
	for i, e := range w.out {
		if e == nil {
			continue
		}
		fam := []string{"ipv4", "ipv6"}[i]
		if i == 1 && w.out[0] == e {
			devs[0].Families = append(devs[0].Families, fam)
			continue
		}
		devs = append(devs, WriterDevice{Families: []string{fam}, Name: e.name, MTU: e.mtu, Segments: e.segmentation(), Carrier: e.carrier})
	}
	w.mu.Unlock()
	c := &w.c
	return WriterStats{
		Devices: devs, Packets: c.packets.Load(), Frames: c.frames.Load(), IP: c.framed.Load(), Ethernet: c.l2.Load(),
		Segmented: c.segmented.Load(), GSO: c.gso.Load(), ChecksumsCompleted: c.checksums.Load(),
		Errors: c.errors.Load(), NoRoute: c.noRoute.Load(), NoCarrier: c.noCarrier.Load(), Lookups: c.lookups.Load(),
	}
}
