package integration

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The reliability group: what an operator, a script or a bad file does must
// not wedge nfmirror, crash it, or touch what is not its own; and while each
// fault happens, forwarding across the router loses nothing.

// forwardingPing pings the server from the client through the router over
// IPv6 (the tests' rules mirror IPv4), 20 per second, until the returned
// function is called; that function fails the test if any ping went
// unanswered.
func (l *lab) forwardingPing() (check func()) {
	l.t.Helper()
	var out bytes.Buffer
	cmd := l.start(l.client, &out, nil, "ping", "-6", "-n", "-i", "0.05", "-W", "1", "2001:db8:2::2")
	return func() {
		l.t.Helper()
		time.Sleep(1200 * time.Millisecond) // the last ping's answer
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		m := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`).FindStringSubmatch(out.String())
		if m == nil {
			l.t.Fatalf("no ping summary: %s", out.String())
		}
		if m[1] != m[2] || m[1] == "0" {
			l.t.Errorf("forwarding through the router lost packets during the fault: %s transmitted, %s received", m[1], m[2])
		}
	}
}

// exitCode runs the command in the router and returns its exit status and
// output.
func (l *lab) exitCode(args ...string) (int, string) {
	l.t.Helper()
	out, err := l.try(l.router, args...)
	if err == nil {
		return 0, out
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out
	}
	l.t.Fatalf("%v: %v\n%s", args, err, out)
	return -1, out
}

const echoRules = `prerouting {
    iifname "eth0" icmp type echo-request mirror to "span0"
}
`

// TestStatusNeverWedges: 500 connections that never read and 64 concurrent
// status clients while a reload and then a stop happen: every client gets
// its answer, the reload and the stop complete in time.
func TestStatusNeverWedges(t *testing.T) {
	l := newLab(t)
	m := l.apply(echoRules)
	check := l.forwardingPing()
	var idle []net.Conn
	for range 500 {
		c, err := net.Dial("unix", m.socket)
		if err != nil {
			t.Fatalf("idle connection: %v", err)
		}
		idle = append(idle, c)
	}
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	var wg sync.WaitGroup
	var failed sync.Map
	start := time.Now()
	for i := range 64 {
		wg.Go(func() {
			if out, err := run(nfmBin, "status", "-json", "-socket", m.socket); err != nil || !strings.Contains(out, `"rules_file"`) {
				failed.Store(i, fmt.Sprintf("%v: %s", err, out))
			}
		})
	}
	m.signal(syscall.SIGHUP)
	wg.Wait()
	took := time.Since(start)
	failed.Range(func(k, v any) bool { t.Errorf("status client %v: %v", k, v); return true })
	if took > 10*time.Second {
		t.Errorf("64 status clients took %v", took)
	}
	waitFor(t, 5*time.Second, "the reload", func() bool { return strings.Contains(m.stderrText(), `msg=reloaded`) })
	t.Logf("64 status clients beside 500 idle connections and a reload: %v", took.Round(time.Millisecond))
	check()
	stopAt := time.Now()
	m.stop()
	if d := time.Since(stopAt); d > 5*time.Second {
		t.Errorf("stopping took %v", d)
	}
}

// TestOthersNumbersUntouched: an admin's route in nfmirror's routing table,
// or rule at its priority and mark, makes apply refuse and stay away; a
// flush with no instance ever run removes nothing; the admin's rules and
// routes at other numbers stay through apply, SIGTERM and flush.
func TestOthersNumbersUntouched(t *testing.T) {
	l := newLab(t)
	for _, tc := range []struct{ name, add string }{
		{"route in table 28262", "route add 198.18.77.0/24 dev eth1 table 28262"},
		{"rule at priority and mark", "rule add pref 2826 fwmark 0x6e666d42 lookup 28300"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l.in(l.router, append([]string{"ip"}, strings.Fields(tc.add)...)...)
			before := l.snapshot()
			code, out := l.exitCode(nfmBin, "apply", "-socket", l.dir+"/refused.sock", "-state-dir", l.stateDir(), l.writeRules("echo.nft", echoRules))
			if code != 1 || !strings.Contains(out, "already in use") {
				t.Errorf("apply beside the admin's %s: exit %d, want 1 saying what is in use:\n%s", tc.name, code, out)
			}
			if after := l.snapshot(); after != before {
				t.Errorf("a refused apply changed the router:\n--- before\n%s\n--- after\n%s", before, after)
			}
			code, out = l.exitCode(nfmBin, "flush", "-state-dir", l.stateDir())
			if code != 0 || !strings.Contains(out, "nothing to flush") {
				t.Errorf("flush with no instance ever run: exit %d: %s", code, out)
			}
			if after := l.snapshot(); after != before {
				t.Errorf("flush changed the router:\n--- before\n%s\n--- after\n%s", before, after)
			}
			l.in(l.router, append([]string{"ip"}, strings.Fields(strings.Replace(tc.add, " add ", " del ", 1))...)...)
		})
	}
	// The admin's own at other numbers: untouched by apply and SIGTERM.
	l.in(l.router, "ip", "rule", "add", "pref", "2826", "fwmark", "0x1", "lookup", "28300")
	l.in(l.router, "ip", "route", "add", "198.18.77.0/24", "dev", "eth1", "table", "28300")
	before := l.snapshot()
	m := l.apply(echoRules)
	l.in(l.client, "ping", "-c", "2", "-i", "0.05", "198.18.2.2")
	m.stop()
	if after := l.snapshot(); after != before {
		t.Errorf("after apply and SIGTERM the router differs:\n--- before\n%s\n--- after\n%s", before, after)
	}
}

// TestUnfitDestinationsRefused: lo, and a port the host forwards through,
// are refused by apply and by apply -dry-run, with a positioned error, and
// nothing changes.
func TestUnfitDestinationsRefused(t *testing.T) {
	l := newLab(t)
	before := l.snapshot()
	check := l.forwardingPing()
	for _, tc := range []struct{ dest, want string }{
		{"lo", "the loopback device cannot be a mirror port"},
		{"eth1", "the host uses it"},
	} {
		rules := l.writeRules("unfit.nft", "prerouting {\n    icmp type echo-request mirror to \""+tc.dest+"\"\n}\n")
		for _, dry := range []bool{false, true} {
			args := []string{nfmBin, "apply", "-socket", l.dir + "/unfit.sock", "-state-dir", l.stateDir()}
			if dry {
				args = append(args, "-dry-run")
			}
			code, out := l.exitCode(append(args, rules)...)
			if code != 2 || !strings.Contains(out, "unfit.nft:2:") || !strings.Contains(out, tc.want) {
				t.Errorf("mirror to %q (dry run %v): exit %d, want 2 and a positioned %q:\n%s", tc.dest, dry, code, tc.want, out)
			}
		}
	}
	check()
	if after := l.snapshot(); after != before {
		t.Errorf("a refused destination changed the router:\n--- before\n%s\n--- after\n%s", before, after)
	}
}

// TestReloadsLoseNoCopy: 30 reloads 0.15 s apart while 100 pings a second
// cross the router: the monitor sees every echo request once, and status
// counts every one as matched and mirrored since start.
func TestReloadsLoseNoCopy(t *testing.T) {
	l := newLab(t)
	m := l.apply(echoRules)
	mon := l.mirrorCapture("icmp")
	var out bytes.Buffer
	ping := l.start(l.client, &out, nil, "ping", "-n", "-q", "-i", "0.01", "-c", "600", "-W", "1", "198.18.2.2")
	for range 30 {
		time.Sleep(150 * time.Millisecond)
		m.signal(syscall.SIGHUP)
	}
	ping.Wait()
	waitFor(t, 10*time.Second, "30 reloads", func() bool { return m.status().Reloads == 30 })
	m.settle()
	requests := len(ipPackets(mon.frames(), func(p l3) bool { return p.icmpTy == 8 }))
	st := m.status()
	if !strings.Contains(out.String(), "600 packets transmitted, 600 received") {
		t.Errorf("forwarding lost pings during the reloads: %s", out.String())
	}
	lost := st.Total.LostInKernel + st.Total.Dropped.QueueFull + st.Total.Dropped.SendError
	if requests != 600 || st.Total.Mirrored != 600 || lost != 0 {
		t.Errorf("30 reloads: the monitor saw %d of 600 echo requests; status since start: %+v", requests, st.Total)
	}
	// The kernel's rule counters go with the old rules at each swap: they
	// are read just before it, so a packet matched in that instant is
	// mirrored but not counted as matched.
	if st.Total.Matched > 600 || st.Total.Matched < 600-30 {
		t.Errorf("30 reloads: %d matched since start, want 570 to 600", st.Total.Matched)
	}
	if st.Reloads != 30 || st.FailedReloads != 0 || st.RuleStats[0].Mirrored != 600 {
		t.Errorf("status: %d reloads, %d failed, the rule mirrored %d since start", st.Reloads, st.FailedReloads, st.RuleStats[0].Mirrored)
	}
	t.Logf("30 reloads at 100 pps: %d of 600 copies at the monitor; since the last reload %+v", requests, st.SinceReload)
	m.stop()
}

// TestMTUChanges: a port whose MTU drops under a running instance carries
// the larger copies fragmented instead of failing, and the change is
// logged; a port starting with a 68-byte MTU (no IPv6 possible) starts and
// mirrors IPv4.
func TestMTUChanges(t *testing.T) {
	l := newLab(t)
	m := l.apply(echoRules)
	check := l.forwardingPing()
	mon := l.mirrorCapture("icmp or (ip[6:2] & 0x1fff) != 0")
	l.in(l.client, "ping", "-c", "3", "-i", "0.1", "-s", "1420", "198.18.2.2")
	m.settle()
	mon.frames()
	if len(mon.lens) != 3 || mon.lens[0] != 14+1448 {
		t.Fatalf("before the MTU change the monitor saw %v, want 3 whole 1462-byte copies", mon.lens)
	}
	l.in(l.router, "ip", "link", "set", "span0", "mtu", "1400")
	waitFor(t, 5*time.Second, "the MTU change in the log", func() bool {
		return strings.Contains(m.stderrText(), `msg="mirror device MTU changed" dest=span0 device=span0 mtu=1400 was=1500`)
	})
	mon = l.mirrorCapture("icmp or (ip[6:2] & 0x1fff) != 0")
	l.in(l.client, "ping", "-c", "3", "-i", "0.1", "-s", "1420", "198.18.2.2")
	m.settle()
	mon.frames()
	pieces := 0
	for _, n := range mon.lens {
		if n > 1414 {
			t.Errorf("a %d-byte frame after the MTU change", n)
		}
		pieces++
	}
	st := m.status()
	if pieces != 6 || st.Total.Dropped.SendError != 0 {
		t.Errorf("after the MTU change the monitor saw %d frames (want 3 copies in 2 fragments each), %d send errors", pieces, st.Total.Dropped.SendError)
	}
	check()
	m.stop()

	l.in(l.router, "ip", "link", "set", "span0", "mtu", "68")
	m = l.apply(echoRules)
	mon = l.mirrorCapture("icmp or (ip[6:2] & 0x1fff) != 0")
	l.in(l.client, "ping", "-c", "2", "-i", "0.1", "198.18.2.2")
	m.settle()
	if n := len(mon.frames()); n == 0 {
		t.Error("nothing mirrored onto a 68-byte MTU port")
	}
	if !strings.Contains(m.stderrText(), `family=ipv6`) {
		t.Errorf("IPv6 off on a 68-byte port was not logged:\n%s", m.stderrText())
	}
	m.stop()
}

// TestTwoInstancesSurviveEachOther: two instances with their own identities
// in one state directory; the first is killed and flushed while the second
// keeps mirroring untouched; the second cannot be flushed while it runs.
func TestTwoInstancesSurviveEachOther(t *testing.T) {
	l := newLab(t)
	l.must("ip", "link", "add", "span1", "netns", l.router, "type", "veth", "peer", "name", "mon1", "netns", l.monitor)
	l.in(l.monitor, "ip", "link", "set", "mon1", "up", "promisc", "on")
	before := l.snapshot()
	second := []string{"-table", "lab2", "-fwmark", "0x4c414200", "-rule-priority", "2900", "-route-table", "29000", "-nflog-base", "7000", "-queue-base", "7000"}
	a := l.apply(echoRules)
	b := l.applyAs("lab2", strings.ReplaceAll(echoRules, "span0", "span1"), second...)
	check := l.forwardingPing()
	a.signal(syscall.SIGKILL)
	<-a.done
	code, out := l.exitCode(nfmBin, "flush", "-state-dir", l.stateDir())
	if code != 0 || !strings.Contains(out, "removed") {
		t.Errorf("flush of the killed instance: exit %d: %s", code, out)
	}
	code, out = l.exitCode(append([]string{nfmBin, "flush", "-state-dir", l.stateDir()}, second[:2]...)...)
	if code != 1 || !strings.Contains(out, "is running") {
		t.Errorf("flush of the running instance: exit %d, want 1 saying it runs: %s", code, out)
	}
	mon := l.captureSnap(l.monitor, "mon1", "in", "icmp", mirrorSnaplen)
	l.in(l.client, "ping", "-c", "3", "-i", "0.1", "198.18.2.2")
	b.settle()
	if n := len(mon.frames()); n != 3 {
		t.Errorf("the second instance mirrored %d of 3 pings after the first was killed and flushed", n)
	}
	if st := b.status(); st.Table != "lab2" || st.Total.Mirrored < 3 {
		t.Errorf("second instance status: table %s, %d mirrored", st.Table, st.Total.Mirrored)
	}
	check()
	b.stop()
	if after := l.snapshot(); !strings.Contains(after, "span0") || after != before {
		t.Errorf("after both, the router differs:\n--- before\n%s\n--- after\n%s", before, after)
	}
}

// TestBadFilesAndPaths: a FIFO as the rules file is refused at once, at
// start and at a reload (which keeps the running rules, and a stop then
// still cleans up); a control socket path that names a file, or a state
// directory that is a symbolic link, is refused and the file stays; status
// as another user says permission denied; a port without carrier counts
// its copies as errors, not as sent.
func TestBadFilesAndPaths(t *testing.T) {
	l := newLab(t)
	before := l.snapshot()
	fifo := filepath.Join(l.dir, "rules.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, out := l.exitCode(nfmBin, "apply", "-socket", l.dir+"/f.sock", "-state-dir", l.stateDir(), fifo)
	if code != 2 || !strings.Contains(out, "not a regular file") || time.Since(start) > 5*time.Second {
		t.Errorf("apply of a FIFO: exit %d after %v: %s", code, time.Since(start), out)
	}
	precious := filepath.Join(l.dir, "precious")
	os.WriteFile(precious, []byte("keep me"), 0o644)
	code, out = l.exitCode(nfmBin, "apply", "-socket", precious, "-state-dir", l.stateDir(), l.writeRules("echo.nft", echoRules))
	if b, _ := os.ReadFile(precious); code != 1 || string(b) != "keep me" || !strings.Contains(out, "not a socket") {
		t.Errorf("-socket naming a file: exit %d, file now %q: %s", code, b, out)
	}
	os.Mkdir(filepath.Join(l.dir, "real"), 0o700)
	os.Symlink(filepath.Join(l.dir, "real"), filepath.Join(l.dir, "linked"))
	code, out = l.exitCode(nfmBin, "apply", "-socket", l.dir+"/s.sock", "-state-dir", filepath.Join(l.dir, "linked"), l.writeRules("echo.nft", echoRules))
	if code != 1 || !strings.Contains(out, "symbolic link") {
		t.Errorf("a symlinked state dir: exit %d: %s", code, out)
	}
	if after := l.snapshot(); after != before {
		t.Errorf("refused starts changed the router:\n--- before\n%s\n--- after\n%s", before, after)
	}

	m := l.apply(echoRules)
	check := l.forwardingPing()
	os.Remove(m.rules)
	if err := syscall.Mkfifo(m.rules, 0o600); err != nil {
		t.Fatal(err)
	}
	m.signal(syscall.SIGHUP)
	waitFor(t, 5*time.Second, "the refused reload", func() bool { return m.status().FailedReloads == 1 })
	if st := m.status(); len(st.RuleStats) != 1 || !strings.Contains(m.stderrText(), "not a regular file") {
		t.Errorf("after a FIFO reload: %d rules running; log:\n%s", len(st.RuleStats), m.stderrText())
	}
	if out, err := l.try(l.router, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", nfmBin, "status", "-socket", m.socket); err == nil || !strings.Contains(out, "permission denied") {
		t.Errorf("status as nobody: %v: %s", err, out)
	}
	// No carrier: the monitor's end goes down.
	l.in(l.monitor, "ip", "link", "set", "mon0", "down")
	waitFor(t, 5*time.Second, "the carrier loss in the log", func() bool { return strings.Contains(m.stderrText(), "carrier=false") })
	l.in(l.client, "ping", "-c", "3", "-i", "0.1", "198.18.2.2")
	m.settle()
	st := m.status()
	if d := st.Destinations[0]; d.Writer.NoCarrier != 3 || d.Packets != 0 {
		t.Errorf("without carrier: %d copies counted as no carrier, %d as sent; want 3 and 0", d.Writer.NoCarrier, d.Packets)
	}
	check()
	m.stop()
	l.in(l.monitor, "ip", "link", "set", "mon0", "up")
	waitFor(t, 5*time.Second, "the carrier back", func() bool {
		return !strings.Contains(l.in(l.router, "ip", "link", "show", "span0"), "NO-CARRIER")
	})
	if after := l.snapshot(); after != before {
		t.Errorf("after the stop the router differs:\n--- before\n%s\n--- after\n%s", before, after)
	}
}

// TestBombsRefusedAtCheckAndReload: a file of 1.5 M nested braces and an
// include fan-out (16 files, each including the next three times) are
// refused within a few seconds by check and by a reload, whose old rules
// keep mirroring.
func TestBombsRefusedAtCheckAndReload(t *testing.T) {
	l := newLab(t)
	deep := l.writeRules("deep.nft", "prerouting {\n    ip saddr "+strings.Repeat("{", 1_500_000)+"198.18.0.1"+strings.Repeat("}", 1_500_000)+" mirror to \"span0\"\n}\n")
	for i := range 16 {
		body := echoRules
		if i < 15 {
			body = strings.Repeat(fmt.Sprintf("include \"fan%d.nft\"\n", i+1), 3)
		}
		l.writeRules(fmt.Sprintf("fan%d.nft", i), body)
	}
	fan := filepath.Join(l.dir, "fan0.nft")
	for _, tc := range []struct{ file, want string }{{deep, "sets nested more than 32 deep"}, {fan, "more than 256 includes in all"}} {
		start := time.Now()
		code, out := l.exitCode(nfmBin, "check", tc.file)
		if took := time.Since(start); code != 2 || !strings.Contains(out, tc.want) || took > 10*time.Second {
			t.Errorf("check %s: exit %d after %v, want 2 saying %q:\n%.300s", filepath.Base(tc.file), code, took, tc.want, out)
		}
	}
	m := l.apply(echoRules)
	check := l.forwardingPing()
	for i, src := range []string{deep, fan} {
		b, _ := os.ReadFile(src)
		os.WriteFile(m.rules, b, 0o644)
		m.signal(syscall.SIGHUP)
		waitFor(t, 15*time.Second, "the refused reload", func() bool { return m.status().FailedReloads == i+1 })
	}
	mon := l.mirrorCapture("icmp")
	l.in(l.client, "ping", "-c", "3", "-i", "0.1", "198.18.2.2")
	m.settle()
	if n := len(ipPackets(mon.frames(), func(p l3) bool { return p.icmpTy == 8 })); n != 3 {
		t.Errorf("after two refused reloads the old rules mirrored %d of 3 echo requests", n)
	}
	check()
	m.stop()
}

// TestSharedPort: a device the host forwards through is refused as a mirror
// port unless the rule says shared, and so is one the rules themselves
// select traffic on; shared, copies arrive on it while its ARP stays on and
// the host's traffic through it keeps flowing.
func TestSharedPort(t *testing.T) {
	l := newLab(t)
	named := l.writeRules("named.nft", "prerouting {\n    iifname \"span0\" icmp type echo-request mirror to \"span0\"\n}\n")
	if code, out := l.exitCode(nfmBin, "apply", "-dry-run", named); code != 2 || !strings.Contains(out, `the rules select the host's traffic on it ("span0" at`) {
		t.Errorf("a destination the rules select on: exit %d:\n%s", code, out)
	}
	before := l.in(l.router, "ip", "link", "show", "eth1")
	check := l.forwardingPing()
	m := l.apply("prerouting {\n    iifname \"eth0\" icmp type echo-request mirror to \"eth1\" shared\n}\n")
	ref := l.capture(l.server, "s0", "in", "icmp[icmptype] == 8")
	l.in(l.client, "ping", "-c", "3", "-i", "0.1", "198.18.2.2")
	m.settle()
	// Each echo request reaches the server twice: forwarded, and as the
	// copy (addressed to eth1's own MAC, so s0 sees it only as it passes).
	if n := len(ref.frames()); n != 6 {
		t.Errorf("the server's side of eth1 saw %d echo requests, want 3 forwarded and 3 copies", n)
	}
	if st := m.status(); st.Total.Mirrored != 3 || st.Total.Dropped.SendError != 0 {
		t.Errorf("shared eth1: %+v", st.Total)
	}
	if now := l.in(l.router, "ip", "link", "show", "eth1"); strings.Contains(now, "NOARP") || now != before {
		t.Errorf("a shared port's flags changed:\n%s\n%s", before, now)
	}
	check()
	m.stop()
}
