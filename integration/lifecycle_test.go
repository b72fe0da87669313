package integration

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// snapshot is everything nfmirror may change in the router namespace.
func (l *lab) snapshot() string {
	l.t.Helper()
	var b strings.Builder
	for _, args := range [][]string{
		{"nft", "list", "ruleset"},
		{"ip", "rule", "show"},
		{"ip", "-6", "rule", "show"},
		{"ip", "route", "show", "table", "all"},
		{"ip", "-6", "route", "show", "table", "all"},
		{"ip", "-d", "link", "show", "span0"},
	} {
		out := counterRe.ReplaceAllString(l.in(l.router, args...), "counter")
		// Neighbour entries and route caches age on their own; link
		// statistics are not settings.
		b.WriteString("$ " + strings.Join(args, " ") + "\n" + out)
	}
	return b.String()
}

// counterRe matches nft counter values, which traffic changes.
var counterRe = regexp.MustCompile(`counter packets \d+ bytes \d+`)

// A foreign table nfmirror must never touch.
const foreignTable = `table inet admin {
	chain pre {
		type filter hook prerouting priority -150; policy accept;
		meta mark set 0x10 counter
	}
}
`

func (l *lab) addForeignTable() {
	l.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", l.router, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(foreignTable)
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("nft -f foreign table: %v\n%s", err, out)
	}
}

const simpleRules = `
prerouting {
    iifname "eth0" icmp type echo-request mirror to "span0"
    iifname "eth0" icmpv6 type echo-request mirror to "span0"
}
ingress "eth0" {
    ether type arp mirror to "span0"
}
`

// TestSIGTERMRestoresEverything: after SIGTERM the router's ruleset, ip
// rules, routes and the mirror port's settings are exactly as before, and a
// foreign table is untouched throughout.
func TestSIGTERMRestoresEverything(t *testing.T) {
	l := newLab(t)
	l.addForeignTable()
	before := l.snapshot()
	m := l.apply(simpleRules)
	during := l.snapshot()
	if during == before {
		t.Fatal("nothing changed while nfmirror ran: no table, rules or routes were installed")
	}
	for _, want := range []string{"table inet nfmirror", "table netdev nfmirror", "table inet admin", "fwmark"} {
		if !strings.Contains(during, want) {
			t.Errorf("while running, the router lacks %q:\n%s", want, during)
		}
	}
	l.in(l.client, "ping", "-c", "2", "-i", "0.05", "198.18.2.2")
	m.stop()
	if after := l.snapshot(); after != before {
		t.Errorf("after SIGTERM the router differs from before:\n--- before\n%s\n--- after\n%s", before, after)
	}
}

// TestKill9ThenFlush: a SIGKILLed nfmirror leaves no table (the kernel
// removes owner tables); `nfmirror flush` removes the ip rules and routes
// and restores the port, leaving the router exactly as before.
func TestKill9ThenFlush(t *testing.T) {
	l := newLab(t)
	l.addForeignTable()
	before := l.snapshot()
	m := l.apply(simpleRules)
	m.signal(syscall.SIGKILL)
	<-m.done
	waitFor(t, 2*time.Second, "the kernel to remove the owner's tables", func() bool {
		return !strings.Contains(l.in(l.router, "nft", "list", "tables"), "nfmirror")
	})
	// Production traffic does not care that nfmirror died.
	for _, dst := range []string{"198.18.2.2", "2001:db8:2::2"} {
		if out, err := l.try(l.client, "ping", "-c", "5", "-i", "0.05", "-W", "2", dst); err != nil || !strings.Contains(out, "5 received") {
			t.Errorf("after kill -9, ping %s: %v\n%s", dst, err, out)
		}
	}
	out := l.in(l.router, nfmBin, "flush", "-state-dir", l.dir+"/state")
	t.Logf("flush: %s", out)
	if after := l.snapshot(); after != before {
		t.Errorf("after kill -9 and flush the router differs from before:\n--- before\n%s\n--- after\n%s", before, after)
	}
	if out := l.in(l.router, nfmBin, "flush", "-state-dir", l.dir+"/state"); !strings.Contains(out, "nothing to flush") {
		t.Errorf("a second flush should find nothing, said: %s", out)
	}

	// Without an explicit flush, the next apply clears a killed run's
	// leftovers itself (no instance answers on the socket).
	m = l.apply(simpleRules)
	m.signal(syscall.SIGKILL)
	<-m.done
	m = l.apply(simpleRules)
	if !strings.Contains(m.stderrText(), "left behind") {
		t.Errorf("apply after kill -9 did not report clearing leftovers:\n%s", m.stderrText())
	}
	m.stop()
	if after := l.snapshot(); after != before {
		t.Errorf("after kill -9, apply and SIGTERM the router differs from before:\n--- before\n%s\n--- after\n%s", before, after)
	}
}

// TestBadInputChangesNothing: apply with a missing mirror device or a
// syntax error exits 2 with file:line:col, and the router is unchanged.
func TestBadInputChangesNothing(t *testing.T) {
	l := newLab(t)
	before := l.snapshot()
	for _, tc := range []struct {
		name, rules string
		msg         *regexp.Regexp
	}{
		{"missing device", "prerouting {\n    tcp dport 80 mirror to \"nosuch0\"\n}\n", regexp.MustCompile(`rules\.nft:2:\d+: .*nosuch0.*no such interface`)},
		{"syntax error", "prerouting {\n    tcp dport 99999 mirror to \"span0\"\n}\n", regexp.MustCompile(`rules\.nft:2:\d+: `)},
		{"unknown hook", "preroutin {\n    mirror to \"span0\"\n}\n", regexp.MustCompile(`rules\.nft:1:1: `)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := l.writeRules("rules.nft", tc.rules)
			out, err := l.try(l.router, nfmBin, "apply", "-socket", l.dir+"/bad.sock", "-state-dir", l.dir+"/state", path)
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 2 {
				t.Fatalf("apply: err %v, want exit status 2\n%s", err, out)
			}
			if !tc.msg.MatchString(out) || !strings.Contains(out, "^") {
				t.Errorf("apply printed %q, want a positioned error matching %s with a caret", out, tc.msg)
			}
			if after := l.snapshot(); after != before {
				t.Errorf("a failed apply changed the router:\n--- before\n%s\n--- after\n%s", before, after)
			}
		})
	}
}

// TestSIGHUPReload: a good new file is swapped in; a bad one is reported and
// the running rules stay.
func TestSIGHUPReload(t *testing.T) {
	l := newLab(t)
	m := l.apply(simpleRules)
	list := func() string { return l.in(l.router, "nft", "list", "table", "inet", "nfmirror") }
	if !strings.Contains(list(), "icmp type echo-request") {
		t.Fatalf("the first rules are not installed:\n%s", list())
	}
	l.writeRules(filepath.Base(m.rules), "postrouting {\n    oifname \"eth1\" udp dport 5353 mirror to \"span0\"\n}\n")
	m.signal(syscall.SIGHUP)
	waitFor(t, 5*time.Second, "the reloaded rules", func() bool { return strings.Contains(list(), "udp dport 5353") })
	if strings.Contains(list(), "icmp type echo-request") {
		t.Errorf("the old rules remain after a reload:\n%s", list())
	}
	good := list()
	l.writeRules(filepath.Base(m.rules), "postrouting {\n    udp dport 99999 mirror to \"span0\"\n}\n")
	m.signal(syscall.SIGHUP)
	waitFor(t, 5*time.Second, "the reload error in the log", func() bool { return strings.Contains(m.stderrText(), "99999") })
	if got := list(); got != good {
		t.Errorf("a bad reload changed the rules:\n--- before\n%s\n--- after\n%s", good, got)
	}
	// Still mirroring after both reloads.
	mon := l.mirrorCapture("udp port 5353")
	l.in(l.client, "bash", "-c", "for i in 1 2 3; do echo x > /dev/udp/198.18.2.2/5353; done")
	if n := len(mon.frames()); n != 3 {
		t.Errorf("after the reloads the monitor saw %d udp/5353 copies, want 3", n)
	}
	m.stop()
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", d, what)
}
