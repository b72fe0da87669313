package mirror

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nfmirror/nfmirror/internal/pkt"
)

// ICMP errors about the tunnel. Packets written with AF_PACKET have no
// socket for the kernel to report errors to, so a collector reads them
// itself: a raw ICMP (or ICMPv6) socket that the kernel filters down to
// destination unreachable and packet too big messages, of which it keeps
// those quoting one of its own packets (its source, its collector, UDP or
// GRE). An unreachable report (the collector's port or protocol closed, no
// route on the way) is counted and shown in status; a packet-too-big (or
// IPv4 fragmentation-needed) lowers the path MTU the outer packets are cut
// to, for pmtuExpiry, as the kernel's own PMTU cache would. These messages
// reach the socket only if the host's input firewall lets them in.

// pmtuExpiry is how long a learnt path MTU holds (the kernel's
// net.ipv4.route.mtu_expires default).
const pmtuExpiry = 10 * time.Minute

// icmpWatch reads the ICMP errors of one collector.
type icmpWatch struct {
	f    *os.File
	v6   bool
	done chan struct{}

	mu          sync.Mutex
	src, dst    netip.Addr
	unreachable uint64
	last        string // the last unreachable report, for status
	lastAt      time.Time
	pmtu        int // a learnt path MTU, 0 if none
	pmtuAt      time.Time
	tooBig      uint64
}

// ICMP types and option levels (linux/icmp.h, linux/icmpv6.h).
const (
	icmpDestUnreach    = 3
	icmpFragNeeded     = 4 // code of icmpDestUnreach
	icmpFilter         = 1 // SOL_RAW option: types to drop
	icmp6DestUnreach   = 1
	icmp6PacketTooBig  = 2
	icmp6Filter        = 1 // SOL_ICMPV6 option: types to drop
	solICMPv6          = 58
	icmpMinPMTU4       = 552 // the kernel's min_pmtu
	icmpMinPMTU6       = 1280
	icmpQuoteMinLength = 8 + 20 + 8
)

// openICMPWatch opens the raw socket in the namespace nsfd and starts
// reading it until close.
func openICMPWatch(nsfd int, v6 bool) (*icmpWatch, error) {
	var fd int
	err := inNetNS(nsfd, func() error {
		var err error
		if v6 {
			fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_ICMPV6)
		} else {
			fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_ICMP)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open icmp socket: %w", err)
	}
	if v6 {
		// struct icmp6_filter: a set bit drops the type.
		var filt [8]uint32
		for i := range filt {
			filt[i] = 0xffffffff
		}
		filt[0] &^= 1<<icmp6DestUnreach | 1<<icmp6PacketTooBig
		err = setsockoptBytes(fd, solICMPv6, icmp6Filter, unsafe.Pointer(&filt), int(unsafe.Sizeof(filt)))
	} else {
		err = unix.SetsockoptInt(fd, unix.SOL_RAW, icmpFilter, ^(1 << icmpDestUnreach))
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("filter icmp socket: %w", err)
	}
	// A small receive buffer: these messages are rare and only the last
	// ones matter.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 64<<10)
	w := &icmpWatch{f: os.NewFile(uintptr(fd), "icmp"), v6: v6, done: make(chan struct{})}
	go w.run()
	return w, nil
}

func setsockoptBytes(fd, level, opt int, p unsafe.Pointer, n int) error {
	_, _, errno := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(p), uintptr(n), 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// setFlow sets the outer addresses of the packets to recognise.
func (w *icmpWatch) setFlow(src, dst netip.Addr) {
	w.mu.Lock()
	w.src, w.dst = src, dst
	w.mu.Unlock()
}

func (w *icmpWatch) run() {
	defer close(w.done)
	buf := make([]byte, 2048)
	for {
		n, err := w.f.Read(buf)
		if errors.Is(err, os.ErrClosed) {
			return
		}
		if err != nil {
			time.Sleep(10 * time.Millisecond) // never spin on a broken socket
			continue
		}
		w.handle(buf[:n], time.Now())
	}
}

// handle looks at one ICMP message: for IPv4 from its IP header on, for
// IPv6 from its ICMPv6 header on.
func (w *icmpWatch) handle(b []byte, now time.Time) {
	var from netip.Addr
	if !w.v6 {
		if len(b) < 20 {
			return
		}
		ihl := int(b[0]&0x0f) * 4
		if len(b) < ihl+icmpQuoteMinLength {
			return
		}
		from = netip.AddrFrom4([4]byte(b[12:16]))
		b = b[ihl:]
	}
	if len(b) < 8 {
		return
	}
	typ, code := b[0], b[1]
	q := b[8:] // the quoted packet
	w.mu.Lock()
	defer w.mu.Unlock()
	var qsrc, qdst netip.Addr
	var proto byte
	switch {
	case !w.v6 && len(q) >= 20:
		qsrc, qdst, proto = netip.AddrFrom4([4]byte(q[12:16])), netip.AddrFrom4([4]byte(q[16:20])), q[9]
	case w.v6 && len(q) >= 40:
		qsrc, qdst, proto = netip.AddrFrom16([16]byte(q[8:24])), netip.AddrFrom16([16]byte(q[24:40])), q[6]
		if proto == pkt.ProtoFragment && len(q) >= 48 {
			proto = q[40]
		}
	default:
		return
	}
	if qsrc != w.src || qdst != w.dst || proto != pkt.ProtoUDP && proto != pkt.ProtoGRE {
		return
	}
	switch {
	case !w.v6 && typ == icmpDestUnreach && code == icmpFragNeeded:
		w.learnMTU(int(binary.BigEndian.Uint16(b[6:8])), icmpMinPMTU4, now)
	case w.v6 && typ == icmp6PacketTooBig:
		w.learnMTU(int(binary.BigEndian.Uint32(b[4:8])), icmpMinPMTU6, now)
	default:
		w.unreachable++
		w.lastAt = now
		w.last = unreachableText(w.v6, code)
		if from.IsValid() {
			w.last += " from " + from.String()
		}
	}
}

func (w *icmpWatch) learnMTU(mtu, floor int, now time.Time) {
	w.tooBig++
	if mtu < floor {
		mtu = floor
	}
	if w.pmtu == 0 || mtu < w.pmtu || now.Sub(w.pmtuAt) > pmtuExpiry {
		w.pmtu = mtu
	}
	w.pmtuAt = now
}

// pathMTU returns the learnt path MTU, or 0 when none holds.
func (w *icmpWatch) pathMTU(now time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pmtu == 0 || now.Sub(w.pmtuAt) > pmtuExpiry {
		return 0
	}
	return w.pmtu
}

// report returns the count of unreachable reports, the last one if it came
// within the last 10 s, and the count of too-big reports.
func (w *icmpWatch) report(now time.Time) (n uint64, recent string, tooBig uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.last != "" && now.Sub(w.lastAt) < 10*time.Second {
		recent = fmt.Sprintf("%s, %s ago", w.last, now.Sub(w.lastAt).Round(time.Second))
	}
	return w.unreachable, recent, w.tooBig
}

func unreachableText(v6 bool, code byte) string {
	if v6 {
		switch code {
		case 0:
			return "icmpv6 no route"
		case 1:
			return "icmpv6 administratively prohibited"
		case 3:
			return "icmpv6 address unreachable"
		case 4:
			return "icmpv6 port unreachable"
		}
		return fmt.Sprintf("icmpv6 unreachable code %d", code)
	}
	switch code {
	case 0:
		return "icmp net unreachable"
	case 1:
		return "icmp host unreachable"
	case 2:
		return "icmp protocol unreachable"
	case 3:
		return "icmp port unreachable"
	case 9, 10, 13:
		return "icmp administratively prohibited"
	}
	return fmt.Sprintf("icmp unreachable code %d", code)
}

// close stops the reader and closes the socket.
func (w *icmpWatch) close() error {
	err := w.f.Close()
	<-w.done
	return err
}
