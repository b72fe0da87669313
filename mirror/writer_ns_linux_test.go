package mirror

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfmirror/nfmirror/internal/config"
	"github.com/nfmirror/nfmirror/internal/nstest"
	"github.com/nfmirror/nfmirror/internal/pkt"
	"github.com/nfmirror/nfmirror/internal/pkt/pkttest"
	"github.com/nfmirror/nfmirror/route"
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
	// span0 keeps a veth's default offloads (TSO and checksum offload on):
	// the writer must put wire frames on it all the same.
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
	d := config.Default()
	rc := route.Config{Mark: d.Mark, MarkMask: d.MarkMask, Table: d.RouteTable, Priority: d.Priority, StatePath: filepath.Join(t.TempDir(), "state.json")}
	routing, err := route.Setup(r.Handle(t), rc, []route.Dest{{Name: "span0"}})
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
	return captureFD(l.capFD, want, nil)
}

// writer opens a writer on the lab's port, closed when the test ends.
func (l *spanLab) writer(t *testing.T, opts ...WriterOption) *Writer {
	t.Helper()
	w, err := NewWriter(l.port, nil, append([]WriterOption{WithNetNS(l.r.FD())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
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
		ip[6], ip[7] = pkt.ProtoUDP, hops
		copy(ip[8:], sinkIP(src).To16())
		copy(ip[24:], sinkIP(dst).To16())
	} else {
		ip = make([]byte, 20)
		ip[0], ip[1] = 0x45, 0x28
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(udp)))
		binary.BigEndian.PutUint16(ip[4:], 0x4242)
		ip[6], ip[8], ip[9] = 0x40, hops, pkt.ProtoUDP
		copy(ip[12:], sinkIP(src).To4())
		copy(ip[16:], sinkIP(dst).To4())
	}
	pk := append(ip, udp...)
	if !v6 {
		pkt.IPv4HeaderChecksum(pk[:20])
	}
	pkt.L4Checksum(pk, pkt.ProtoUDP, pk[len(ip):])
	return pk
}

// partial returns a copy of the whole IP packet pk whose TCP or UDP
// checksum holds only the pseudo-header sum, as the kernel leaves it for
// the device (CHECKSUM_PARTIAL).
func partial(pk []byte) []byte {
	p := append([]byte(nil), pk...)
	l, _ := pkt.Parse(p)
	at := l.HdrLen + 6
	if l.Proto == pkt.ProtoTCP {
		at = l.HdrLen + 16
	}
	binary.BigEndian.PutUint16(p[at:], pkt.PartialSeed(p, l.Proto, l.End-l.HdrLen))
	return p
}

// TestWriterDelivery: every kind of IP copy leaves by the port as one frame
// with the Ethernet header built for it, is never delivered locally and
// never leaves elsewhere.
func TestWriterDelivery(t *testing.T) {
	l := newSpanLab(t)
	w := l.writer(t)
	own := l.port.MAC
	bcast := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	tests := []struct {
		name   string
		pk     []byte
		dstMAC []byte
	}{
		{"ipv4 routed", sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, "nfm-v4"), own},
		{"ipv6 routed", sinkUDPPacket("2001:db8:50::1", "2001:db8:60::2", 5, "nfm-v6"), own},
		{"ipv4 to the router", sinkUDPPacket("198.18.50.1", "198.18.0.1", 9, "nfm-local4"), own},
		{"ipv6 to the router", sinkUDPPacket("2001:db8:50::1", "2001:db8::1", 9, "nfm-local6"), own},
		{"ipv4 to the other0 address", sinkUDPPacket("198.18.50.1", "198.18.1.1", 9, "nfm-local4b"), own},
		{"ipv4 broadcast", sinkUDPPacket("198.18.50.1", "255.255.255.255", 9, "nfm-bcast2"), bcast},
		{"ipv4 multicast", sinkUDPPacket("198.18.50.1", "224.0.0.251", 1, "nfm-mcast4"), []byte{1, 0, 0x5e, 0, 0, 0xfb}},
		{"ipv6 multicast", sinkUDPPacket("fe80::1", "ff02::fb", 1, "nfm-mcast6"), []byte{0x33, 0x33, 0, 0, 0, 0xfb}},
		{"ipv6 link-local", sinkUDPPacket("fe80::1", "fe80::2", 255, "nfm-ll6"), own},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loTx := txPackets(t, l.r, "lo")
			if err := w.Send(&Packet{Data: append([]byte(nil), tt.pk...)}); err != nil {
				t.Fatalf("Send: %v", err)
			}
			frames := l.capture(1)
			if len(frames) != 1 {
				t.Fatalf("%d frames on mon0, want 1", len(frames))
			}
			etype := []byte{0x08, 0x00}
			if tt.pk[0]>>4 == 6 {
				etype = []byte{0x86, 0xdd}
			}
			want := append(append(append(append([]byte{}, tt.dstMAC...), own...), etype...), tt.pk...)
			if !bytes.Equal(frames[0], want) {
				t.Errorf("frame on mon0:\n got % x\nwant % x", frames[0], want)
			}
			if d := txPackets(t, l.r, "lo") - loTx; d != 0 {
				t.Errorf("%d packets delivered locally (lo tx)", d)
			}
		})
	}
	st := w.Stats()
	if st.Errors != 0 || st.Frames != uint64(len(tests)) || st.IP != uint64(len(tests)) {
		t.Errorf("stats %+v, want %d IP copies framed and written, no errors", st, len(tests))
	}
	if len(st.Devices) != 1 || st.Devices[0].Name != "span0" || strings.Join(st.Devices[0].Families, ",") != "ipv4,ipv6" || st.Devices[0].Segments != "nfmirror" {
		t.Errorf("devices %+v, want span0 for both families, segmented by nfmirror (a veth)", st.Devices)
	}
	l.assertNothingElsewhere(t)
}

// TestWriterBypassesNetfilter: a host firewall that drops everything it
// sends (inet output and postrouting with policy drop, masquerade) neither
// sees nor stops nor rewrites the copies, and conntrack makes no entry for
// them. (The kernel runs netdev egress chains for AF_PACKET writes too:
// nfmirror's port guard lets its copies out there.)
func TestWriterBypassesNetfilter(t *testing.T) {
	l := newSpanLab(t)
	if _, errOut, err := l.r.Run(`
table inet hostfw {
	chain output { type filter hook output priority 0; policy drop; udp dport 9 counter; ct state established,related accept; }
	chain postrouting { type filter hook postrouting priority 0; policy drop; udp dport 9 counter; }
	chain nat { type nat hook postrouting priority 100; udp dport 9 counter masquerade; }
}
`, "nft", "-f", "-"); err != nil {
		t.Fatalf("host firewall: %v: %s", err, errOut)
	}
	ctCount := func() string {
		out, _, _ := l.r.Run("", "cat", "/proc/sys/net/netfilter/nf_conntrack_count")
		return strings.TrimSpace(out)
	}
	before := ctCount()
	w := l.writer(t)
	var pkts []*Packet
	for i := range 20 {
		pkts = append(pkts, &Packet{Data: sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, fmt.Sprintf("nfm-fw%02d", i))})
		pkts = append(pkts, &Packet{Data: sinkUDPPacket("2001:db8:50::1", "2001:db8:60::2", 7, fmt.Sprintf("nfm-fw6%02d", i))})
	}
	got := l.sendBatch(t, w, pkts, len(pkts))
	for i, f := range got {
		if !bytes.Equal(f[14:], pkts[i].Data) {
			t.Errorf("frame %d changed on its way (NAT?):\n got % x\nwant % x", i, f[14:], pkts[i].Data)
		}
	}
	if after := ctCount(); after != before {
		t.Errorf("conntrack entries %s -> %s: copies were tracked", before, after)
	}
	// The copies are UDP to port 9: the firewall's counters for them stay 0.
	out, _, _ := l.r.Run("", "nft", "list", "ruleset")
	if n := strings.Count(out, "counter packets 0 bytes 0"); n != 3 {
		t.Errorf("the host firewall's chains saw the copies:\n%s", out)
	}
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

// TestWriterSendBatch sends one batch mixing IP copies and Ethernet frames,
// a partial checksum to complete, a corrupt one to keep, a super-packet to
// cut, a truncated copy: every copy arrives, once, in the order of the
// batch, each as the wire would carry it.
func TestWriterSendBatch(t *testing.T) {
	l := newSpanLab(t)
	w := l.writer(t)
	own := l.port.MAC
	good := sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, "nfm-b4")
	corrupt := sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, "nfm-b5")
	corrupt[27] ^= 0x01 // as it came off the wire: stays
	super := pkttest.Packet(false, pkt.ProtoTCP, 9000-52)
	trunc := pkttest.Packet(true, pkt.ProtoTCP, 3000)[:1200]
	mac := []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00}
	frame := append(append([]byte(nil), mac...), partial(sinkUDPPacket("198.18.50.1", "198.18.60.2", 3, "nfm-l2"))...)
	arp := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 2, 0x08, 0x06}, make([]byte, 28)...)
	ipFrame := func(ip []byte) []byte {
		h := make([]byte, 14)
		pkt.EthernetHeader(h, ip, own)
		return append(h, ip...)
	}
	pkts := []*Packet{
		{Data: sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, "nfm-b1")},
		{Data: sinkUDPPacket("2001:db8:50::1", "2001:db8:60::2", 5, "nfm-b2")},
		{Data: frame, L2: true},
		{Data: partial(good)},
		{Data: append([]byte(nil), corrupt...)},
		{Data: append([]byte(nil), super...)},
		{Data: arp, L2: true},
		{Data: append([]byte(nil), trunc...), OrigLen: 3072},
	}
	want := [][]byte{
		ipFrame(pkts[0].Data), ipFrame(pkts[1].Data),
		append(append([]byte(nil), mac...), sinkUDPPacket("198.18.50.1", "198.18.60.2", 3, "nfm-l2")...),
		ipFrame(good), ipFrame(corrupt),
	}
	var seg pkt.Segmenter
	frames, err := seg.Split(append([]byte(nil), super...), l.port.MTU, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		want = append(want, ipFrame(f))
	}
	want = append(want, arp, ipFrame(trunc))
	got := l.sendBatch(t, w, pkts, len(want))
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("frame %d:\n got % x\nwant % x", i, got[i], want[i])
		}
	}
	st := w.Stats()
	if st.Packets != 8 || st.Frames != uint64(len(want)) || st.Errors != 0 || st.Ethernet != 2 || st.IP != 6 ||
		st.Segmented != 1 || st.GSO != 0 || st.ChecksumsCompleted != 2 {
		t.Errorf("stats %+v, want 8 copies (2 frames, 6 IP), %d frames written, 1 segmented, 2 checksums completed", st, len(want))
	}
	l.assertNothingElsewhere(t)
}

// TestWriterCutsSuperPackets: on a port with a veth's default offloads,
// TCP super-packets (IPv4, IPv6, and a VLAN-tagged Ethernet frame) arrive as
// MTU-sized segments with valid checksums, not whole.
func TestWriterCutsSuperPackets(t *testing.T) {
	l := newSpanLab(t)
	w := l.writer(t)
	tag := []byte{0x81, 0x00, 0x00, 0x2a}
	for _, tc := range []struct {
		name string
		v6   bool
		vlan bool
	}{{"ipv4", false, false}, {"ipv6", true, false}, {"vlan frame", false, true}} {
		n := 9000 - 52
		if tc.v6 {
			n = 9000 - 72
		}
		ip := pkttest.Packet(tc.v6, pkt.ProtoTCP, n)
		pk := &Packet{Data: append([]byte(nil), ip...)}
		if tc.vlan {
			pk = &Packet{Data: append(append([]byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2}, append(tag, 0x08, 0x00)...), ip...), L2: true}
		}
		if err := w.Send(pk); err != nil {
			t.Fatalf("%s: Send: %v", tc.name, err)
		}
		frames := l.capture(7)
		if len(frames) != 7 {
			t.Fatalf("%s: %d frames, want 7 segments", tc.name, len(frames))
		}
		ipl := 20
		if tc.v6 {
			ipl = 40
		}
		var stream []byte
		for i, f := range frames {
			// The receiving veth strips a VLAN tag into metadata.
			p := f[14:]
			if len(p) > 1500 {
				t.Errorf("%s: frame %d is %d bytes", tc.name, i, len(f))
			}
			th := p[ipl:]
			if pkttest.NaiveSum(pkttest.Pseudo(p, pkt.ProtoTCP, len(th)), th) != 0xffff || (!tc.v6 && pkttest.NaiveSum(p[:20]) != 0xffff) {
				t.Errorf("%s: segment %d: bad checksum", tc.name, i)
			}
			stream = append(stream, th[32:]...)
		}
		if !bytes.Equal(stream, ip[ipl+32:]) {
			t.Errorf("%s: reassembled stream differs", tc.name)
		}
	}
	if st := w.Stats(); st.Segmented != 3 || st.GSO != 0 {
		t.Errorf("stats %+v, want 3 copies segmented here", st)
	}
}

// TestWriterHardwareGSO: a port that segments in hardware (a NIC with TSO,
// played here by a veth the writer is told to treat as one) gets TCP
// super-packets whole, in one write each, with the segment size and the
// checksum left for it; the veth hands them to its peer as they are.
func TestWriterHardwareGSO(t *testing.T) {
	l := newSpanLab(t)
	w := l.writer(t, withHardwareGSO(func(*egress) bool { return true }))
	for _, v6 := range []bool{false, true} {
		pk := pkttest.Packet(v6, pkt.ProtoTCP, 20000)
		if err := w.Send(&Packet{Data: append([]byte(nil), pk...)}); err != nil {
			t.Fatalf("v6=%v: %v", v6, err)
		}
		got := l.capture(1)
		if len(got) != 1 || len(got[0]) != 14+len(pk) {
			t.Fatalf("v6=%v: %d frames, want the super-packet whole (%d bytes)", v6, len(got), 14+len(pk))
		}
		ipl := 20
		if v6 {
			ipl = 40
		}
		ck := ipl + pkt.TCPChecksumField
		if ip := got[0][14:]; !bytes.Equal(ip[:ck], pk[:ck]) || !bytes.Equal(ip[ck+2:], pk[ck+2:]) {
			t.Errorf("v6=%v: the super-packet changed on its way", v6)
		}
	}
	if st := w.Stats(); st.GSO != 2 || st.Segmented != 0 || st.Devices[0].Segments != "device (TSO)" {
		t.Errorf("stats %+v, want 2 super-packets handed whole to the device", st)
	}
}

// TestWriterFollowsRouteAndMTU: the writer sends where the destination's
// table routes, and follows when an operator points the table at another
// device or the port's MTU changes: never a silent send error.
func TestWriterFollowsRouteAndMTU(t *testing.T) {
	l := newSpanLab(t)
	w := l.writer(t)
	big := sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, strings.Repeat("nfm-mtu ", 180)) // 1468 bytes
	// The MTU shrinks under the writer: the copy is fragmented to fit.
	l.r.IP(t, "link", "set", "span0", "mtu", "1400")
	if err := w.Refresh(); err != nil {
		t.Fatal(err)
	}
	if err := w.Send(&Packet{Data: append([]byte(nil), big...)}); err != nil {
		t.Fatalf("after the MTU change: %v", err)
	}
	frames := l.capture(2)
	if len(frames) != 2 || len(frames[0]) > 1414 {
		t.Fatalf("after the MTU change: %d frames (first %d bytes), want 2 fragments of at most 1414", len(frames), len(frames[0]))
	}
	// The operator moves the table's route to other0: copies follow.
	table := strconv.Itoa(l.port.Table)
	l.r.IP(t, "route", "replace", "default", "dev", "other0", "table", table)
	l.r.IP(t, "-6", "route", "replace", "default", "dev", "other0", "table", table)
	if err := w.Refresh(); err != nil {
		t.Fatal(err)
	}
	pk := sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, "nfm-moved")
	if err := w.Send(&Packet{Data: pk}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(l.otherFD, buf, unix.MSG_DONTWAIT)
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if bytes.Contains(buf[:n], []byte("nfm-moved")) {
			if frames := l.capture(0); len(frames) != 0 {
				t.Errorf("%d frames still on span0", len(frames))
			}
			return
		}
	}
	t.Fatal("the copy did not leave by other0 after the route moved there")
}

// TestWriterPortComesBack: with the port gone, copies fail and are counted;
// when it is back and its routes are applied again, the writer resumes.
func TestWriterPortComesBack(t *testing.T) {
	l := newSpanLab(t)
	w := l.writer(t)
	pk := sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, "nfm-back")
	l.r.IP(t, "link", "del", "span0")
	for range 3 {
		if err := w.Send(&Packet{Data: pk}); err == nil {
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
	time.Sleep(1100 * time.Millisecond) // a failed write looks again at most once a second
	l.drain()
	var ok bool
	for range 5 { // the first write after the port returns may fail and look again
		if err := w.Send(&Packet{Data: pk}); err == nil {
			ok = true
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !ok {
		t.Fatalf("the writer did not resume: %+v", w.Stats())
	}
	frames := l.capture(1)
	if len(frames) != 1 || !bytes.Equal(frames[0][14:], pk) {
		t.Errorf("after the port came back: %d frames", len(frames))
	}
	if st := w.Stats(); st.Errors < 3 || st.Lookups < 1 {
		t.Errorf("stats %+v: want the failures counted and a lookup", st)
	}
}

// TestWriterFamilyWithoutRoute: with no IPv6 route in the table (IPv6 off on
// the host), IPv6 copies fail as ErrNoRoute and are counted; IPv4 copies and
// frames still leave.
func TestWriterFamilyWithoutRoute(t *testing.T) {
	l := newSpanLab(t)
	l.r.IP(t, "-6", "route", "del", "default", "table", strconv.Itoa(l.port.Table))
	w := l.writer(t)
	v4 := sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, "nfm-v4only")
	v6 := sinkUDPPacket("2001:db8:50::1", "2001:db8:60::2", 7, "nfm-v6off")
	if err := w.Send(&Packet{Data: v6}); !errors.Is(err, ErrNoRoute) {
		t.Errorf("IPv6 copy: %v, want ErrNoRoute", err)
	}
	if err := w.Send(&Packet{Data: v4}); err != nil {
		t.Errorf("IPv4 copy: %v", err)
	}
	if frames := l.capture(1); len(frames) != 1 || !bytes.Equal(frames[0][14:], v4) {
		t.Errorf("%d frames, want the IPv4 copy", len(frames))
	}
	if st := w.Stats(); st.NoRoute != 1 || st.Errors != 1 || strings.Join(st.Devices[0].Families, ",") != "ipv4" {
		t.Errorf("stats %+v, want 1 copy without route counted, span0 for IPv4 only", st)
	}
}

func sinkIP(s string) net.IP {
	ip := net.ParseIP(s)
	if ip == nil {
		panic("bad IP " + s)
	}
	return ip
}

func TestWriterCloseLeaksNothing(t *testing.T) {
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
		w, err := NewWriter(l.port, nil, WithNetNS(l.r.FD()))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Refresh(); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	for range 50 {
		if runtime.NumGoroutine() <= beforeG && fds() <= beforeFDs {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("after Close: %d fds (was %d), %d goroutines (was %d)", fds(), beforeFDs, runtime.NumGoroutine(), beforeG)
}

func TestWriterSendNoAllocs(t *testing.T) {
	l := newSpanLab(t)
	w := l.writer(t)
	allocs := sendBatchAllocs(t, w.SendBatch, mixedBatch(HookPrerouting))
	l.drain() // the capture socket drops what does not fit; that is fine here
	if allocs != 0 {
		t.Errorf("%v allocations per batch", allocs)
	}
}

// mixedBatch is a batch of every kind of copy a sink takes: routed IP
// packets, an Ethernet frame and a TCP super-packet to cut.
func mixedBatch(hook Hook) []*Packet {
	routed := &Packet{Data: sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, "nfm-allocs"), Hook: hook}
	super := &Packet{Data: pkttest.Packet(true, pkt.ProtoTCP, 9000)}
	frame := &Packet{Data: append(make([]byte, 14), routed.Data...), L2: true}
	frame.Data[12] = 0x08
	return []*Packet{routed, frame, routed, super, routed}
}

// sendBatchAllocs sends batch once to warm send up, then returns the
// allocations per further call; any copy's error fails the test.
func sendBatchAllocs(t *testing.T, send func([]*Packet, []error), batch []*Packet) float64 {
	t.Helper()
	errs := make([]error, len(batch))
	send(batch, errs)
	return testing.AllocsPerRun(20, func() {
		send(batch, errs)
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestWriterTruncatedOverMTU: a copy cut by a snaplen larger than the port
// carries (2000 bytes of a 9000-byte super-packet) is cut again at the MTU
// instead of failing.
func TestWriterTruncatedOverMTU(t *testing.T) {
	l := newSpanLab(t)
	w := l.writer(t)
	ip := pkttest.Packet(false, pkt.ProtoTCP, 9000-52)
	if err := w.Send(&Packet{Data: append([]byte(nil), ip[:2000]...), OrigLen: len(ip)}); err != nil {
		t.Fatal(err)
	}
	frames := l.capture(1)
	if len(frames) != 1 || !bytes.Equal(frames[0][14:], ip[:l.port.MTU]) {
		t.Errorf("%d frames, want the first %d bytes of the copy as one frame", len(frames), l.port.MTU)
	}
}

// TestWriterNoCarrier: while the port has no carrier (its peer is down),
// copies fail as ErrNoCarrier and are counted, not reported sent; when the
// carrier is back, they leave again.
func TestWriterNoCarrier(t *testing.T) {
	l := newSpanLab(t)
	w := l.writer(t)
	pk := sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, "nfm-carrier")
	l.m.IP(t, "link", "set", "mon0", "down")
	waitFor(t, func() bool {
		w.Refresh()
		return !w.Stats().Devices[0].Carrier
	})
	for range 3 {
		if err := w.Send(&Packet{Data: pk}); !errors.Is(err, ErrNoCarrier) {
			t.Errorf("Send without carrier: %v, want ErrNoCarrier", err)
		}
	}
	if st := w.Stats(); st.NoCarrier != 3 || st.Errors != 3 || st.Frames != 0 {
		t.Errorf("stats %+v, want 3 copies counted as no carrier and none written", st)
	}
	l.m.IP(t, "link", "set", "mon0", "up")
	waitFor(t, func() bool {
		w.Refresh()
		return w.Stats().Devices[0].Carrier
	})
	l.drain()
	if err := w.Send(&Packet{Data: pk}); err != nil {
		t.Fatalf("Send with the carrier back: %v", err)
	}
	if frames := l.capture(1); len(frames) != 1 || !bytes.Equal(frames[0][14:], pk) {
		t.Errorf("%d frames after the carrier came back, want the copy", len(frames))
	}
}
