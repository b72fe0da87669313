package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"

	"github.com/nfmirror/nfmirror/internal/encap"
)

// Remote collectors and capture files, judged by real decapsulators: the
// collector's own kernel vxlan devices, and tshark's GRE and ERSPAN
// dissectors on its uplink.

const collectorRules = `
define c4 = vxlan 198.18.3.9 vni 42
define c6 = vxlan 2001:db8:3::9 vni 43 port 4790
prerouting {
    iifname "eth0" tcp dport { 80, 5201 } mirror to $c4 mirror to $c6
}
postrouting {
    oifname "eth0" tcp sport { 80, 5201 } mirror to $c4 mirror to $c6
}
`

// TestCollectorVXLAN: curl over IPv4 and IPv6 and an iperf3 stream, copied
// to two VXLAN collectors (IPv4 and IPv6 outer) through the router's uplink:
// each collector's kernel vxlan device hands out what the router's own
// capture of eth0 holds, stream for stream, in order, as wire-sized frames
// with valid checksums, and no outer frame is over the uplink's MTU.
func TestCollectorVXLAN(t *testing.T) {
	l := newLab(t)
	l.addCollector()
	l.collectorVXLAN()
	l.startHTTP()
	m := l.apply(collectorRules)
	l.start(l.server, nil, nil, "iperf3", "-s", "-1", "-B", "198.18.2.2")
	l.listening(l.server, 5201)
	ref := l.capture(l.router, "eth0", "", "tcp port 80 or tcp port 5201")
	got4 := l.captureSnap(l.collector, "vx4", "in", "", mirrorSnaplen)
	got6 := l.captureSnap(l.collector, "vx6", "in", "", mirrorSnaplen)
	outer := l.captureSnap(l.collector, "k0", "in", "udp", mirrorSnaplen)
	for _, url := range []string{"http://198.18.2.2/", "http://[2001:db8:2::2]/"} {
		l.in(l.client, "curl", "-sf", "-m", "5", "-o", "/dev/null", url)
	}
	if out, err := l.try(l.client, "timeout", "30", "iperf3", "-c", "198.18.2.2", "-n", "2M", "-l", "64K"); err != nil {
		t.Fatalf("iperf3: %v\n%s", err, out)
	}
	m.settle()
	refPkts := ipPackets(ref.frames(), nil)
	want := streams(refPkts)
	outer.frames()
	for i, n := range outer.lens {
		if n > 1514 {
			t.Errorf("outer frame %d on the collector's uplink is %d bytes", i, n)
		}
	}
	for _, c := range []*capture{got4, got6} {
		frames := c.frames()
		pkts := ipPackets(frames, nil)
		got := streams(pkts)
		for k, w := range want {
			if g, ok := got[k]; !ok || !bytes.Equal(g.data, w.data) {
				t.Errorf("%s: stream %s: %d bytes decapsulated, %d in the router's capture", c.file, k, len(g.data), len(w.data))
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d streams decapsulated, the router's capture has %d", c.file, len(got), len(want))
		}
		for _, n := range c.lens {
			if n > 1514 {
				t.Errorf("%s: a %d-byte inner frame", c.file, n)
			}
		}
		validChecksums(t, pkts)
		firstSYN(t, c.file, pkts)
		t.Logf("%s: %d inner frames, %d streams", filepath.Base(c.file), len(frames), len(got))
	}
	st := m.status()
	for _, d := range st.Destinations {
		if d.Kind != "vxlan" || d.Errors != 0 || d.Packets == 0 {
			t.Errorf("destination %s (%s): %d packets, %d errors", d.Name, d.Kind, d.Packets, d.Errors)
		}
	}
	m.stop()
}

// firstSYN fails the test unless the first packet of every connection in
// pkts is the client's SYN.
func firstSYN(t *testing.T, what string, pkts []l3) {
	t.Helper()
	seen := map[string]bool{}
	for _, p := range pkts {
		if p.proto != 6 || len(p.l4) < 14 {
			continue
		}
		sp, dp := int(p.l4[0])<<8|int(p.l4[1]), int(p.l4[2])<<8|int(p.l4[3])
		a, b := p.src.String()+":"+strconv.Itoa(sp), p.dst.String()+":"+strconv.Itoa(dp)
		if b < a {
			a, b = b, a
		}
		if seen[a+b] {
			continue
		}
		seen[a+b] = true
		if flags := p.l4[13]; flags&0x12 != 0x02 {
			t.Errorf("%s: connection %s-%s starts with flags %#x, not the client's SYN", what, a, b, flags)
		}
	}
}

// TestCollectorGREAndERSPAN: copies to a GRE collector over IPv6 and to
// ERSPAN type II and III collectors, read on the collector's uplink by
// tshark's dissectors and by a decoder of nfmirror's own: the protocol
// numbers, session ids, the direction of each hook, the T bit of a copy a
// snaplen cut, and every inner packet.
func TestCollectorGREAndERSPAN(t *testing.T) {
	l := newLab(t)
	l.addCollector()
	m := l.apply(`
define lab  = gre 2001:db8:3::9
define ids2 = erspan 198.18.3.9 session 7
define ids3 = erspan 198.18.3.9 session 8 version 3
prerouting {
    iifname "eth0" icmp type echo-request mirror to $lab mirror to $ids2 mirror to $ids3
}
postrouting {
    oifname "eth0" icmp type echo-reply mirror to $lab mirror to $ids2 snaplen 64 mirror to $ids3
}
`)
	uplink := l.capture(l.collector, "k0", "in", "proto gre or ip6 proto 47")
	l.in(l.client, "ping", "-c", "4", "-i", "0.1", "-s", "200", "198.18.2.2")
	m.settle()
	upFrames := uplink.frames()
	fields := func(filter string, f ...string) [][]string {
		t.Helper()
		args := []string{"-n", "-r", uplink.file, "-Y", filter, "-T", "fields", "-E", "separator=,"}
		for _, x := range f {
			args = append(args, "-e", x)
		}
		out, err := exec.Command("tshark", args...).Output()
		if err != nil {
			t.Fatalf("tshark -Y %s: %v", filter, err)
		}
		var rows [][]string
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line != "" {
				rows = append(rows, strings.Split(line, ","))
			}
		}
		return rows
	}
	// GRE: Ethernet bridged (0x6558) over IPv6, the inner ICMP seen.
	if rows := fields("ipv6 && gre.proto == 0x6558 && icmp", "icmp.type"); len(rows) != 8 {
		t.Errorf("tshark sees %d GRE/TEB packets with ICMP inside, want 8 (4 requests, 4 replies)", len(rows))
	}
	// ERSPAN II, session 7: the reply copies were cut to 64 bytes: T set.
	rows := fields("erspan.spanid == 7 && icmp", "icmp.type", "erspan.truncated")
	t2 := map[string]int{}
	for _, r := range rows {
		t2[r[0]+"/"+r[1]]++
	}
	if len(rows) != 8 || t2["8/0"] != 4 || t2["0/1"] != 4 {
		t.Errorf("ERSPAN II session 7: %v (type/T), want 4 requests with T clear, 4 cut replies with T set", t2)
	}
	// ERSPAN III, session 8: the direction of each hook.
	rows = fields("erspan.spanid == 8 && icmp", "icmp.type", "erspan.direction")
	t3 := map[string]int{}
	for _, r := range rows {
		t3[r[0]+"/"+r[1]]++
	}
	if len(rows) != 8 || t3["8/0"] != 4 || t3["0/1"] != 4 {
		t.Errorf("ERSPAN III session 8: %v (type/direction), want requests ingress (0), replies egress (1)", t3)
	}
	// nfmirror's own decoder: every outer packet checks out.
	n := 0
	for _, f := range upFrames {
		if len(f) < 14 {
			continue
		}
		d, err := encap.Decode(f[14:])
		if err != nil {
			t.Errorf("outer packet: %v", err)
			continue
		}
		n++
		switch {
		case d.Format == encap.ERSPAN2 && d.Session != 7, d.Format == encap.ERSPAN3 && d.Session != 8:
			t.Errorf("ERSPAN packet with session %d", d.Session)
		}
	}
	if n != 24 {
		t.Errorf("decoded %d tunnel packets on the uplink, want 24", n)
	}
	m.stop()
}

// TestCollectorOneUplinkNoLoop: an unfiltered postrouting rule and an
// unfiltered egress rule on the uplink, both to a collector reached through
// that uplink: the tunnel's own packets are never copied (they carry the
// mark the loop guard skips), so the copies stay bounded by the traffic and
// forwarding loses nothing.
func TestCollectorOneUplinkNoLoop(t *testing.T) {
	l := newLab(t)
	l.addCollector()
	l.collectorVXLAN()
	m := l.apply(`
define c4 = vxlan 198.18.3.9 vni 42
postrouting {
    mirror to $c4
}
egress "eth1" {
    mirror to $c4
}
`)
	inner := l.captureSnap(l.collector, "vx4", "in", "", mirrorSnaplen)
	out := l.in(l.client, "ping", "-c", "20", "-i", "0.05", "-W", "2", "198.18.2.2")
	if !strings.Contains(out, "20 received") {
		t.Errorf("forwarding lost pings with the tunnel on the uplink:\n%s", out)
	}
	m.settle()
	before := m.status().Total
	time.Sleep(time.Second)
	after := m.status().Total
	if after.Mirrored != before.Mirrored {
		t.Errorf("copies keep coming after the traffic stopped: %d then %d", before.Mirrored, after.Mirrored)
	}
	frames := inner.frames()
	nested := 0
	for _, p := range ipPackets(frames, nil) {
		if p.proto == 17 && len(p.l4) >= 4 && int(p.l4[2])<<8|int(p.l4[3]) == 4789 {
			nested++
		}
	}
	// Each ping crosses postrouting and eth1's egress twice (request to
	// the server, reply to the client: once each way per hook that sees
	// it), a handful of neighbour messages besides.
	if nested != 0 || after.Mirrored > 4*20+20 || after.Mirrored < 2*20 {
		t.Errorf("%d copies for 20 pings, %d of them tunnel packets copied again", after.Mirrored, nested)
	}
	t.Logf("20 pings: %d copies, %d decapsulated, none of the tunnel's own", after.Mirrored, len(frames))
	m.stop()
}

// TestCollectorDownThenUp: with no route to the collector, copies fail and
// are counted per destination, production traffic unaffected; with the
// route back, copies arrive again.
func TestCollectorDownThenUp(t *testing.T) {
	l := newLab(t)
	l.addCollector()
	l.collectorVXLAN()
	m := l.apply("define c4 = vxlan 198.18.3.9 vni 42\nprerouting {\n    iifname \"eth0\" icmp type echo-request mirror to $c4\n}\n")
	l.in(l.router, "ip", "route", "del", "198.18.3.0/24")
	if out := l.in(l.client, "ping", "-c", "5", "-i", "0.05", "198.18.2.2"); !strings.Contains(out, "5 received") {
		t.Errorf("forwarding suffered from the unreachable collector:\n%s", out)
	}
	// The collector looks the route up again within seconds (and after a
	// failed write): from then on copies fail as "no route".
	waitFor(t, 10*time.Second, "copies counted as without route", func() bool {
		l.in(l.client, "ping", "-c", "1", "198.18.2.2")
		d := m.status().Destinations[0]
		return d.Collector != nil && d.Collector.NoRoute > 0 && d.Errors > 0
	})
	inner := l.captureSnap(l.collector, "vx4", "in", "icmp", mirrorSnaplen)
	sent := m.status().Destinations[0].Packets
	l.in(l.router, "ip", "route", "add", "198.18.3.0/24", "via", "198.18.2.2")
	waitFor(t, 10*time.Second, "copies to resume", func() bool {
		l.in(l.client, "ping", "-c", "1", "198.18.2.2")
		return m.status().Destinations[0].Packets > sent
	})
	m.settle()
	if n := len(inner.frames()); n == 0 {
		t.Error("no copy reached the collector after its route came back")
	}
	m.stop()
}

// TestCaptureFiles: copies into pcapng files, rotated by size, with and
// without keep: tshark reads every file, their packets add up to what
// status counts, keep is honoured, files are 0600, and the statistics
// blocks carry nfmirror's own drop counts.
func TestCaptureFiles(t *testing.T) {
	l := newLab(t)
	dir := filepath.Join(l.dir, "captures")
	m := l.apply(fmt.Sprintf(`
ingress "eth0" {
    mirror to file %q rotate 16 kbytes
}
prerouting {
    iifname "eth0" icmp type echo-request mirror to file %q rotate 4 kbytes keep 2
}
`, filepath.Join(dir, "all.pcapng"), filepath.Join(dir, "keep.pcapng")))
	l.in(l.client, "ip", "neigh", "flush", "dev", "c0")
	l.in(l.client, "ping", "-c", "40", "-i", "0.02", "-s", "500", "198.18.2.2")
	m.settle()
	st := m.status()
	m.stop() // every file closed complete
	count := map[string]uint64{}
	for _, d := range st.Destinations {
		count[d.Name] = d.Packets
	}
	check := func(glob string, wantFiles int) (pkts uint64, files int) {
		t.Helper()
		names, _ := filepath.Glob(filepath.Join(dir, glob))
		for _, f := range names {
			fi, err := os.Stat(f)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: %v, want mode 0600", f, err)
			}
			out, err := exec.Command("tshark", "-n", "-r", f, "-T", "fields", "-e", "frame.number").Output()
			if err != nil {
				t.Errorf("tshark -r %s: %v", f, err)
			}
			pkts += uint64(strings.Count(string(out), "\n"))
			for _, s := range ngStats(t, f) {
				if s.dropped != 0 {
					t.Errorf("%s: the statistics block says %d dropped, status none", f, s.dropped)
				}
			}
		}
		if wantFiles > 0 && len(names) != wantFiles {
			t.Errorf("%s: %d files, want %d", glob, len(names), wantFiles)
		}
		return pkts, len(names)
	}
	all, n := check("all*.pcapng", 0)
	// 40 echo requests and an ARP request arrive on eth0, about 23 kB.
	if key := `file "` + filepath.Join(dir, "all.pcapng") + `"`; all != count[key] || all < 41 || n < 2 {
		t.Errorf("all.pcapng: %d packets in %d files, status counted %d", all, n, count[key])
	}
	kept, _ := check("keep*.pcapng", 2)
	if key := `file "` + filepath.Join(dir, "keep.pcapng") + `"`; kept >= count[key] || kept == 0 {
		t.Errorf("keep.pcapng: %d packets in the 2 files kept of %d written", kept, count[key])
	}
}

type ngStat struct{ iface, dropped uint64 }

// ngStats reads the interface statistics blocks of a pcapng file.
func ngStats(t *testing.T, path string) []ngStat {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []ngStat
	r, err := pcapgo.NewNgReader(f, pcapgo.NgReaderOptions{WantMixedLinkType: true, StatisticsCallback: func(id int, s pcapgo.NgInterfaceStatistics) {
		out = append(out, ngStat{uint64(id), s.PacketsDropped})
	}})
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	for {
		if _, _, err := r.ReadPacketData(); err != nil {
			break
		}
	}
	if len(out) == 0 {
		t.Errorf("%s: no interface statistics block", path)
	}
	return out
}
