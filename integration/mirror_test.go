package integration

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nfmirror/nfmirror/mirror"
)

var (
	serverV4 = netip.MustParseAddr("198.18.2.2")
	routerV4 = netip.MustParseAddr("198.18.1.1")
	serverV6 = netip.MustParseAddr("2001:db8:2::2")
	routerV6 = netip.MustParseAddr("2001:db8:1::1")
)

// startHTTP serves a small page from the server namespace on port 80 (IPv4
// and IPv6) and waits until it answers.
func (l *lab) startHTTP() {
	l.t.Helper()
	dir := l.t.TempDir()
	page := bytes.Repeat([]byte("nfmirror mirrors this page.\n"), 200) // several segments
	if err := writeFile(dir+"/index.html", page); err != nil {
		l.t.Fatal(err)
	}
	l.start(l.server, nil, nil, "python3", "-m", "http.server", "80", "--bind", "::", "--directory", dir)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := l.try(l.client, "curl", "-s", "-o", "/dev/null", "-m", "1", "http://198.18.2.2/"); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.t.Fatal("http server in the server namespace did not come up")
}

// TestMirrorIPExact mirrors selected IPv4 and IPv6 traffic from prerouting
// and checks the monitor sees exactly the packets the rules select, as they
// arrived: no packet missing, none extra, none twice. It includes copies
// routing cannot carry: pings to the router's own addresses (which must not
// be answered twice) and multicast neighbour solicitations.
func TestMirrorIPExact(t *testing.T) {
	l := newLab(t)
	l.startHTTP()
	m := l.apply(`
define span = "span0"
prerouting {
    iifname "eth0" ip daddr 198.18.2.2 mirror to $span
    iifname "eth0" ip6 daddr 2001:db8:2::2 mirror to $span
    # Addressed to the router itself: routing would deliver these locally.
    iifname "eth0" ip daddr 198.18.1.1 icmp type echo-request mirror to $span
    iifname "eth0" ip6 daddr 2001:db8:1::1 icmpv6 type echo-request mirror to $span
    # Multicast: neighbour solicitations.
    iifname "eth0" icmpv6 type nd-neighbor-solicit mirror to $span
}
`)
	selected := func(p l3) bool {
		switch {
		case p.dst == serverV4, p.dst == serverV6:
			return true
		case p.dst == routerV4 && p.icmpTy == 8 && !p.v6:
			return true
		case p.dst == routerV6 && p.icmpTy == 128 && p.v6:
			return true
		case p.v6 && p.icmpTy == 135:
			return true
		}
		return false
	}
	ref := l.capture(l.router, "eth0", "in", "")
	mon := l.mirrorCapture("")

	for _, args := range [][]string{
		{"ping", "-c", "5", "-i", "0.05", "-W", "2", "198.18.2.2"},
		{"ping", "-6", "-c", "5", "-i", "0.05", "-W", "2", "2001:db8:2::2"},
		{"curl", "-sf", "-m", "5", "-o", "/dev/null", "http://198.18.2.2/"},
		{"curl", "-sf", "-m", "5", "-o", "/dev/null", "http://[2001:db8:2::2]/"},
	} {
		l.in(l.client, args...)
	}
	// Pings to the router: exactly one reply each, no duplicates.
	for _, dst := range []string{"198.18.1.1", "2001:db8:1::1"} {
		out := l.in(l.client, "ping", "-c", "5", "-i", "0.05", "-W", "2", dst)
		if !strings.Contains(out, "5 received") || strings.Contains(out, "DUP") {
			t.Errorf("ping %s from the client: want 5 replies and no duplicates:\n%s", dst, out)
		}
	}
	// A neighbour solicitation to a multicast address.
	l.in(l.client, "ip", "-6", "neigh", "flush", "dev", "c0")
	l.in(l.client, "ping", "-6", "-c", "1", "-W", "2", "2001:db8:1::1")
	m.settle()

	want := ipPackets(ref.frames(), selected)
	got := ipPackets(mon.frames(), nil)
	if len(want) < 30 {
		t.Fatalf("reference capture has only %d selected packets: the traffic did not run", len(want))
	}
	sameMultiset(t, "prerouting mirror", got, want)
	validChecksums(t, got)

	// Status agrees with what the monitor saw: every match mirrored, at
	// least as many as the monitor captured, nothing lost.
	st := m.status()
	if st.Total.Matched != st.Total.Mirrored || st.Total.Mirrored < uint64(len(got)) || st.Total.Dropped != (mirror.RuleDrops{}) || st.Total.LostInKernel != 0 {
		t.Errorf("status totals %+v, want every match mirrored (the monitor saw %d), nothing lost", st.Total, len(got))
	}
	m.stop()
}
