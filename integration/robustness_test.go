package integration

import (
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// txPackets reads a link's transmitted-packets counter.
func (l *lab) txPackets(ns, dev string) int {
	l.t.Helper()
	out := l.in(ns, "cat", "/sys/class/net/"+dev+"/statistics/tx_packets")
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		l.t.Fatalf("tx_packets of %s: %q", dev, out)
	}
	return n
}

// rxPackets reads a link's received-packets counter.
func (l *lab) rxPackets(ns, dev string) int {
	l.t.Helper()
	out := l.in(ns, "cat", "/sys/class/net/"+dev+"/statistics/rx_packets")
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		l.t.Fatalf("rx_packets of %s: %q", dev, out)
	}
	return n
}

// portCounts are the router's transmit counters the loop test compares.
type portCounts struct{ sent, copies int }

// quietCounts reads the router's tx counters (eth0+eth1, span0) until two
// reads 300 ms apart agree, so that a window never starts or ends between a
// packet and its copy (the router's own MLD reports and neighbour probes
// come at any time, and their copies follow a few milliseconds later).
func (l *lab) quietCounts() portCounts {
	l.t.Helper()
	read := func() portCounts {
		return portCounts{
			sent:   l.txPackets(l.router, "eth0") + l.txPackets(l.router, "eth1"),
			copies: l.txPackets(l.router, "span0"),
		}
	}
	prev := read()
	for range 30 {
		time.Sleep(300 * time.Millisecond)
		cur := read()
		if cur == prev {
			return cur
		}
		prev = cur
	}
	l.t.Fatalf("the router's ports never went quiet for 300 ms in 9 s")
	return prev
}

// TestNoLoopWithoutFilter: "postrouting { mirror to span0 }" copies every
// packet leaving the router, and the copies themselves leave the router too:
// they must not be copied again. The port sends exactly one copy per
// packet the router sent, and the monitor sees each ping exactly once.
func TestNoLoopWithoutFilter(t *testing.T) {
	l := newLab(t)
	m := l.apply("postrouting {\n    mirror to \"span0\"\n}\n")
	mon := l.mirrorCapture("icmp")
	before := l.quietCounts()
	l.in(l.client, "ping", "-c", "20", "-i", "0.02", "-W", "2", "198.18.2.2")
	after := l.quietCounts()
	sent, copies := after.sent-before.sent, after.copies-before.copies
	if copies != sent {
		t.Errorf("the router sent %d packets on eth0+eth1 and %d copies on span0, want equal (a loop amplifies, a loss shrinks)", sent, copies)
	}
	if sent < 40 {
		t.Errorf("only %d packets forwarded: the pings did not run", sent)
	}
	// 20 requests forwarded out eth1 and 20 replies out eth0, once each.
	echo := ipPackets(mon.frames(), func(p l3) bool { return p.icmpTy == 8 || p.icmpTy == 0 })
	if len(echo) != 40 {
		t.Errorf("the monitor saw %d ICMP echo copies, want 40 (20 requests and 20 replies, once each)", len(echo))
	}
	m.stop()
}

// TestStoppedConsumerNeverHurtsTraffic: with nfmirror stopped (SIGSTOP),
// forwarding goes on for both the best-effort and the lossless (NFQUEUE,
// fail-open) rules; after SIGCONT it mirrors again and counts what it lost.
func TestStoppedConsumerNeverHurtsTraffic(t *testing.T) {
	l := newLab(t)
	m := l.apply(`
forward {
    icmp type echo-request mirror to "span0"
    icmpv6 type echo-request mirror to "span0" lossless
}
`)
	m.signal(syscall.SIGSTOP)
	// Best effort (NFLOG): nothing waits for nfmirror.
	out, _ := l.try(l.client, "ping", "-c", "200", "-i", "0.002", "-W", "2", "-q", "198.18.2.2")
	if !strings.Contains(out, "200 packets transmitted, 200 received") {
		t.Errorf("while nfmirror was stopped, best-effort mirrored traffic lost packets:\n%s", out)
	}
	// Lossless (NFQUEUE): the kernel holds at most the queue's length of
	// packets for a frozen nfmirror, then lets the rest pass (fail-open).
	const sent, held = 3000, 1024
	out, _ = l.try(l.client, "ping", "-6", "-c", strconv.Itoa(sent), "-i", "0.0005", "-W", "2", "-q", "2001:db8:2::2")
	m2 := regexp.MustCompile(`(\d+) received`).FindStringSubmatch(out)
	if m2 == nil {
		t.Fatalf("ping output: %s", out)
	}
	if got, _ := strconv.Atoi(m2[1]); got < sent-held-50 {
		t.Errorf("while nfmirror was stopped, lossless-mirrored traffic got %d of %d replies, want at least %d (fail-open after %d held)", got, sent, sent-held-50, held)
	}
	m.signal(syscall.SIGCONT)
	mon := l.mirrorCapture("icmp or icmp6")
	l.in(l.client, "ping", "-c", "5", "-i", "0.05", "-W", "2", "198.18.2.2")
	l.in(l.client, "ping", "-6", "-c", "5", "-i", "0.05", "-W", "2", "2001:db8:2::2")
	m.settle()
	if n := len(ipPackets(mon.frames(), func(p l3) bool { return p.icmpTy == 8 || p.icmpTy == 128 })); n < 10 {
		t.Errorf("after SIGCONT the monitor saw %d echo requests, want at least the 10 new ones", n)
	}
	m.stop()
}

// TestMirrorPortComesBack: the mirror port disappears while nfmirror runs
// (its veth deleted) and comes back; nfmirror keeps running, counts the
// copies it could not send, and mirrors again once the port is back.
func TestMirrorPortComesBack(t *testing.T) {
	l := newLab(t)
	m := l.apply("forward {\n    icmp type echo-request mirror to \"span0\"\n}\n")
	l.in(l.router, "ip", "link", "del", "span0")
	l.in(l.client, "ping", "-c", "5", "-i", "0.05", "-W", "2", "198.18.2.2")
	select {
	case <-m.done:
		t.Fatalf("nfmirror exited when its port disappeared:\n%s", m.stderrText())
	case <-time.After(300 * time.Millisecond):
	}
	l.must("ip", "link", "add", "span0", "netns", l.router, "type", "veth", "peer", "name", "mon0", "netns", l.monitor)
	l.in(l.router, "ip", "link", "set", "span0", "up")
	l.in(l.monitor, "ip", "link", "set", "mon0", "up", "promisc", "on")
	mon := l.mirrorCapture("icmp")
	waitFor(t, 5*time.Second, "mirroring to resume", func() bool {
		l.in(l.client, "ping", "-c", "1", "-W", "1", "198.18.2.2")
		for _, d := range m.status().Destinations {
			if d.Packets > 0 {
				return true
			}
		}
		return false
	})
	if n := len(ipPackets(mon.frames(), func(p l3) bool { return p.icmpTy == 8 })); n == 0 {
		t.Errorf("the monitor saw no echo request after the port came back")
	}
	st := m.status()
	if st.Total.Dropped.SendError == 0 {
		t.Errorf("copies made while the port was gone were not counted as send errors: %+v", st.Total)
	}
	m.stop()
}
