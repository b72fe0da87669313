package integration

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// hostFirewall is an ordinary stateful router firewall: policy drop on
// input, forward and output with established/related accepted, forwarding
// from the client side only, ICMP and ICMPv6 (neighbour discovery) allowed,
// and masquerade on the uplink. Nothing in it allows nfmirror's copies.
const hostFirewall = `
table inet filter {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		iif "lo" accept
		meta l4proto { icmp, ipv6-icmp } accept
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "eth0" oifname "eth1" accept
	}
	chain output {
		type filter hook output priority filter; policy drop;
		ct state established,related accept
		oif "lo" accept
		meta l4proto { icmp, ipv6-icmp } accept
	}
}
table ip nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "eth1" masquerade
	}
}
`

// productionRules take each direction of a connection at a different hook,
// with different snaplens, plus every ARP frame from a netdev block: all to
// one port, so their copies must keep the kernel's order across hooks,
// families and snaplens.
const productionRules = `
prerouting {
    iifname "eth0" tcp dport { 80, 5201 } mirror to "span0"
}
postrouting {
    oifname "eth0" tcp sport { 80, 5201 } mirror to "span0" snaplen 128
}
ingress "eth0" {
    ether type arp mirror to "span0"
}
`

// iperfBytes is about what "iperf3 -n 4M -l 64K" sends on its data
// connection: the byte count, give or take one 64 KiB write, and the
// 37-byte cookie that opens the stream. The server may close before the
// last of it crossed the router.
const iperfBytes = 4<<20 + 37

// conntrackTCP counts the router's conntrack entries for TCP ports 80 and
// 5201, and all entries.
func (l *lab) conntrackTCP() (tcp, all int) {
	l.t.Helper()
	out := l.in(l.router, "cat", "/proc/net/nf_conntrack")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		all++
		if strings.Contains(line, " tcp ") && (strings.Contains(line, "dport=80 ") || strings.Contains(line, "dport=5201 ")) {
			tcp++
		}
	}
	return tcp, all
}

// TestProductionTrueMirror runs real clients through a router with its own
// firewall and NAT, with the mirror port at the kernel's default offloads,
// and lets tshark judge the mirror against the router's own capture of
// eth0: every selected packet arrives, none over the MTU, every complete
// segment with a valid checksum, each connection starting with the client's
// SYN, no TCP anomaly the reference lacks, the iperf3 stream byte for byte,
// and conntrack untouched by the copies.
func TestProductionTrueMirror(t *testing.T) {
	l := newLab(t)
	l.in(l.router, "sh", "-c", "nft -f - <<'EOF'\n"+hostFirewall+"\nEOF")
	l.startHTTP()
	m := l.apply(productionRules)
	l.start(l.server, nil, nil, "iperf3", "-s", "-1", "-B", "198.18.2.2")
	l.listening(l.server, 5201)
	ctTCP0, ctAll0 := l.conntrackTCP()

	ref := l.capture(l.router, "eth0", "", "tcp port 80 or tcp port 5201 or arp")
	mon := l.mirrorCapture("")
	l.in(l.client, "ip", "neigh", "flush", "dev", "c0") // an ARP exchange on eth0
	for _, url := range []string{"http://198.18.2.2/", "http://[2001:db8:2::2]/", "http://198.18.2.2/", "http://[2001:db8:2::2]/"} {
		l.in(l.client, "curl", "-sf", "-m", "5", "-o", "/dev/null", url)
	}
	out, err := l.try(l.client, "timeout", "30", "iperf3", "-c", "198.18.2.2", "-n", "4M", "-l", "64K")
	if err != nil {
		t.Fatalf("iperf3 through the firewall: %v\n%s", err, out)
	}
	m.settle()
	refFrames, monFrames := ref.frames(), mon.frames()
	span := l.txPackets(l.router, "span0")
	t.Logf("reference %d frames, mirror %d frames, span0 sent %d", len(refFrames), len(monFrames), span)

	// Every copy the kernel made was written, through the firewall.
	st := m.status()
	for _, r := range st.RuleStats {
		if r.Matched == 0 || r.Matched != r.Mirrored {
			t.Errorf("rule %s: matched %d, mirrored %d: want every match mirrored", r.Text, r.Matched, r.Mirrored)
		}
	}
	for _, d := range st.Destinations {
		if d.Errors != 0 {
			t.Errorf("destination %s: %d errors", d.Name, d.Errors)
		}
	}
	// The copies made no conntrack entry: only the six connections did.
	if ctTCP, ctAll := l.conntrackTCP(); ctTCP-ctTCP0 != 6 || ctAll-ctAll0 != ctTCP-ctTCP0 {
		t.Errorf("conntrack: %d new TCP entries and %d new entries in all, want the 6 connections' only", ctTCP-ctTCP0, ctAll-ctAll0)
	}

	// Wire frames.
	over := 0
	for _, n := range mon.lens {
		if n > 1514 {
			over++
		}
	}
	if over > 0 {
		t.Errorf("%d mirrored frames over the port's 1500-byte MTU", over)
	}

	mirror := tsharkPackets(t, mon.file)
	reference := tsharkPackets(t, ref.file)
	badTCP, badIP, complete := 0, 0, 0
	first := map[int]tsharkPacket{}
	cut := map[int]bool{} // streams with a frame the snaplen cut
	for _, p := range mirror {
		if p.stream < 0 {
			continue
		}
		if _, ok := first[p.stream]; !ok {
			first[p.stream] = p
		}
		if p.truncated {
			cut[p.stream] = true
			continue
		}
		complete++
		badTCP += b2i(p.tcpChecksum == "0")
		badIP += b2i(p.ipChecksum == "0")
	}
	if badTCP+badIP > 0 || complete < 1000 {
		t.Errorf("tshark: %d bad TCP and %d bad IPv4 checksums among %d complete mirrored segments", badTCP, badIP, complete)
	}
	// Order: every connection starts with the client's SYN.
	if len(first) != 6 {
		t.Errorf("the mirror holds %d TCP connections, want 6", len(first))
	}
	for s, p := range first {
		if !p.syn || p.ack || (p.src != "198.18.1.2" && p.src != "2001:db8:1::2") {
			t.Errorf("TCP stream %d starts with frame %d from %s (SYN %v, ACK %v): want the client's SYN", s, p.frame, p.src, p.syn, p.ack)
		}
	}
	// tshark's TCP analysis finds nothing on the mirror the router's own
	// capture lacks. A frame cut by the snaplen is short on the wire, so
	// tshark takes the data after its cut for a segment it did not see:
	// where the snaplen cut data (the HTTP responses, iperf3's results),
	// only retransmissions and reordering are judged.
	all := func(int) bool { return true }
	whole := func(s int) bool { return !cut[s] }
	am, ar := anomalies(mirror, whole), anomalies(reference, all)
	if !am.within(ar) {
		t.Errorf("tshark TCP analysis of the streams no snaplen cut: mirror %+v, reference %+v", am, ar)
	}
	if ac := anomalies(mirror, all); ac.Behind > ar.Behind {
		t.Errorf("tshark TCP analysis of all streams: mirror %+v, reference %+v", ac, ar)
	}
	if len(cut) == len(first) {
		t.Errorf("the snaplen cut a frame in every stream: nothing left to judge whole")
	}
	t.Logf("tshark TCP analysis: mirror %+v (%d of %d streams whole), reference %+v; %d complete segments, all checksums valid",
		am, len(first)-len(cut), len(first), ar, complete)

	// The iperf3 data stream, as an analyzer reassembles it: what crossed
	// the router (iperf3 -n counts bytes written; the server may close
	// before the last of them crossed).
	gotStream := largestClientStream(t, mon.file, mirror)
	refStream := largestClientStream(t, ref.file, reference)
	if len(refStream) < 1<<20 || len(refStream) > iperfBytes+64<<10 {
		t.Errorf("the router's own capture holds %d bytes of the iperf3 stream, want at least 1 MiB", len(refStream))
	}
	if !bytes.Equal(gotStream, refStream) {
		t.Errorf("tshark follow: the mirrored iperf3 stream has %d bytes, the router's capture %d (equal prefix %d)", len(gotStream), len(refStream), commonPrefix(gotStream, refStream))
	}
	m.stop()
}

// largestClientStream returns what the client sent on the TCP stream of a
// capture where it sent the most, as tshark follows it.
func largestClientStream(t *testing.T, file string, pkts []tsharkPacket) []byte {
	t.Helper()
	streams := map[int]bool{}
	for _, p := range pkts {
		if p.stream >= 0 && p.srcPort == 5201 {
			streams[p.stream] = true
		}
	}
	var best []byte
	for s := range streams {
		if c, _ := tsharkFollow(t, file, s); len(c) > len(best) {
			best = c
		}
	}
	return best
}

// TestIPv4OnlyRouter: on a router with IPv6 disabled everywhere, nfmirror
// starts, says once that IPv6 is off on the port, mirrors IPv4, and leaves
// the router exactly as it found it.
func TestIPv4OnlyRouter(t *testing.T) {
	l := newLab(t)
	l.startHTTP()
	l.in(l.router, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	before := l.snapshot()
	m := l.apply("prerouting {\n    iifname \"eth0\" tcp dport 80 mirror to \"span0\"\n}\n")
	mon := l.mirrorCapture("tcp port 80")
	for range 3 {
		l.in(l.client, "curl", "-sf", "-m", "5", "-o", "/dev/null", "http://198.18.2.2/")
	}
	m.settle()
	got := len(mon.frames())
	r := m.status().RuleStats[0]
	if r.Matched < 15 || r.Matched != r.Mirrored || uint64(got) != r.Mirrored {
		t.Errorf("matched %d, mirrored %d, the monitor got %d: want every IPv4 packet mirrored", r.Matched, r.Mirrored, got)
	}
	m.stop()
	warn := regexp.MustCompile(`level=WARN msg="an IP family is off on the mirror port[^"]*" port=span0 family=ipv6`)
	if n := len(warn.FindAllString(m.stderrText(), -1)); n != 1 {
		t.Errorf("the log says %d times that IPv6 is off on span0, want once:\n%s", n, m.stderrText())
	}
	if after := l.snapshot(); after != before {
		t.Errorf("the router changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
