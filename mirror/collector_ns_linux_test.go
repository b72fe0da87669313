package mirror

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfmirror/nfmirror/internal/encap"
	"github.com/nfmirror/nfmirror/internal/nstest"
	"github.com/nfmirror/nfmirror/internal/pkt"
	"github.com/nfmirror/nfmirror/internal/pkt/pkttest"
)

// collectorMark is the fwmark the tests' collectors write with: one of
// nfmirror's default range.
const collectorMark = 0x6e666d07

// collectorLab is a router namespace r whose uplink up0 leads to a
// collector namespace c (up1: 198.18.2.9/24, 2001:db8:2::9/64). The
// collector decapsulates VXLAN with the kernel's own devices: vx4 (VNI 42,
// port 4789, IPv4) and vx6 (VNI 43, port 4790, IPv6). upFD captures what
// arrives on up1: the outer packets.
type collectorLab struct {
	r, c   *nstest.NS
	upMAC  []byte // up0's MAC: the inner source and destination of IP copies
	upFD   int
	vx4FD  int
	vx6FD  int
	tmpDir string
}

func newCollectorLab(t *testing.T) *collectorLab {
	r, c := nstest.New(t), nstest.New(t)
	r.IP(t, "link", "add", "up0", "type", "veth", "peer", "name", "up1", "netns", c.Name)
	r.IP(t, "addr", "add", "198.18.2.1/24", "dev", "up0")
	r.IP(t, "addr", "add", "2001:db8:2::1/64", "dev", "up0", "nodad")
	r.IP(t, "link", "set", "up0", "up")
	c.IP(t, "addr", "add", "198.18.2.9/24", "dev", "up1")
	c.IP(t, "addr", "add", "2001:db8:2::9/64", "dev", "up1", "nodad")
	c.IP(t, "link", "set", "up1", "up")
	c.IP(t, "link", "add", "vx4", "type", "vxlan", "id", "42", "dstport", "4789", "local", "198.18.2.9", "dev", "up1")
	c.IP(t, "link", "add", "vx6", "type", "vxlan", "id", "43", "dstport", "4790", "local", "2001:db8:2::9", "dev", "up1")
	for _, d := range []string{"vx4", "vx6"} {
		c.IP(t, "link", "set", d, "addrgenmode", "none")
		c.IP(t, "link", "set", d, "up")
	}
	l := &collectorLab{r: r, c: c, tmpDir: t.TempDir()}
	up, err := r.Handle(t).LinkByName("up0")
	if err != nil {
		t.Fatal(err)
	}
	l.upMAC = up.Attrs().HardwareAddr
	l.upFD = captureSocket(t, c, "up1")
	l.vx4FD = captureSocket(t, c, "vx4")
	l.vx6FD = captureSocket(t, c, "vx6")
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	for _, fd := range []int{l.upFD, l.vx4FD, l.vx6FD} {
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	}
	time.Sleep(200 * time.Millisecond) // carrier up
	return l
}

// drainFD discards what fd has received so far.
func drainFD(fd int) {
	buf := make([]byte, 70000)
	for range 10000 {
		if _, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT); err != nil {
			return
		}
	}
}

// captureFD returns the frames fd receives (not those it saw leave) that
// keep says to keep, until want of them have come and then 300 ms of quiet,
// or 3 s have passed.
func captureFD(fd, want int, keep func([]byte) bool) [][]byte {
	var got [][]byte
	buf := make([]byte, 70000)
	deadline := time.Now().Add(3 * time.Second)
	quietUntil := time.Time{}
	for time.Now().Before(deadline) {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			if len(got) >= want && time.Now().After(quietUntil) {
				break
			}
			continue
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if keep != nil && !keep(buf[:n]) {
			continue
		}
		got = append(got, append([]byte(nil), buf[:n]...))
		quietUntil = time.Now().Add(300 * time.Millisecond)
	}
	return got
}

// tunnelFrames keeps the outer frames of the tunnels (IPv4 or IPv6 carrying
// UDP or GRE, fragments included), not ARP, ND or ICMP.
func tunnelFrames(f []byte) bool {
	if len(f) < 14+20 {
		return false
	}
	switch binary.BigEndian.Uint16(f[12:]) {
	case pkt.EthIPv4:
		return f[14+9] == pkt.ProtoUDP || f[14+9] == 47
	case pkt.EthIPv6:
		return len(f) >= 14+40 && (f[14+6] == pkt.ProtoUDP || f[14+6] == 47 || f[14+6] == pkt.ProtoFragment)
	}
	return false
}

// collector opens a collector in the lab's router, closed when the test
// ends, and waits (up to 3 s) until its next hop is resolved.
func (l *collectorLab) collector(t *testing.T, cfg CollectorConfig) *Collector {
	t.Helper()
	cfg.NetNS, cfg.Mark = l.r.FD(), collectorMark
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	c, err := NewCollector(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for range 30 {
		if err := c.Refresh(); err == nil {
			return c
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the collector's path did not resolve: %s", c.Stats().Describe())
	return nil
}

// innerFrame is the Ethernet frame a copy of the IP packet ip travels as.
func (l *collectorLab) innerFrame(ip []byte) []byte {
	h := make([]byte, 14)
	pkt.EthernetHeader(h, ip, l.upMAC)
	return append(h, ip...)
}

// TestCollectorVXLAN: copies of every kind reach a collector whose kernel
// decapsulates them with its own vxlan device, over IPv4 and IPv6 (another
// port, UDP checksum computed): the decapsulated frames are what a local
// port would carry, in order, none missing, none extra; the outer packets
// never pass the uplink's MTU (fragmented when larger) and carry the VNI
// and a source port from the dynamic range.
func TestCollectorVXLAN(t *testing.T) {
	l := newCollectorLab(t)
	for _, tc := range []struct {
		name  string
		addr  string
		vni   uint32
		port  uint16
		capFD func() int
	}{
		{"ipv4", "198.18.2.9", 42, 0, func() int { return l.vx4FD }},
		{"ipv6", "2001:db8:2::9", 43, 4790, func() int { return l.vx6FD }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			col := l.collector(t, CollectorConfig{Format: encap.VXLAN, Addr: netip.MustParseAddr(tc.addr), VNI: tc.vni, Port: tc.port})
			good := sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, "nfm-c-good")
			super := pkttest.Packet(false, pkt.ProtoTCP, 9000-52)
			trunc := pkttest.Packet(true, pkt.ProtoTCP, 3000)[:1200]
			full := sinkUDPPacket("2001:db8:50::1", "2001:db8:60::2", 5, strings.Repeat("nfm-full", 181)) // 1500 bytes
			mac := []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x81, 0x00, 0x00, 0x2a, 0x08, 0x00}
			tagged := append(append([]byte(nil), mac...), sinkUDPPacket("198.18.50.1", "198.18.60.2", 3, "nfm-c-l2")...)
			pkts := []*Packet{
				{Data: sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, "nfm-c-v4"), Hook: HookPrerouting},
				{Data: partial(good), Hook: HookOutput},
				{Data: append([]byte(nil), tagged...), L2: true, Hook: HookIngress},
				{Data: append([]byte(nil), super...), Hook: HookForward},
				{Data: append([]byte(nil), trunc...), OrigLen: 3072},
				{Data: append([]byte(nil), full...), Hook: HookPostrouting},
			}
			want := [][]byte{l.innerFrame(pkts[0].Data), l.innerFrame(good), tagged}
			var seg pkt.Segmenter
			frames, err := seg.Split(append([]byte(nil), super...), 1500, false)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range frames {
				want = append(want, l.innerFrame(f))
			}
			want = append(want, l.innerFrame(trunc), l.innerFrame(full))
			drainFD(l.upFD)
			drainFD(tc.capFD())
			errs := make([]error, len(pkts))
			col.SendBatch(pkts, errs)
			for i, err := range errs {
				if err != nil {
					t.Errorf("copy %d: %v", i, err)
				}
			}
			got := captureFD(tc.capFD(), len(want), nil)
			if len(got) != len(want) {
				t.Fatalf("%d frames decapsulated by the collector's %s device, want %d", len(got), tc.name, len(want))
			}
			for i := range got {
				g := got[i]
				if i == 2 { // the receiving vxlan device takes the tag into metadata
					g = append(append(append([]byte(nil), g[:12]...), mac[12:16]...), g[12:]...)
				}
				if !bytes.Equal(g, want[i]) {
					t.Errorf("frame %d:\n got % x\nwant % x", i, got[i], want[i])
				}
			}
			outer := captureFD(l.upFD, 1, tunnelFrames)
			st := col.Stats()
			if uint64(len(outer)) != st.Frames {
				t.Errorf("%d outer frames on the collector's uplink, the collector wrote %d", len(outer), st.Frames)
			}
			whole := 0
			for i, f := range outer {
				if len(f) > 1514 {
					t.Errorf("outer frame %d is %d bytes: passes the 1500 MTU", i, len(f))
				}
				d, err := encap.Decode(f[14:])
				if errors.Is(err, encap.ErrFragment) {
					continue
				}
				if err != nil {
					t.Errorf("outer frame %d: %v", i, err)
					continue
				}
				whole++
				if d.VNI != tc.vni || d.SrcPort < encap.SrcPortMin || d.Src.String() == "" || d.Dst != netip.MustParseAddr(tc.addr) {
					t.Errorf("outer frame %d: vni %d port %d %v -> %v", i, d.VNI, d.SrcPort, d.Src, d.Dst)
				}
			}
			// Inner frames of 1514 bytes (the 1500-byte copy, 6 of the 7
			// segments) leave in two fragments, the others whole: two
			// copies fragmented.
			if st.Packets != 6 || st.Errors != 0 || st.Segmented != 1 || st.Fragmented != 2 || st.IP != 5 || st.Ethernet != 1 ||
				st.ChecksumsCompleted != 1 || st.Frames != uint64(len(want))+1+6 || whole != len(want)-7 {
				t.Errorf("stats %+v (%d whole outer packets), want 6 copies, 1 segmented, 2 fragmented (7 frames of 1514 in 2 fragments each), 1 checksum completed", st, whole)
			}
			if !strings.Contains(st.Describe(), "vxlan to "+tc.addr) || st.Device != "up0" || st.MTU != 1500 || st.Down != "" {
				t.Errorf("describe: %s", st.Describe())
			}
		})
	}
}

// tshark runs tshark on a capture file with args and returns its lines.
func tshark(t *testing.T, path string, args ...string) []string {
	t.Helper()
	var stderr strings.Builder
	cmd := exec.Command("tshark", append([]string{"-r", path, "-n"}, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v: %s", err, stderr.String())
	}
	s := strings.TrimSpace(string(out))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// TestCollectorGREAndERSPAN: this kernel has no gretap or erspan devices,
// so the collector's uplink capture is judged by tshark's decoders and by
// encap.Decode. GRE over IPv6: protocol 0x6558, a 1514-byte frame
// fragmented and reassembled. ERSPAN II: session, the VLAN and COS of a
// tagged frame, T for a snaplen-cut copy and for a frame cut to fit,
// consecutive sequence numbers. ERSPAN III: the direction bit from the hook
// (prerouting and netdev ingress: 0; postrouting and netdev egress: 1), the
// hardware id, the copy's timestamp.
func TestCollectorGREAndERSPAN(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark not installed")
	}
	l := newCollectorLab(t)
	when := time.Unix(1700000000, 0)
	tagged := append([]byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x81, 0x00, 0xa0, 0x64, 0x08, 0x00}, sinkUDPPacket("198.18.50.1", "198.18.60.2", 3, "nfm-tag")...)
	small := sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, "nfm-small")
	full := sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, strings.Repeat("nfm-full", 184)) // 1500 bytes
	cut := pkttest.Packet(false, pkt.ProtoTCP, 3000)[:300]
	tests := []struct {
		name   string
		cfg    CollectorConfig
		pkts   []*Packet
		fields []string
		want   []string // tshark's fields per decoded packet, in order
		check  func(t *testing.T, ds []encap.Decoded)
	}{
		{
			name:   "gre over ipv6",
			cfg:    CollectorConfig{Format: encap.GRE, Addr: netip.MustParseAddr("2001:db8:2::9")},
			pkts:   []*Packet{{Data: small}, {Data: full}, {Data: tagged, L2: true}},
			fields: []string{"gre.proto", "ipv6.src", "udp.srcport", "udp.checksum.status", "frame.len"},
			want: []string{
				"0x6558|2001:db8:2::1|40001|1|" + fmt.Sprint(14+40+4+14+len(small)),
				// 4+14+1500 bytes after the outer header: 1448 in the
				// first fragment, 70 in the last, which tshark
				// reassembles the packet in.
				"0x6558|2001:db8:2::1|40001|1|" + fmt.Sprint(14+40+8+70),
				"0x6558|2001:db8:2::1|40001|1|" + fmt.Sprint(14+40+4+len(tagged)),
			},
		},
		{
			name:   "erspan II",
			cfg:    CollectorConfig{Format: encap.ERSPAN2, Addr: netip.MustParseAddr("198.18.2.9"), Session: 7},
			pkts:   []*Packet{{Data: tagged, L2: true}, {Data: cut, OrigLen: 3072}, {Data: full}},
			fields: []string{"erspan.version", "erspan.spanid", "erspan.vlan", "erspan.cos", "erspan.truncated", "gre.sequence_number", "frame.len"},
			want: []string{
				"1|7|100|5|0|0|" + fmt.Sprint(14+20+16+len(tagged)),
				"1|7|0|0|1|1|" + fmt.Sprint(14+20+16+14+300),
				"1|7|0|0|1|2|1514", // cut to the 1500 MTU
			},
		},
		{
			name: "erspan III",
			cfg:  CollectorConfig{Format: encap.ERSPAN3, Addr: netip.MustParseAddr("198.18.2.9"), Session: 9, HardwareID: 5},
			pkts: []*Packet{
				{Data: small, Hook: HookPrerouting, Time: when}, {Data: small, Hook: HookPostrouting, Time: when},
				{Data: tagged, L2: true, Hook: HookIngress, Time: when}, {Data: tagged, L2: true, Hook: HookEgress, Time: when},
			},
			fields: []string{"erspan.version", "erspan.spanid", "erspan.direction", "erspan.hw", "erspan.timestamp", "erspan.truncated"},
			want:   []string{"2|9|0|5|519442432|0", "2|9|1|5|519442432|0", "2|9|0|5|519442432|0", "2|9|1|5|519442432|0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			col := l.collector(t, tt.cfg)
			drainFD(l.upFD)
			errs := make([]error, len(tt.pkts))
			var ps []*Packet
			for _, p := range tt.pkts {
				q := *p
				q.Data = append([]byte(nil), p.Data...)
				ps = append(ps, &q)
			}
			col.SendBatch(ps, errs)
			for i, err := range errs {
				if err != nil {
					t.Errorf("copy %d: %v", i, err)
				}
			}
			outer := captureFD(l.upFD, int(col.Stats().Frames), tunnelFrames)
			if uint64(len(outer)) != col.Stats().Frames {
				t.Fatalf("%d outer frames, the collector wrote %d", len(outer), col.Stats().Frames)
			}
			path := filepath.Join(l.tmpDir, tt.name+".pcap")
			pkttest.WritePcap(t, path, pkttest.LinkEthernet, outer)
			args := []string{"-o", "udp.check_checksum:TRUE", "-Y", "gre || erspan", "-T", "fields", "-E", "separator=|"}
			for _, f := range tt.fields {
				args = append(args, "-e", f)
			}
			lines := tshark(t, path, args...)
			if strings.Join(lines, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("tshark reads:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(tt.want, "\n"))
			}
			// Exact fields with our own decoder, on the whole packets.
			var seqs []uint32
			for _, f := range outer {
				d, err := encap.Decode(f[14:])
				if errors.Is(err, encap.ErrFragment) {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if d.Format != tt.cfg.Format || d.Session != tt.cfg.Session {
					t.Errorf("decoded %v session %d, want %v %d", d.Format, d.Session, tt.cfg.Format, tt.cfg.Session)
				}
				if d.HasSeq {
					seqs = append(seqs, d.Seq)
				}
			}
			for i := range seqs {
				if seqs[i] != uint32(i) {
					t.Errorf("sequence numbers %v, want 0, 1, 2, ...", seqs)
					break
				}
			}
		})
	}
}

// TestCollectorBypassesNetfilter: the host's own firewall (inet output and
// postrouting with policy drop, masquerade) neither sees nor stops the
// tunnel packets and conntrack tracks none of them, yet the next hop is
// resolved (ARP is not inet) and the collector decapsulates every copy;
// the only chain they pass, the uplink's netdev egress, sees them with the
// collector's mark, which nfmirror's loop guard matches.
func TestCollectorBypassesNetfilter(t *testing.T) {
	l := newCollectorLab(t)
	if _, errOut, err := l.r.Run(`
table inet hostfw {
	chain output { type filter hook output priority 0; policy drop; udp dport 4789 counter; }
	chain postrouting { type filter hook postrouting priority 0; policy drop; udp dport 4789 counter; }
	chain nat { type nat hook postrouting priority 100; udp dport 4789 counter masquerade; }
}
table netdev guard {
	chain egress {
		type filter hook egress device "up0" priority -500;
		meta mark & 0xffffff00 == 0x6e666d00 counter return
		udp dport 4789 counter
	}
}
`, "nft", "-f", "-"); err != nil {
		t.Fatalf("host firewall: %v: %s", err, errOut)
	}
	ct := func() string {
		out, _, _ := l.r.Run("", "cat", "/proc/sys/net/netfilter/nf_conntrack_count")
		return strings.TrimSpace(out)
	}
	before := ct()
	col := l.collector(t, CollectorConfig{Format: encap.VXLAN, Addr: netip.MustParseAddr("198.18.2.9"), VNI: 42})
	var pkts []*Packet
	for i := range 40 {
		pkts = append(pkts, &Packet{Data: sinkUDPPacket("198.18.50.1", fmt.Sprintf("198.18.60.%d", i+1), 7, fmt.Sprintf("nfm-fw%02d", i))})
	}
	drainFD(l.vx4FD)
	errs := make([]error, len(pkts))
	col.SendBatch(pkts, errs)
	for i, err := range errs {
		if err != nil {
			t.Errorf("copy %d: %v", i, err)
		}
	}
	if got := captureFD(l.vx4FD, len(pkts), nil); len(got) != len(pkts) {
		t.Errorf("the collector decapsulated %d copies, want %d", len(got), len(pkts))
	}
	if after := ct(); after != before {
		t.Errorf("conntrack entries %s -> %s: tunnel packets were tracked", before, after)
	}
	out, _, _ := l.r.Run("", "nft", "list", "ruleset")
	if n := strings.Count(out, "counter packets 0 bytes 0"); n != 4 {
		t.Errorf("want the 3 inet counters and the unguarded netdev counter at 0:\n%s", out)
	}
	if !strings.Contains(out, fmt.Sprintf("counter packets %d ", len(pkts))) {
		t.Errorf("the netdev egress guard did not see the %d tunnel packets with the mark:\n%s", len(pkts), out)
	}
}

// TestCollectorUnreachable: a collector with no route, and one whose next
// hop does not answer ARP: nfmirror keeps running, every copy is counted
// as an error of its reason at once (production never waits: a batch fails
// in well under a millisecond per copy), the kernel is asked to resolve the
// next hop (its ARP requests are seen), and copies flow again as soon as
// the route exists or the collector answers.
func TestCollectorUnreachable(t *testing.T) {
	l := newCollectorLab(t)
	tests := []struct {
		name    string
		addr    string
		wantErr error
		fix     func()
		undo    func()
	}{
		{
			name: "no route", addr: "198.18.99.9", wantErr: ErrNoRoute,
			fix: func() {
				l.c.IP(t, "addr", "add", "198.18.99.9/32", "dev", "up1")
				l.r.IP(t, "route", "add", "198.18.99.0/24", "via", "198.18.2.9")
			},
		},
		{
			name: "collector down", addr: "198.18.2.77", wantErr: ErrNoNeighbour,
			fix: func() { l.c.IP(t, "addr", "add", "198.18.2.77/24", "dev", "up1") },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			col, err := NewCollector(CollectorConfig{Name: "down", Format: encap.ERSPAN2, Addr: netip.MustParseAddr(tt.addr), Session: 3, Mark: collectorMark, NetNS: l.r.FD()}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer col.Close()
			drainFD(l.upFD)
			pkts := make([]*Packet, 50)
			for i := range pkts {
				pkts[i] = &Packet{Data: sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, "nfm-down")}
			}
			errs := make([]error, len(pkts))
			start := time.Now()
			for range 4 {
				col.SendBatch(pkts, errs)
			}
			took := time.Since(start)
			for i, err := range errs {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("copy %d: %v, want %v", i, err, tt.wantErr)
				}
			}
			st := col.Stats()
			reason := st.NoRoute
			if tt.wantErr == ErrNoNeighbour {
				reason = st.NoNeighbour
			}
			if st.Errors != 200 || reason != 200 || st.Frames != 0 || st.Down == "" {
				t.Errorf("stats %+v, want 200 errors of the reason, nothing written", st)
			}
			if took > 50*time.Millisecond {
				t.Errorf("200 copies to a down collector took %v", took)
			}
			if tt.wantErr == ErrNoNeighbour {
				// The kernel probes for the collector: ARP requests on
				// the wire, none of them ours.
				arp := captureFD(l.upFD, 1, func(f []byte) bool {
					return len(f) >= 42 && binary.BigEndian.Uint16(f[12:]) == 0x0806 && bytes.Equal(f[38:42], []byte{198, 18, 2, 77})
				})
				if len(arp) == 0 {
					t.Error("no ARP request for the collector: the kernel was not asked to resolve it")
				}
			}
			tt.fix()
			var ok bool
			for range 40 { // copies fail until the next lookup finds the way
				time.Sleep(100 * time.Millisecond)
				if err := col.Send(&Packet{Data: sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, "nfm-back")}); err == nil {
					ok = true
					break
				}
			}
			if !ok {
				t.Fatalf("the collector did not resume: %s", col.Stats().Describe())
			}
			got := captureFD(l.upFD, 1, tunnelFrames)
			if len(got) < 1 || !bytes.Contains(got[len(got)-1], []byte("nfm-back")) {
				t.Errorf("%d tunnel frames after resuming, want the copy", len(got))
			}
			if st := col.Stats(); st.Lookups == 0 || st.Down != "" {
				t.Errorf("stats %+v: want lookups after the failures and the path up", st)
			}
		})
	}
}

// TestCollectorFollowsPathMTU: a route's mtu to the collector (or a PMTU
// the kernel learnt) lowers the size the outer packets are cut to.
func TestCollectorFollowsPathMTU(t *testing.T) {
	l := newCollectorLab(t)
	col := l.collector(t, CollectorConfig{Format: encap.VXLAN, Addr: netip.MustParseAddr("198.18.2.9"), VNI: 42})
	l.r.IP(t, "route", "add", "198.18.2.9/32", "dev", "up0", "mtu", "1280")
	if err := col.Refresh(); err != nil {
		t.Fatal(err)
	}
	if st := col.Stats(); st.MTU != 1280 {
		t.Fatalf("path mtu %d, want 1280", st.MTU)
	}
	drainFD(l.upFD)
	drainFD(l.vx4FD)
	pk := sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, strings.Repeat("nfm-pmtu", 165)) // 1348 bytes: 1384 in VXLAN, over 1280, under 1500
	if err := col.Send(&Packet{Data: pk}); err != nil {
		t.Fatal(err)
	}
	outer := captureFD(l.upFD, 2, tunnelFrames)
	if len(outer) != 2 {
		t.Fatalf("%d outer frames, want 2 fragments", len(outer))
	}
	for i, f := range outer {
		if len(f) > 14+1280 {
			t.Errorf("fragment %d is %d bytes, path mtu 1280", i, len(f))
		}
	}
	if got := captureFD(l.vx4FD, 1, nil); len(got) != 1 || !bytes.Equal(got[0], l.innerFrame(pk)) {
		t.Errorf("%d frames decapsulated, want the copy whole", len(got))
	}
}

func TestCollectorSendNoAllocs(t *testing.T) {
	l := newCollectorLab(t)
	for _, f := range []encap.Format{encap.VXLAN, encap.ERSPAN3} {
		col := l.collector(t, CollectorConfig{Format: f, Addr: netip.MustParseAddr("2001:db8:2::9"), VNI: 43, Port: 4790})
		allocs := sendBatchAllocs(t, col.SendBatch, mixedBatch(HookEgress))
		drainFD(l.upFD)
		drainFD(l.vx6FD)
		if allocs != 0 {
			t.Errorf("%v: %v allocations per batch", f, allocs)
		}
	}
}

func TestCollectorCloseLeaksNothing(t *testing.T) {
	l := newCollectorLab(t)
	beforeFDs := countFDs(t)
	for range 3 {
		col := l.collector(t, CollectorConfig{Format: encap.GRE, Addr: netip.MustParseAddr("198.18.2.9")})
		col.Close()
	}
	if n := countFDs(t); n > beforeFDs {
		t.Errorf("after Close: %d fds, was %d", n, beforeFDs)
	}
}

// TestCollectorICMPUnreachable: a collector whose port is closed answers
// with ICMP port unreachable; the copies still leave (nothing waits), the
// reports are counted and shown; once a decapsulator listens on the port
// the copies arrive.
func TestCollectorICMPUnreachable(t *testing.T) {
	l := newCollectorLab(t)
	for _, tc := range []struct {
		name, addr, want string
		fam              []string
	}{
		{"ipv4", "198.18.2.9", "icmp port unreachable from 198.18.2.9", []string{"local", "198.18.2.9"}},
		{"ipv6", "2001:db8:2::9", "icmpv6 port unreachable", []string{"local", "2001:db8:2::9"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			col := l.collector(t, CollectorConfig{Format: encap.VXLAN, Addr: netip.MustParseAddr(tc.addr), VNI: 44, Port: 4799})
			pk := sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, "nfm-closed")
			var st CollectorStats
			for range 30 { // the collector rate-limits its ICMP: one a second or so
				if err := col.Send(&Packet{Data: pk}); err != nil {
					t.Fatalf("Send: %v", err)
				}
				time.Sleep(100 * time.Millisecond)
				if st = col.Stats(); st.ICMPUnreachable > 0 {
					break
				}
			}
			if st.ICMPUnreachable == 0 || !strings.Contains(st.Unreachable, tc.want) || !strings.Contains(st.Describe(), "unreachable: ") || st.Errors != 0 {
				t.Fatalf("stats %+v: want the port unreachable reports counted and shown", st)
			}
			dev := "vx9" + tc.name[3:]
			l.c.IP(t, append([]string{"link", "add", dev, "type", "vxlan", "id", "44", "dstport", "4799", "dev", "up1"}, tc.fam...)...)
			l.c.IP(t, "link", "set", dev, "up")
			fd := captureSocket(t, l.c, dev)
			tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
			unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
			if err := col.Send(&Packet{Data: pk}); err != nil {
				t.Fatal(err)
			}
			if got := captureFD(fd, 1, nil); len(got) != 1 || !bytes.Equal(got[0], l.innerFrame(pk)) {
				t.Errorf("%d frames decapsulated after the port opened, want the copy", len(got))
			}
		})
	}
}

// TestCollectorPacketTooBig: an IPv6 collector behind a router whose next
// link has an MTU of 1300. The first large copy, a 1470-byte packet, is
// refused by the router with a packet-too-big; the collector learns the
// path MTU from it and cuts later outer packets to 1300, which the far
// side decapsulates.
func TestCollectorPacketTooBig(t *testing.T) {
	l := newCollectorLab(t)
	d := nstest.New(t)
	l.c.IP(t, "link", "add", "dn0", "type", "veth", "peer", "name", "dn1", "netns", d.Name)
	l.c.IP(t, "link", "set", "dn0", "mtu", "1300")
	l.c.IP(t, "addr", "add", "2001:db8:3::1/64", "dev", "dn0", "nodad")
	l.c.IP(t, "link", "set", "dn0", "up")
	l.c.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	d.IP(t, "link", "set", "dn1", "mtu", "1300")
	d.IP(t, "addr", "add", "2001:db8:3::9/64", "dev", "dn1", "nodad")
	d.IP(t, "link", "set", "dn1", "up")
	d.IP(t, "-6", "route", "add", "default", "via", "2001:db8:3::1")
	d.IP(t, "link", "add", "vx6", "type", "vxlan", "id", "43", "dstport", "4790", "local", "2001:db8:3::9", "dev", "dn1")
	d.IP(t, "link", "set", "vx6", "up")
	l.r.IP(t, "-6", "route", "add", "2001:db8:3::/64", "via", "2001:db8:2::9")
	fd := captureSocket(t, d, "vx6")
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)

	col := l.collector(t, CollectorConfig{Format: encap.VXLAN, Addr: netip.MustParseAddr("2001:db8:3::9"), VNI: 43, Port: 4790})
	big := sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, strings.Repeat("nfm-ptb ", 170)) // 1388 bytes: 1458 in VXLAN over IPv6
	if err := col.Send(&Packet{Data: big}); err != nil {
		t.Fatal(err)
	}
	var st CollectorStats
	for range 20 {
		time.Sleep(100 * time.Millisecond)
		if st = col.Stats(); st.PacketTooBig > 0 {
			break
		}
	}
	if st.PacketTooBig == 0 || st.MTU != 1300 {
		t.Fatalf("stats %+v: want the packet-too-big learnt, path mtu 1300", st)
	}
	drainFD(fd)
	if err := col.Send(&Packet{Data: big}); err != nil {
		t.Fatal(err)
	}
	if got := captureFD(fd, 1, nil); len(got) != 1 || !bytes.Equal(got[0], l.innerFrame(big)) {
		t.Errorf("%d frames decapsulated beyond the 1300 link, want the copy", len(got))
	}
	if st := col.Stats(); st.Fragmented != 1 {
		t.Errorf("stats %+v: want the second copy fragmented to the learnt MTU", st)
	}
}

// guardSink hands copies to a collector and notes any copy that is one of
// the collector's own tunnel packets (VXLAN to 4789): a loop.
type guardSink struct {
	*Collector
	tunnel atomic.Uint64
}

func (s *guardSink) SendBatch(pkts []*Packet, errs []error) {
	for _, p := range pkts {
		ip := p.Data
		if p.L2 {
			if len(ip) < 14 || binary.BigEndian.Uint16(ip[12:]) != pkt.EthIPv4 {
				continue
			}
			ip = ip[14:]
		}
		if len(ip) >= 28 && ip[0]>>4 == 4 && ip[9] == pkt.ProtoUDP && binary.BigEndian.Uint16(ip[22:]) == encap.VXLANPort {
			s.tunnel.Add(1)
		}
	}
	s.Collector.SendBatch(pkts, errs)
}

func (s *guardSink) Send(p *Packet) error {
	var err [1]error
	s.SendBatch([]*Packet{p}, err[:])
	return err[0]
}

// TestCollectorLoopGuard: the one-uplink loop. Unfiltered rules copy
// everything at postrouting and at the uplink's netdev egress to a VXLAN
// collector reached by that same uplink. The tunnel packets never pass
// postrouting (AF_PACKET), and at the netdev egress hook they carry the
// collector's mark, which the guard first in the chain returns on: no
// tunnel packet is ever copied, copies stop when the traffic stops, and
// the traffic itself is unaffected. Without the guard in the egress chain
// the same test sees the loop at once.
func TestCollectorLoopGuard(t *testing.T) {
	for _, tc := range []struct {
		name  string
		guard string
	}{
		{"guarded", "meta mark & 0xffffff00 == 0x6e666d00 return"},
		{"without the guard the loop shows", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newCollectorLab(t)
			if _, errOut, err := l.r.Run(fmt.Sprintf(`
table inet loop {
	chain post { type filter hook postrouting priority 110; meta mark & 0xffffff00 == 0x6e666d00 return; log group 21 prefix "nfm:0"; }
}
table netdev loop {
	chain eg { type filter hook egress device "up0" priority 10; %s; log group 21 prefix "nfm:1"; }
}
`, tc.guard), "nft", "-f", "-"); err != nil {
				t.Fatalf("rules: %v: %s", err, errOut)
			}
			col := l.collector(t, CollectorConfig{Name: "lab", Format: encap.VXLAN, Addr: netip.MustParseAddr("198.18.2.9"), VNI: 42})
			sink := &guardSink{Collector: col}
			p, err := NewPipeline(Config{
				Channels: []Channel{{Kind: NFLOG, Num: 21, Netdev: true, Dest: "lab", RuleIDs: []int{0, 1}}},
				Rules:    []Rule{{ID: 0, Hook: HookPostrouting}, {ID: 1, Hook: HookEgress, Device: "up0"}},
				Sinks:    map[string]Sink{"lab": sink},
				NetNS:    l.r.FD(),
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() { errc <- p.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-errc; err != nil {
					t.Errorf("pipeline: %v", err)
				}
			}()
			<-p.Ready()
			received := func() uint64 { return p.Counters().Snapshot().Channels[0].Received }
			if tc.guard == "" {
				l.r.Run("", "ping", "-c", "1", "-W", "1", "198.18.2.9")
				for range 20 {
					if sink.tunnel.Load() > 0 {
						return // the loop, as expected without the guard
					}
					time.Sleep(50 * time.Millisecond)
				}
				t.Fatalf("no tunnel packet was copied without the guard (%d copies): the test cannot see a loop", received())
			}
			out, _, err := l.r.Run("", "ping", "-c", "20", "-i", "0.01", "-W", "1", "198.18.2.9")
			if err != nil || !strings.Contains(out, "20 received") {
				t.Fatalf("the production traffic suffered: %v\n%s", err, out)
			}
			// The host's own IPv6 chatter (MLD, router solicitations)
			// goes on being copied, a packet now and then; a loop would
			// grow without end.
			time.Sleep(500 * time.Millisecond)
			settled := received()
			time.Sleep(500 * time.Millisecond)
			n := received()
			if settled < 40 || n > settled+10 || n > 80 {
				t.Errorf("%d copies, then %d after 500 ms of quiet: want the 20 requests at postrouting and egress (40), a few of the host's own packets, and no growth", settled, n)
			}
			if n := sink.tunnel.Load(); n != 0 {
				t.Errorf("%d tunnel packets were copied: a loop", n)
			}
			var st CollectorStats
			for range 20 {
				if st = col.Stats(); st.Packets == received() {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if st.Errors != 0 || st.Packets != received() || st.Frames != st.Packets {
				t.Errorf("collector %+v, want every copy sent", st)
			}
			t.Logf("%d copies of 20 pings and the host's chatter, %d tunnel frames written, none copied", n, st.Frames)
		})
	}
}

// TestCollectorFollowsRouteAndNeighbour: the collector's MAC changes (and
// the old neighbour entry goes, as the kernel's garbage collection or an
// operator would drop it): Refresh resolves the new one and copies reach
// the collector again. Then the route to the collector moves to another
// uplink: the tunnel follows it.
func TestCollectorFollowsRouteAndNeighbour(t *testing.T) {
	l := newCollectorLab(t)
	col := l.collector(t, CollectorConfig{Format: encap.VXLAN, Addr: netip.MustParseAddr("198.18.2.9"), VNI: 42})
	pk := sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, "nfm-follow")
	arrives := func(what string) {
		t.Helper()
		drainFD(l.vx4FD)
		var got [][]byte
		for range 10 { // the first copies may still go the old way
			if err := col.Send(&Packet{Data: pk}); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if got = captureFD(l.vx4FD, 1, nil); len(got) > 0 {
				break
			}
		}
		if len(got) == 0 {
			t.Fatalf("%s: the collector received nothing: %s", what, col.Stats().Describe())
		}
	}
	arrives("at first")

	l.c.IP(t, "link", "set", "up1", "address", "02:00:00:00:09:09")
	l.r.IP(t, "neigh", "flush", "dev", "up0")
	for range 30 {
		if col.Refresh() == nil && col.Stats().NextHopMAC == "02:00:00:00:09:09" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st := col.Stats(); st.NextHopMAC != "02:00:00:00:09:09" {
		t.Fatalf("next hop MAC %s after the collector's changed: %s", st.NextHopMAC, st.Describe())
	}
	arrives("after the MAC changed")

	r, c := l.r, l.c
	r.IP(t, "link", "add", "up2", "type", "veth", "peer", "name", "up3", "netns", c.Name)
	r.IP(t, "addr", "add", "198.18.4.1/24", "dev", "up2")
	r.IP(t, "link", "set", "up2", "up")
	c.IP(t, "addr", "add", "198.18.4.9/24", "dev", "up3")
	c.IP(t, "link", "set", "up3", "up")
	up3 := captureSocket(t, c, "up3")
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	unix.SetsockoptTimeval(up3, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	r.IP(t, "route", "add", "198.18.2.9/32", "via", "198.18.4.9", "dev", "up2")
	for range 30 {
		if col.Refresh() == nil && col.Stats().Device == "up2" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st := col.Stats(); st.Device != "up2" || st.NextHop != "198.18.4.9" || st.Source != "198.18.4.1" {
		t.Fatalf("after the route moved: %s", st.Describe())
	}
	drainFD(up3)
	arrives("after the route moved")
	if got := captureFD(up3, 1, tunnelFrames); len(got) == 0 {
		t.Error("no tunnel packet on the new uplink")
	}
}
