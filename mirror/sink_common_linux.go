package mirror

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/nfmirror/nfmirror/route"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// SinkOption changes how a sink is opened.
type SinkOption func(*sinkConfig)

type sinkConfig struct {
	netnsFD int
}

// WithNetNS opens the sink's sockets (and its netlink handle) in the network
// namespace of the given fd (0: the current namespace). The calling goroutine
// never stays in that namespace.
func WithNetNS(fd int) SinkOption {
	return func(c *sinkConfig) { c.netnsFD = fd }
}

// SinkStats counts what a sink did. Errors are also returned by Send, for
// the pipeline to count as drops.
type SinkStats struct {
	Packets   uint64 // copies handed to Send
	Sent      uint64 // packets or frames written (a segmented copy counts each)
	L2        uint64 // IP copies written at layer 2 (local, broadcast, multicast)
	Segmented uint64 // copies split into TCP segments or IP fragments in userspace
	GSO       uint64 // TCP super-packets handed to the kernel whole, to segment (GSO)
	Errors    uint64 // copies not (completely) sent
	Resolves  uint64 // times the port's ifindex was looked up again
}

type sinkCounters struct {
	packets, sent, l2, segmented, gso, errors, resolves atomic.Uint64
}

func (c *sinkCounters) stats() SinkStats {
	return SinkStats{
		Packets: c.packets.Load(), Sent: c.sent.Load(), L2: c.l2.Load(),
		Segmented: c.segmented.Load(), GSO: c.gso.Load(), Errors: c.errors.Load(), Resolves: c.resolves.Load(),
	}
}

// inNetNS runs f on a locked OS thread switched into the namespace fd, and
// switches back before unlocking. fd 0 runs f in place.
func inNetNS(fd int, f func() error) error {
	if fd == 0 {
		return f()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(netns.NsHandle(fd)); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns: %w", err)
			return
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			// The thread stays locked and dies with this goroutine
			// rather than serving others in the wrong namespace.
			errc <- errors.Join(ferr, fmt.Errorf("return to netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// netlinkHandle opens a netlink handle in the namespace fd (0: current).
func netlinkHandle(fd int) (*netlink.Handle, error) {
	var h *netlink.Handle
	var err error
	if fd == 0 {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	} else {
		h, err = netlink.NewHandleAt(netns.NsHandle(fd), unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, fmt.Errorf("open netlink handle: %w", err)
	}
	return h, nil
}

// htons converts a 16-bit value to network byte order for sockaddr_ll.
func htons(v uint16) uint16 { return v<<8 | v>>8 }

// packetSocket is an AF_PACKET socket bound to a port, that writes whole
// frames and receives nothing.
type packetSocket struct {
	fd int
}

func openPacketSocket(nsfd, ifindex int, mark uint32) (*packetSocket, error) {
	return openPacketSocketQdisc(nsfd, ifindex, mark, true)
}

// openPacketSocketQdisc opens a packet socket as openPacketSocket does;
// bypass false keeps the qdisc path, which GSO frames need (a direct
// transmit drops a frame the kernel must segment first).
func openPacketSocketQdisc(nsfd, ifindex int, mark uint32, bypass bool) (*packetSocket, error) {
	var fd int
	err := inNetNS(nsfd, func() error {
		var err error
		// Protocol 0: the socket receives nothing, so nothing queues up.
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open packet socket: %w", err)
	}
	ps := &packetSocket{fd: fd}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(mark)); err != nil {
		ps.close()
		return nil, fmt.Errorf("set mark %#x on packet socket: %w", mark, err)
	}
	// Straight to the driver: no qdisc, no netdev egress hook, so the copy
	// cannot be mirrored again there.
	if !bypass {
		// The mark alone keeps the copy from being mirrored again: the
		// loop guard of every chain skips it, and the port guard lets it
		// out.
	} else if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
		ps.close()
		return nil, fmt.Errorf("set qdisc bypass on packet socket: %w", err)
	}
	if err := ps.bind(ifindex); err != nil {
		ps.close()
		return nil, err
	}
	return ps, nil
}

func (ps *packetSocket) bind(ifindex int) error {
	if err := unix.Bind(ps.fd, &unix.SockaddrLinklayer{Ifindex: ifindex}); err != nil {
		return fmt.Errorf("bind packet socket to ifindex %d: %w", ifindex, err)
	}
	return nil
}

func (ps *packetSocket) write(frame []byte) error {
	// MSG_DONTWAIT: a full socket buffer is a drop, not a stall.
	_, err := unix.SendmsgN(ps.fd, frame, nil, nil, unix.MSG_DONTWAIT)
	return err
}

func (ps *packetSocket) close() error { return unix.Close(ps.fd) }

// portState is the port as the sink currently knows it; it is looked up again
// by name when sends fail because the interface went away.
type portState struct {
	port     route.Port
	h        *netlink.Handle
	log      *slog.Logger
	lastLook time.Time
}

// linkGone reports whether a send error says the port's ifindex is stale.
func linkGone(err error) bool {
	return errors.Is(err, unix.ENXIO) || errors.Is(err, unix.ENODEV) ||
		errors.Is(err, unix.ENETDOWN) || errors.Is(err, unix.ENETUNREACH)
}

// resolve looks the port up by name again, at most once a second. It reports
// whether the ifindex changed, with the new port.
func (ps *portState) resolve() (route.Port, bool) {
	if time.Since(ps.lastLook) < time.Second {
		return ps.port, false
	}
	ps.lastLook = time.Now()
	link, err := ps.h.LinkByName(ps.port.Name)
	if err != nil {
		ps.log.Debug("mirror port still gone", "port", ps.port.Name, "err", err)
		return ps.port, false
	}
	a := link.Attrs()
	changed := a.Index != ps.port.Index
	ps.port.Index, ps.port.MTU, ps.port.MAC = a.Index, a.MTU, a.HardwareAddr
	if changed {
		ps.log.Info("mirror port came back", "port", ps.port.Name, "ifindex", a.Index)
	}
	return ps.port, changed
}

// sendFailed counts a failed send in c and, when err says the port's ifindex
// is stale, looks the port up again (see resolve); if it came back under a
// new ifindex, it counts the re-resolve and calls rebind to move the sink's
// sockets onto it. A failed rebind is logged: the next failed send tries
// again.
func (ps *portState) sendFailed(err error, c *sinkCounters, rebind func(route.Port) error) {
	c.errors.Add(1)
	if !linkGone(err) {
		return
	}
	port, changed := ps.resolve()
	if !changed {
		return
	}
	c.resolves.Add(1)
	if berr := rebind(port); berr != nil {
		ps.log.Warn("rebind sink to the mirror port", "port", port.Name, "err", berr)
	}
}

func discardIfNil(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return l
}

// ethernetHeader writes dst, src and the ethertype into h (14 bytes).
func ethernetHeader(h []byte, dst, src net.HardwareAddr, etype uint16) {
	copy(h[0:6], dst)
	copy(h[6:12], src)
	h[12], h[13] = byte(etype>>8), byte(etype)
}
