package integration

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Running it like a service: metrics, least privilege, readiness.

// TestMetricsMatchStatus scrapes /metrics during traffic and compares every
// rule's and destination's counters with status --json.
func TestMetricsMatchStatus(t *testing.T) {
	l := newLab(t)
	m := l.apply(simpleRules, "-metrics", "127.0.0.1:9772")
	l.in(l.client, "ip", "neigh", "flush", "dev", "c0")
	l.in(l.client, "ping", "-c", "5", "-i", "0.05", "198.18.2.2")
	l.in(l.client, "ping", "-6", "-c", "3", "-i", "0.05", "2001:db8:2::2")
	m.settle()
	time.Sleep(300 * time.Millisecond) // both read one status document
	st := m.status()
	body := l.in(l.router, "curl", "-sf", "http://127.0.0.1:9772/metrics")
	metric := func(name string, labels ...string) float64 {
		t.Helper()
		labels = slices.Sorted(slices.Values(labels)) // the exposition sorts them
		re := name + `\{` + strings.Join(labels, ",") + `\} (\S+)`
		if len(labels) == 0 {
			re = name + ` (\S+)`
		}
		mm := regexp.MustCompile(`(?m)^` + re + `$`).FindStringSubmatch(body)
		if mm == nil {
			t.Errorf("/metrics lacks %s%v", name, labels)
			return -1
		}
		v, _ := strconv.ParseFloat(mm[1], 64)
		return v
	}
	for _, r := range st.RuleStats {
		rule := regexp.QuoteMeta(r.Pos[:strings.LastIndexByte(r.Pos, ':')])
		hook := r.Hook
		if r.Device != "" {
			hook += " " + r.Device
		}
		labels := []string{`hook="` + regexp.QuoteMeta(hook) + `"`, `rule="` + rule + `"`}
		if got := metric("nfmirror_mirrored_packets_total", labels...); got != float64(r.Mirrored) || got == 0 {
			t.Errorf("rule %s: nfmirror_mirrored_packets_total %v, status MIRRORED %d", r.Pos, got, r.Mirrored)
		}
		if got := metric("nfmirror_matched_packets_total", labels...); got != float64(r.Matched) {
			t.Errorf("rule %s: nfmirror_matched_packets_total %v, status MATCHED %d", r.Pos, got, r.Matched)
		}
		lostLabels := append(labels, `reason="queue_full"`)
		if got := metric("nfmirror_lost_packets_total", lostLabels...); got != float64(r.Dropped.QueueFull) {
			t.Errorf("rule %s: queue_full %v, status %d", r.Pos, got, r.Dropped.QueueFull)
		}
	}
	for _, d := range st.Destinations {
		if got := metric("nfmirror_destination_packets_total", `destination="`+d.Name+`"`); got != float64(d.Packets) {
			t.Errorf("destination %s: %v packets in metrics, %d in status", d.Name, got, d.Packets)
		}
	}
	for _, name := range []string{"nfmirror_reloads_total", "nfmirror_failed_reloads_total", "nfmirror_up", "go_goroutines", "process_resident_memory_bytes"} {
		metric(name)
	}
	m.stop()
}

// TestUnprivilegedTwoCapabilities runs apply as nobody with CAP_NET_ADMIN
// and CAP_NET_RAW only, and sees copies arrive; with either one dropped it
// exits 1 saying which one it lacks, changing nothing.
func TestUnprivilegedTwoCapabilities(t *testing.T) {
	l := newLab(t)
	// nobody must reach the binary, the rules and its state directory.
	for _, d := range []string{filepath.Dir(nfmBin), l.dir, filepath.Dir(l.dir)} {
		os.Chmod(d, 0o755)
	}
	state := filepath.Join(l.dir, "nobody-state")
	os.Mkdir(state, 0o700)
	os.Chown(state, 65534, 65534)
	rules := l.writeRules("echo.nft", echoRules)
	setpriv := func(caps string) []string {
		return []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
			"--inh-caps=-all," + caps, "--ambient-caps=-all," + caps, "--bounding-set=-all," + caps}
	}
	apply := []string{nfmBin, "apply", "-state-dir", state, rules}
	before := l.snapshot()
	for _, caps := range []string{"+net_admin", "+net_raw"} {
		out, err := l.try(l.router, append(setpriv(caps), apply...)...)
		lacks := map[string]string{"+net_admin": "CAP_NET_RAW", "+net_raw": "CAP_NET_ADMIN"}[caps]
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(out, "lacks "+lacks) {
			t.Errorf("with %s only: %v, want exit 1 saying it lacks %s:\n%s", caps, err, lacks, out)
		}
	}
	if after := l.snapshot(); after != before {
		t.Errorf("a refused start changed the router:\n--- before\n%s\n--- after\n%s", before, after)
	}
	var stderr strings.Builder
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.router}, append(setpriv("+net_admin,+net_raw"), apply...)...)...)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sock := filepath.Join(state, "nfmirror.sock")
	waitFor(t, 10*time.Second, "the unprivileged instance to serve", func() bool {
		_, err := run(nfmBin, "status", "-socket", sock)
		return err == nil
	})
	mon := l.mirrorCapture("icmp")
	l.in(l.client, "ping", "-c", "3", "-i", "0.1", "198.18.2.2")
	settle(t, sock)
	if n := len(ipPackets(mon.frames(), func(p l3) bool { return p.icmpTy == 8 })); n != 3 {
		t.Errorf("as nobody with two capabilities: %d of 3 copies arrived\n%s", n, stderr.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("stop: %v\n%s", err, stderr.String())
	}
	if after := l.snapshot(); after != before {
		t.Errorf("after the unprivileged run the router differs:\n--- before\n%s\n--- after\n%s", before, after)
	}
}

// TestSystemdNotify listens on a NOTIFY_SOCKET: READY=1 comes only once the
// rules are in the kernel, RELOADING=1 and READY=1 around a SIGHUP, and
// STOPPING=1 at shutdown.
func TestSystemdNotify(t *testing.T) {
	l := newLab(t)
	path := filepath.Join(l.dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	next := func(what string) string {
		t.Helper()
		select {
		case m := <-msgs:
			return m
		case <-time.After(10 * time.Second):
			t.Fatalf("no notification while waiting for %s", what)
			return ""
		}
	}
	l.applyEnv = []string{"NOTIFY_SOCKET=" + path}
	m := l.apply(simpleRules)
	ready := next("READY")
	// When READY=1 was sent, the rules were already installed.
	if !strings.HasPrefix(ready, "READY=1\n") || !strings.Contains(ready, "STATUS=mirroring 3 rules to span0") {
		t.Errorf("first notification %q, want READY=1 with a status", ready)
	}
	if out := l.in(l.router, "nft", "list", "table", "inet", "nfmirror"); !strings.Contains(out, "log prefix") {
		t.Errorf("READY before the rules were in the kernel:\n%s", out)
	}
	m.signal(syscall.SIGHUP)
	if r := next("RELOADING"); !regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=\d+\n$`).MatchString(r) {
		t.Errorf("at SIGHUP: %q, want RELOADING=1 with MONOTONIC_USEC", r)
	}
	if r := next("READY after the reload"); !strings.HasPrefix(r, "READY=1\n") || !strings.Contains(r, "1 reloads") {
		t.Errorf("after the reload: %q, want READY=1", r)
	}
	m.stop()
	if r := next("STOPPING"); r != "STOPPING=1\n" {
		t.Errorf("at SIGTERM: %q, want STOPPING=1", r)
	}
}

// TestInstallLayout: make install DESTDIR=... lays out the binary, both man
// pages, the unit and the example rules (keeping an existing one); the unit
// passes systemd-analyze verify; both pages render with man -l and match
// their Markdown sources.
func TestInstallLayout(t *testing.T) {
	requireRoot(t)
	dest := t.TempDir()
	make := func() string {
		t.Helper()
		out, err := exec.Command("make", "-C", "..", "install", "DESTDIR="+dest).CombinedOutput()
		if err != nil {
			t.Fatalf("make install: %v\n%s", err, out)
		}
		return string(out)
	}
	make()
	files := map[string]os.FileMode{
		"usr/sbin/nfmirror":                   0o755,
		"usr/share/man/man8/nfmirror.8":       0o644,
		"usr/share/man/man5/nfmirror-rules.5": 0o644,
		"lib/systemd/system/nfmirror.service": 0o644,
		"etc/nfmirror/rules.nft":              0o644,
	}
	for f, mode := range files {
		fi, err := os.Stat(filepath.Join(dest, f))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, want mode %o", f, err, mode)
		}
	}
	mine := filepath.Join(dest, "etc/nfmirror/rules.nft")
	os.WriteFile(mine, []byte("# the operator's own\n"), 0o644)
	if out := make(); !strings.Contains(out, "keeping") {
		t.Errorf("second install did not say it keeps rules.nft: %s", out)
	}
	if b, _ := os.ReadFile(mine); string(b) != "# the operator's own\n" {
		t.Errorf("make install overwrote /etc/nfmirror/rules.nft")
	}
	// The unit, with ExecStart pointing at the installed binary.
	unit, _ := os.ReadFile(filepath.Join(dest, "lib/systemd/system/nfmirror.service"))
	test := filepath.Join(t.TempDir(), "nfmirror.service")
	os.WriteFile(test, []byte(strings.ReplaceAll(string(unit), "/usr/sbin/nfmirror", filepath.Join(dest, "usr/sbin/nfmirror"))), 0o644)
	cmd := exec.Command("systemd-analyze", "verify", test)
	cmd.Env = append(os.Environ(), "MANPATH="+filepath.Join(dest, "usr/share/man"))
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, want := range []string{"Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "After=network-online.target", "RuntimeDirectory=nfmirror",
		"AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW", "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW", "NoNewPrivileges=yes",
		"ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "RestrictAddressFamilies=AF_NETLINK AF_PACKET AF_INET AF_INET6 AF_UNIX",
		"SystemCallFilter=@system-service", "DynamicUser=yes"} {
		if !strings.Contains(string(unit), "\n"+want+"\n") {
			t.Errorf("the unit lacks %q", want)
		}
	}
	for page, heads := range map[string][]string{
		"usr/share/man/man8/nfmirror.8":       {"NAME", "SYNOPSIS", "COMMANDS", "OPTIONS", "SIGNALS", "EXIT STATUS", "FILES", "EXAMPLES"},
		"usr/share/man/man5/nfmirror-rules.5": {"NAME", "BLOCKS", "MIRROR STATEMENTS", "MATCHES", "ERRORS"},
	} {
		cmd := exec.Command("man", "-l", filepath.Join(dest, page))
		cmd.Env = append(os.Environ(), "MANPAGER=cat", "MANWIDTH=80")
		out, err := cmd.Output()
		if err != nil {
			t.Errorf("man -l %s: %v", page, err)
			continue
		}
		for _, h := range heads {
			if !regexp.MustCompile(`(?m)^` + h + `$`).Match(out) {
				t.Errorf("man -l %s lacks the section %s", page, h)
			}
		}
	}
	for _, page := range []string{"nfmirror.8", "nfmirror-rules.5"} {
		got, err := exec.Command("go-md2man", "-in", "../docs/"+page+".md").Output()
		want, _ := os.ReadFile("../man/" + page)
		if err != nil || string(got) != string(want) {
			t.Errorf("man/%s is not what docs/%s.md makes (%v): run make man", page, page, err)
		}
	}
}
