package mirror

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nfmirror/nfmirror/internal/nstest"
	"github.com/nfmirror/nfmirror/route"
	"golang.org/x/sys/unix"
)

// txPackets returns how many packets dev in ns has sent.
func txPackets(t *testing.T, ns *nstest.NS, dev string) uint64 {
	t.Helper()
	l, err := ns.Handle(t).LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Statistics.TxPackets
}

// captureSocket opens an AF_PACKET socket in ns that receives every frame
// of dev, in both directions, and closes it when the test ends.
func captureSocket(t *testing.T, ns *nstest.NS, dev string) int {
	t.Helper()
	link, err := ns.Handle(t).LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	err = inNetNS(ns.FD(), func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		return err
	})
	if err != nil {
		t.Fatalf("capture socket on %s: %v", dev, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: link.Attrs().Index}); err != nil {
		t.Fatal(err)
	}
	return fd
}

// spanLab is a router namespace whose mirror port span0 leads to mon0 in a
// monitor namespace, plus a second interface other0 that carries the
// router's default routes, so that a misrouted copy would leave there.
type spanLab struct {
	r, m    *nstest.NS
	routing *route.Routing
	port    route.Port
	capFD   int // AF_PACKET on mon0
	otherFD int // AF_PACKET on other1
}

// assertNothingElsewhere fails the test if any copy (or an answer to one: the
// test copies come from 198.18.50.1 or 2001:db8:50::1, or carry "nfm-")
// arrived on other1.
func (l *spanLab) assertNothingElsewhere(t *testing.T) {
	t.Helper()
	buf := make([]byte, 70000)
	for range 10000 {
		n, _, err := unix.Recvfrom(l.otherFD, buf, unix.MSG_DONTWAIT)
		if err != nil {
			return
		}
		f := buf[:n]
		if bytes.Contains(f, []byte("nfm-")) || bytes.Contains(f, []byte{198, 18, 50, 1}) || bytes.Contains(f, sinkIP("2001:db8:50::1")) {
			t.Errorf("a copy or an answer to one left through other0: % x", f)
		}
	}
}

func newSpanLab(t *testing.T) *spanLab {
	r, m := nstest.New(t), nstest.New(t)
	r.IP(t, "link", "add", "span0", "type", "veth", "peer", "name", "mon0", "netns", m.Name)
	r.IP(t, "link", "add", "other0", "type", "veth", "peer", "name", "other1", "netns", m.Name)
	// No IPv6 link-local address on the port: no DAD, no router
	// solicitations of its own on the mirror.
	r.IP(t, "link", "set", "span0", "addrgenmode", "none")
	// Checksum offload (and with it TSO) off, as for a wire: the kernel
	// segments the GSO frames the sinks write and computes their checksums,
	// so mon0 receives what a cable would carry. With offloads on, a veth
	// passes a GSO frame whole, checksum still to be computed.
	r.MustRun(t, "ethtool", "-K", "span0", "tx", "off")
	r.IP(t, "addr", "add", "198.18.0.1/32", "dev", "lo")
	r.IP(t, "addr", "add", "2001:db8::1/128", "dev", "lo")
	r.IP(t, "link", "set", "other0", "up")
	r.IP(t, "addr", "add", "198.18.1.1/24", "dev", "other0")
	r.IP(t, "addr", "add", "2001:db8:1::1/64", "dev", "other0", "nodad")
	r.IP(t, "route", "add", "default", "via", "198.18.1.2")
	r.IP(t, "-6", "route", "add", "default", "via", "2001:db8:1::2")
	m.IP(t, "link", "set", "mon0", "addrgenmode", "none")
	m.IP(t, "link", "set", "mon0", "promisc", "on", "up")
	m.IP(t, "link", "set", "other1", "up")
	routing, err := route.Setup(r.Handle(t), route.Config{StateDir: t.TempDir()}, []string{"span0"})
	if err != nil {
		t.Fatalf("route.Setup: %v", err)
	}
	t.Cleanup(func() { routing.Undo() })
	l := &spanLab{r: r, m: m, routing: routing, port: routing.Ports()[0]}
	l.capFD = captureSocket(t, m, "mon0")
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	unix.SetsockoptTimeval(l.capFD, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	// Everything that leaves other0 is watched too: the kernel's own
	// chatter (ND, MLD, ARP) may pass there, copies must not.
	l.otherFD = captureSocket(t, m, "other1")
	time.Sleep(200 * time.Millisecond) // carrier up
	l.drain()
	return l
}

func (l *spanLab) drain() {
	buf := make([]byte, 70000)
	for range 1000 {
		if _, _, err := unix.Recvfrom(l.capFD, buf, unix.MSG_DONTWAIT); err != nil {
			return
		}
	}
}

// capture returns the frames that arrive on mon0 until want of them have
// come and then 300 ms of quiet, or 3 s have passed.
func (l *spanLab) capture(want int) [][]byte {
	var got [][]byte
	buf := make([]byte, 70000)
	deadline := time.Now().Add(3 * time.Second)
	quietUntil := time.Time{}
	for time.Now().Before(deadline) {
		n, from, err := unix.Recvfrom(l.capFD, buf, 0)
		if err != nil {
			if len(got) >= want && time.Now().After(quietUntil) {
				break
			}
			continue
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		got = append(got, append([]byte(nil), buf[:n]...))
		quietUntil = time.Now().Add(300 * time.Millisecond)
	}
	return got
}

// routeSink opens a route sink on the lab's port, closed when the test ends.
func (l *spanLab) routeSink(t *testing.T) *RouteSink {
	t.Helper()
	s, err := NewRouteSink(l.port, nil, WithNetNS(l.r.FD()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// l2Sink opens an L2 sink on the lab's port, closed when the test ends.
func (l *spanLab) l2Sink(t *testing.T) *L2Sink {
	t.Helper()
	s, err := NewL2Sink(l.port, nil, WithNetNS(l.r.FD()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// sinkUDPPacket builds a whole IPv4 or IPv6 UDP packet with correct checksums.
func sinkUDPPacket(src, dst string, hops byte, payload string) []byte {
	v6 := strings.Contains(dst, ":")
	var ip []byte
	udp := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:], 40001)
	binary.BigEndian.PutUint16(udp[2:], 9)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	udp = append(udp, payload...)
	if v6 {
		ip = make([]byte, 40)
		ip[0], ip[1], ip[2], ip[3] = 0x62, 0x81, 0x23, 0x45
		binary.BigEndian.PutUint16(ip[4:], uint16(len(udp)))
		ip[6], ip[7] = protoUDP, hops
		copy(ip[8:], sinkIP(src).To16())
		copy(ip[24:], sinkIP(dst).To16())
	} else {
		ip = make([]byte, 20)
		ip[0], ip[1] = 0x45, 0x28
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(udp)))
		binary.BigEndian.PutUint16(ip[4:], 0x4242)
		ip[6], ip[8], ip[9] = 0x40, hops, protoUDP
		copy(ip[12:], sinkIP(src).To4())
		copy(ip[16:], sinkIP(dst).To4())
	}
	pkt := append(ip, udp...)
	fixChecksums(pkt)
	return pkt
}

func TestRouteSinkDelivery(t *testing.T) {
	l := newSpanLab(t)
	s := l.routeSink(t)
	own := l.port.MAC
	bcast := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	tests := []struct {
		name   string
		pkt    []byte
		dstMAC []byte
	}{
		{"ipv4 routed", sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, "nfm-v4"), own},
		{"ipv6 routed", sinkUDPPacket("2001:db8:50::1", "2001:db8:60::2", 5, "nfm-v6"), own},
		{"ipv4 to the router", sinkUDPPacket("198.18.50.1", "198.18.0.1", 9, "nfm-local4"), own},
		{"ipv6 to the router", sinkUDPPacket("2001:db8:50::1", "2001:db8::1", 9, "nfm-local6"), own},
		{"ipv4 to the other0 address", sinkUDPPacket("198.18.50.1", "198.18.1.1", 9, "nfm-local4b"), own},
		{"ipv4 directed broadcast", sinkUDPPacket("198.18.50.1", "198.18.1.255", 9, "nfm-bcast"), bcast},
		{"ipv4 broadcast", sinkUDPPacket("198.18.50.1", "255.255.255.255", 9, "nfm-bcast2"), bcast},
		{"ipv4 multicast", sinkUDPPacket("198.18.50.1", "224.0.0.251", 1, "nfm-mcast4"), []byte{1, 0, 0x5e, 0, 0, 0xfb}},
		{"ipv6 multicast", sinkUDPPacket("fe80::1", "ff02::fb", 1, "nfm-mcast6"), []byte{0x33, 0x33, 0, 0, 0, 0xfb}},
		{"ipv6 link-local", sinkUDPPacket("fe80::1", "fe80::2", 255, "nfm-ll6"), own},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loTx := txPackets(t, l.r, "lo")
			if err := s.Send(&Packet{Data: tt.pkt}); err != nil {
				t.Fatalf("Send: %v", err)
			}
			frames := l.capture(1)
			if len(frames) != 1 {
				t.Fatalf("%d frames on mon0, want 1", len(frames))
			}
			f := frames[0]
			etype := []byte{0x08, 0x00}
			if tt.pkt[0]>>4 == 6 {
				etype = []byte{0x86, 0xdd}
			}
			want := append(append(append(append([]byte{}, tt.dstMAC...), own...), etype...), tt.pkt...)
			if !bytes.Equal(f, want) {
				t.Errorf("frame on mon0:\n got % x\nwant % x", f, want)
			}
			if d := txPackets(t, l.r, "lo") - loTx; d != 0 {
				t.Errorf("%d packets delivered locally (lo tx)", d)
			}
		})
	}
	st := s.Stats()
	if st.Errors != 0 || st.Sent != uint64(len(tests)) || st.L2 != 8 {
		t.Errorf("stats %+v, want %d sent, 8 at layer 2, no errors", st, len(tests))
	}
	l.assertNothingElsewhere(t)
}

// sendBatch sends pkts in one SendBatch, fails the test for any error, and
// returns the frames mon0 received, which must be want of them.
func (l *spanLab) sendBatch(t *testing.T, s BatchSink, pkts []*Packet, want int) [][]byte {
	t.Helper()
	errs := make([]error, len(pkts))
	s.SendBatch(pkts, errs)
	for i, err := range errs {
		if err != nil {
			t.Errorf("copy %d: %v", i, err)
		}
	}
	got := l.capture(want)
	if len(got) != want {
		t.Fatalf("%d frames on mon0, want %d", len(got), want)
	}
	return got
}

// TestRouteSinkSendBatch sends one batch mixing what goes out in sendmmsg
// (routed IPv4 and IPv6, one with a broken checksum to fix) with what goes
// one by one (a copy to the router itself, written at layer 2, and a super-
// packet handed to the kernel to segment): every copy arrives, once, in the
// order of the batch.
func TestRouteSinkSendBatch(t *testing.T) {
	l := newSpanLab(t)
	s := l.routeSink(t)
	broken := sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, "nfm-b4")
	fixed := append([]byte(nil), broken...)
	broken[26], broken[27] = 0x12, 0x34 // the UDP checksum, as a partial one would be
	super := testPacket(false, protoTCP, 9000-52)
	datas := [][]byte{
		sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, "nfm-b1"),
		sinkUDPPacket("2001:db8:50::1", "2001:db8:60::2", 5, "nfm-b2"),
		sinkUDPPacket("198.18.50.1", "198.18.0.1", 9, "nfm-b3"), // local: layer 2
		broken,
		super,
		sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, "nfm-b5"),
	}
	want := [][]byte{datas[0], datas[1], datas[2], fixed}
	var seg segmenter
	frames, err := seg.split(super, l.port.MTU, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		want = append(want, append([]byte(nil), f[headroom:]...))
	}
	want = append(want, datas[5])
	pkts := make([]*Packet, len(datas))
	for i, d := range datas {
		pkts[i] = &Packet{Data: append([]byte(nil), d...)}
	}
	got := l.sendBatch(t, s, pkts, len(want))
	for i, f := range got {
		if len(f) < 14 || !bytes.Equal(f[14:], want[i]) {
			t.Errorf("frame %d:\n got % x\nwant (after the MAC header) % x", i, f, want[i])
		}
	}
	st := s.Stats()
	if st.Packets != 6 || st.Sent != 6 || st.Errors != 0 || st.L2 != 1 || st.GSO != 1 || st.Segmented != 0 {
		t.Errorf("stats %+v, want 6 copies and 6 writes, 1 at layer 2, 1 handed to the kernel to segment, no errors", st)
	}
	l.assertNothingElsewhere(t)
}

func TestRouteSinkSuperPacket(t *testing.T) {
	l := newSpanLab(t)
	s := l.routeSink(t)
	for _, v6 := range []bool{false, true} {
		pkt := testPacket(v6, protoTCP, 9000-52)
		if v6 {
			pkt = testPacket(v6, protoTCP, 9000-72)
		}
		ipl := 20
		if v6 {
			ipl = 40
		}
		if err := s.Send(&Packet{Data: pkt}); err != nil {
			t.Fatalf("v6=%v: Send: %v", v6, err)
		}
		frames := l.capture(7)
		if len(frames) != 7 {
			t.Fatalf("v6=%v: %d frames, want 7 segments", v6, len(frames))
		}
		var stream []byte
		for i, f := range frames {
			if len(f) > 1514 {
				t.Errorf("v6=%v: frame %d is %d bytes", v6, i, len(f))
			}
			p := f[14:]
			th := p[ipl:]
			if naiveSum(pseudo(p, protoTCP, len(th)), th) != 0xffff {
				t.Errorf("v6=%v: segment %d: bad TCP checksum", v6, i)
			}
			stream = append(stream, th[32:]...)
		}
		if !bytes.Equal(stream, pkt[ipl+32:]) {
			t.Errorf("v6=%v: reassembled stream differs", v6)
		}
	}
}

// TestSinkGSOWholeOnOffloadingPort: on a port with checksum offload and TSO
// (a veth's default, like a NIC that segments in hardware) a TCP
// super-packet leaves in one write and reaches the peer whole, as the
// kernel's dup delivers it; only its TCP checksum, left for the hardware,
// differs.
func TestSinkGSOWholeOnOffloadingPort(t *testing.T) {
	l := newSpanLab(t)
	l.r.MustRun(t, "ethtool", "-K", "span0", "tx", "on", "tso", "on")
	rs := l.routeSink(t)
	ls := l.l2Sink(t)
	for _, v6 := range []bool{false, true} {
		pkt := testPacket(v6, protoTCP, 20000)
		ipl := 20
		if v6 {
			ipl = 40
		}
		frame := append([]byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00}, pkt...)
		if v6 {
			frame[12], frame[13] = 0x86, 0xdd
		}
		for _, send := range []struct {
			name string
			fn   func() error
		}{
			{"route sink", func() error { return rs.Send(&Packet{Data: append([]byte(nil), pkt...)}) }},
			{"l2 sink", func() error { return ls.Send(&Packet{Data: append([]byte(nil), frame...), L2: true}) }},
		} {
			if err := send.fn(); err != nil {
				t.Fatalf("v6=%v %s: %v", v6, send.name, err)
			}
			got := l.capture(1)
			if len(got) != 1 || len(got[0]) != 14+len(pkt) {
				t.Fatalf("v6=%v %s: %d frames, want the super-packet whole (%d bytes)", v6, send.name, len(got), 14+len(pkt))
			}
			ip := got[0][14:]
			ck := ipl + tcpChecksumField
			if !bytes.Equal(ip[:ck], pkt[:ck]) || !bytes.Equal(ip[ck+2:], pkt[ck+2:]) {
				t.Errorf("v6=%v %s: the super-packet changed on its way", v6, send.name)
			}
		}
	}
	if rs.Stats().GSO != 2 || ls.Stats().GSO != 2 {
		t.Errorf("GSO writes: route sink %d, l2 sink %d, want 2 each", rs.Stats().GSO, ls.Stats().GSO)
	}
	l.assertNothingElsewhere(t)
}

func TestL2SinkByteExact(t *testing.T) {
	l := newSpanLab(t)
	s := l.l2Sink(t)
	ip := sinkUDPPacket("198.18.50.1", "198.18.60.2", 3, "nfm-l2")
	ip[len(ip)-1] ^= 0xff // a wrong checksum stays wrong: byte-exact
	frame := append([]byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00}, ip...)
	arp := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 2, 0x08, 0x06}, make([]byte, 28)...)
	for _, f := range [][]byte{frame, arp} {
		if err := s.Send(&Packet{Data: f, L2: true}); err != nil {
			t.Fatal(err)
		}
		got := l.capture(1)
		if len(got) != 1 || !bytes.Equal(got[0], f) {
			t.Errorf("got %d frames, first % x; want % x", len(got), got, f)
		}
	}
	l.assertNothingElsewhere(t)
}

// TestL2SinkSendBatch writes frames in one batch, a super-frame to segment
// among them: all arrive byte-exact and in order.
func TestL2SinkSendBatch(t *testing.T) {
	l := newSpanLab(t)
	s := l.l2Sink(t)
	mac := []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00}
	small := func(payload string) []byte {
		return append(append([]byte(nil), mac...), sinkUDPPacket("198.18.50.1", "198.18.60.2", 3, payload)...)
	}
	super := append(append([]byte(nil), mac...), testPacket(false, protoTCP, 4000-52)...)
	datas := [][]byte{small("nfm-l2b1"), small("nfm-l2b2"), super, small("nfm-l2b3")}
	want := [][]byte{datas[0], datas[1]}
	var seg segmenter
	frames, err := seg.split(super[14:], l.port.MTU, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		want = append(want, append(append([]byte(nil), mac...), f[headroom:]...))
	}
	want = append(want, datas[3])
	pkts := make([]*Packet, len(datas))
	for i, d := range datas {
		pkts[i] = &Packet{Data: d, L2: true}
	}
	got := l.sendBatch(t, s, pkts, len(want))
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("frame %d:\n got % x\nwant % x", i, got[i], want[i])
		}
	}
	l.assertNothingElsewhere(t)
}

func TestSinkPortComesBack(t *testing.T) {
	l := newSpanLab(t)
	rs := l.routeSink(t)
	pkt := sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, "nfm-back")
	l.r.IP(t, "link", "del", "span0")
	// Sends fail while the port is gone, and are counted.
	for range 3 {
		if err := rs.Send(&Packet{Data: pkt}); err == nil {
			t.Error("Send succeeded with the port gone")
		}
	}
	l.r.IP(t, "link", "add", "span0", "type", "veth", "peer", "name", "mon0", "netns", l.m.Name)
	l.r.IP(t, "link", "set", "span0", "addrgenmode", "none")
	l.m.IP(t, "link", "set", "mon0", "addrgenmode", "none")
	l.m.IP(t, "link", "set", "mon0", "promisc", "on", "up")
	if err := l.routing.Reapply(); err != nil {
		t.Fatalf("Reapply: %v", err)
	}
	mon, err := l.m.Handle(t).LinkByName("mon0")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(l.capFD, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: mon.Attrs().Index}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the sink looks again at most once a second
	l.drain()
	var ok bool
	for range 5 { // the first send after the port returns may fail and re-resolve
		if err := rs.Send(&Packet{Data: pkt}); err == nil {
			ok = true
			break
		}
	}
	if !ok {
		t.Fatalf("the sink did not resume: %+v", rs.Stats())
	}
	frames := l.capture(1)
	if len(frames) != 1 || !bytes.Equal(frames[0][14:], pkt) {
		t.Errorf("after the port came back: %d frames", len(frames))
	}
	if st := rs.Stats(); st.Errors < 3 || st.Resolves < 1 {
		t.Errorf("stats %+v: want the failures counted and a re-resolve", st)
	}
}

func sinkIP(s string) net.IP {
	ip := net.ParseIP(s)
	if ip == nil {
		panic("bad IP " + s)
	}
	return ip
}

func TestSinkFixesChecksumsAndKeepsTruncated(t *testing.T) {
	l := newSpanLab(t)
	s := l.routeSink(t)
	for _, dst := range []string{"198.18.60.2", "2001:db8:60::2", "198.18.0.1"} {
		good := sinkUDPPacket("198.18.50.1", dst, 7, "nfm-partial")
		if strings.Contains(dst, ":") {
			good = sinkUDPPacket("2001:db8:50::1", dst, 7, "nfm-partial")
		}
		partial := append([]byte(nil), good...)
		ipl := 20
		if good[0]>>4 == 6 {
			ipl = 40
		} else {
			partial[10] ^= 0x5a // and a broken IPv4 header checksum
		}
		partial[ipl+6], partial[ipl+7] = 0x12, 0x34 // a partial checksum
		if err := s.Send(&Packet{Data: partial}); err != nil {
			t.Fatalf("%s: Send: %v", dst, err)
		}
		frames := l.capture(1)
		if len(frames) != 1 || !bytes.Equal(frames[0][14:], good) {
			t.Errorf("%s: got %d frames, want one with the checksums fixed:\n got % x\nwant % x", dst, len(frames), frames, good)
		}
	}
	// A truncated copy (snaplen 1200 of a 3000-byte packet) goes as it is.
	trunc := testPacket(true, protoTCP, 3000)[:1200]
	trunc[8+40+16] ^= 0xff // whatever its checksum says stays
	trunc[24] = 0x20       // route it: 2001:db8:...
	if err := s.Send(&Packet{Data: trunc, OrigLen: 3072}); err != nil {
		t.Fatalf("truncated: Send: %v", err)
	}
	frames := l.capture(1)
	if len(frames) != 1 || !bytes.Equal(frames[0][14:], trunc) {
		t.Errorf("truncated copy: got %d frames, want it unchanged", len(frames))
	}
}

func TestL2SinkSegmentsSuperFrame(t *testing.T) {
	l := newSpanLab(t)
	s := l.l2Sink(t)
	for _, vlan := range []bool{false, true} {
		mac := []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2}
		if vlan {
			mac = append(mac, 0x81, 0x00, 0x00, 0x2a)
		}
		mac = append(mac, 0x08, 0x00)
		ip := testPacket(false, protoTCP, 9000-52)
		if err := s.Send(&Packet{Data: append(append([]byte(nil), mac...), ip...), L2: true}); err != nil {
			t.Fatalf("vlan=%v: Send: %v", vlan, err)
		}
		frames := l.capture(7)
		if len(frames) != 7 {
			t.Fatalf("vlan=%v: %d frames, want 7", vlan, len(frames))
		}
		if vlan {
			// The receiving veth strips the tag into metadata (VLAN
			// offload), so the capture shows the frame without it.
			mac = append(mac[:12:12], 0x08, 0x00)
		}
		var stream []byte
		for i, f := range frames {
			if !bytes.Equal(f[:len(mac)], mac) {
				t.Errorf("vlan=%v: frame %d: MAC header % x, want % x", vlan, i, f[:len(mac)], mac)
			}
			p := f[len(mac):]
			if len(p) > 1500 || naiveSum(p[:20]) != 0xffff || naiveSum(pseudo(p, protoTCP, len(p)-20), p[20:]) != 0xffff {
				t.Errorf("vlan=%v: frame %d: %d bytes or bad checksums", vlan, i, len(p))
			}
			stream = append(stream, p[52:]...)
		}
		if !bytes.Equal(stream, ip[52:]) {
			t.Errorf("vlan=%v: reassembled stream differs", vlan)
		}
	}
}

func TestSinkCloseLeaksNothing(t *testing.T) {
	l := newSpanLab(t)
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	beforeFDs, beforeG := fds(), runtime.NumGoroutine()
	for range 3 {
		rs, err := NewRouteSink(l.port, nil, WithNetNS(l.r.FD()))
		if err != nil {
			t.Fatal(err)
		}
		ls, err := NewL2Sink(l.port, nil, WithNetNS(l.r.FD()))
		if err != nil {
			t.Fatal(err)
		}
		rs.Close()
		ls.Close()
	}
	for range 50 {
		if runtime.NumGoroutine() <= beforeG && fds() <= beforeFDs {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("after Close: %d fds (was %d), %d goroutines (was %d)", fds(), beforeFDs, runtime.NumGoroutine(), beforeG)
}

func TestSinkSendNoAllocs(t *testing.T) {
	l := newSpanLab(t)
	rs := l.routeSink(t)
	ls := l.l2Sink(t)
	routed := &Packet{Data: sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, "nfm-allocs")}
	local := &Packet{Data: sinkUDPPacket("198.18.50.1", "198.18.0.1", 7, "nfm-allocs")}
	super := &Packet{Data: testPacket(true, protoTCP, 9000)}
	frame := &Packet{Data: append(make([]byte, 14), routed.Data...), L2: true}
	frame.Data[12] = 0x08
	for _, p := range []*Packet{routed, local, super} {
		rs.Send(p) // warm up
	}
	batch := []*Packet{routed, routed, local, super, routed}
	frames := []*Packet{frame, frame}
	errs := make([]error, len(batch))
	allocs := testing.AllocsPerRun(20, func() {
		for _, p := range []*Packet{routed, local, super} {
			if err := rs.Send(p); err != nil {
				t.Fatal(err)
			}
		}
		if err := ls.Send(frame); err != nil {
			t.Fatal(err)
		}
		rs.SendBatch(batch, errs)
		ls.SendBatch(frames, errs[:len(frames)])
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	})
	l.drain() // the capture socket drops what does not fit; that is fine here
	if allocs != 0 {
		t.Errorf("%v allocations per round of sends", allocs)
	}
}
