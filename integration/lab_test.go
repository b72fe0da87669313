package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nfmirror/nfmirror/internal/service"
)

// nfmBin is the nfmirror built once for the whole package by TestMain.
var nfmBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		return m.Run() // every test skips (or fails under NFMIRROR_REQUIRE_ROOT) in requireRoot
	}
	dir, err := os.MkdirTemp("", "nfmirror-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	nfmBin = filepath.Join(dir, "nfmirror")
	build := exec.Command("go", "build", "-o", nfmBin, "../cmd/nfmirror")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build nfmirror:", err)
		return 1
	}
	return m.Run()
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("NFMIRROR_REQUIRE_ROOT") == "1" {
		t.Fatal("this test needs root and network namespaces, and NFMIRROR_REQUIRE_ROOT=1 forbids skipping")
	}
	t.Skip("needs root and network namespaces (run as root, e.g. sudo make test)")
}

// lab is one throwaway topology:
//
//	client c0 ── eth0 router eth1 ── s0 server
//	                   span0
//	                     │
//	                   mon0 monitor (promiscuous)
//
// client 198.18.1.2/24 2001:db8:1::2/64; router 198.18.1.1 / 198.18.2.1,
// 2001:db8:1::1 / 2001:db8:2::1; server 198.18.2.2 2001:db8:2::2.
type lab struct {
	t                               *testing.T
	client, router, server, monitor string
	dir                             string
	mu                              sync.Mutex
	procs                           []*exec.Cmd
	// applyEnv is added to the environment of the nfmirror apply that
	// applyAs starts (e.g. NOTIFY_SOCKET).
	applyEnv []string
	// collector is the remote collector's namespace, once addCollector
	// made it.
	collector string
}

func newLab(t *testing.T) *lab {
	t.Helper()
	requireRoot(t)
	var b [4]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	l := &lab{
		t:       t,
		client:  "nfm-c-" + id,
		router:  "nfm-r-" + id,
		server:  "nfm-s-" + id,
		monitor: "nfm-m-" + id,
		dir:     t.TempDir(),
	}
	t.Cleanup(l.close)
	for _, ns := range []string{l.client, l.router, l.server, l.monitor} {
		l.must("ip", "netns", "add", ns)
		l.in(ns, "ip", "link", "set", "lo", "up")
		// No duplicate address detection: link-local addresses are final at
		// once, so before/after snapshots do not race with DAD.
		// No router solicitations either: they repeat for seconds after a
		// link comes up and race with the start and end of every capture.
		l.in(ns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0",
			"net.ipv6.conf.default.router_solicitations=0", "net.ipv6.conf.all.router_solicitations=0")
	}
	l.must("ip", "link", "add", "c0", "netns", l.client, "type", "veth", "peer", "name", "eth0", "netns", l.router)
	l.must("ip", "link", "add", "s0", "netns", l.server, "type", "veth", "peer", "name", "eth1", "netns", l.router)
	l.must("ip", "link", "add", "mon0", "netns", l.monitor, "type", "veth", "peer", "name", "span0", "netns", l.router)
	addr := func(ns, dev string, addrs ...string) {
		for _, a := range addrs {
			args := []string{"ip", "addr", "add", a, "dev", dev}
			if strings.Contains(a, ":") {
				args = append(args, "nodad")
			}
			l.in(ns, args...)
		}
		l.in(ns, "ip", "link", "set", dev, "up")
	}
	addr(l.client, "c0", "198.18.1.2/24", "2001:db8:1::2/64")
	addr(l.router, "eth0", "198.18.1.1/24", "2001:db8:1::1/64")
	addr(l.router, "eth1", "198.18.2.1/24", "2001:db8:2::1/64")
	// The mirror port keeps the kernel's default offloads (a veth: TSO and
	// checksum offload on): nfmirror must put wire frames on it anyway.
	addr(l.router, "span0")
	addr(l.server, "s0", "198.18.2.2/24", "2001:db8:2::2/64")
	addr(l.monitor, "mon0")
	l.in(l.monitor, "ip", "link", "set", "mon0", "promisc", "on")
	// The monitor is a passive analyzer: it must never answer what it sees.
	l.in(l.monitor, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv4.conf.all.arp_ignore=8")
	l.in(l.client, "ip", "route", "add", "default", "via", "198.18.1.1")
	l.in(l.client, "ip", "-6", "route", "add", "default", "via", "2001:db8:1::1")
	l.in(l.server, "ip", "route", "add", "default", "via", "198.18.2.1")
	l.in(l.server, "ip", "-6", "route", "add", "default", "via", "2001:db8:2::1")
	l.in(l.router, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	// Warm the neighbour caches so that tests see only their own traffic.
	for _, dst := range []string{"198.18.2.2", "2001:db8:2::2"} {
		waitFor(t, 10*time.Second, "the lab to forward to "+dst, func() bool {
			_, err := l.try(l.client, "ping", "-c1", "-W1", dst)
			return err == nil
		})
	}
	return l
}

func (l *lab) close() {
	if dir := os.Getenv("NFMIRROR_KEEP_CAPTURES"); dir != "" && l.t.Failed() {
		// Keep the captures of a failed test for a closer look.
		files, _ := filepath.Glob(filepath.Join(l.dir, "*.pcap"))
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil {
				os.WriteFile(filepath.Join(dir, l.t.Name()+"-"+filepath.Base(f)), b, 0o644)
			}
		}
	}
	l.mu.Lock()
	procs := l.procs
	l.mu.Unlock()
	for _, p := range procs {
		if p.Process != nil && p.ProcessState == nil {
			p.Process.Signal(syscall.SIGCONT)
			p.Process.Kill()
			p.Wait()
		}
	}
	for _, ns := range []string{l.client, l.router, l.server, l.monitor, l.collector} {
		if ns != "" {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	}
}

// addCollector adds a remote collector behind the server, reached through
// the router's uplink eth1 like the production traffic:
//
//	router eth1 ── s0 server s1 ── k0 collector 198.18.3.9 2001:db8:3::9
//
// The collector answers nothing it receives but ARP and neighbour
// discovery: a tunnel it has no decapsulator for is dropped silently.
func (l *lab) addCollector() {
	l.t.Helper()
	l.collector = strings.Replace(l.server, "nfm-s-", "nfm-k-", 1)
	l.must("ip", "netns", "add", l.collector)
	l.in(l.collector, "ip", "link", "set", "lo", "up")
	l.in(l.collector, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0")
	l.must("ip", "link", "add", "k0", "netns", l.collector, "type", "veth", "peer", "name", "s1", "netns", l.server)
	for _, a := range []string{"198.18.3.1/24", "2001:db8:3::1/64"} {
		l.in(l.server, "ip", "addr", "add", a, "dev", "s1")
	}
	l.in(l.server, "ip", "link", "set", "s1", "up")
	l.in(l.server, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	l.in(l.collector, "ip", "addr", "add", "198.18.3.9/24", "dev", "k0")
	l.in(l.collector, "ip", "addr", "add", "2001:db8:3::9/64", "dev", "k0", "nodad")
	l.in(l.collector, "ip", "link", "set", "k0", "up")
	l.in(l.collector, "ip", "route", "add", "default", "via", "198.18.3.1")
	l.in(l.collector, "ip", "-6", "route", "add", "default", "via", "2001:db8:3::1")
	l.in(l.router, "ip", "route", "add", "198.18.3.0/24", "via", "198.18.2.2")
	l.in(l.router, "ip", "-6", "route", "add", "2001:db8:3::/64", "via", "2001:db8:2::2")
	l.in(l.collector, "sh", "-c", `nft -f - <<'EOF'
table inet collector {
	chain input {
		type filter hook input priority filter; policy accept;
		meta l4proto gre drop
	}
}
EOF`)
	waitFor(l.t, 10*time.Second, "the router to reach the collector", func() bool {
		_, err := l.try(l.router, "ping", "-c1", "-W1", "198.18.3.9")
		_, err6 := l.try(l.router, "ping", "-6", "-c1", "-W1", "2001:db8:3::9")
		return err == nil && err6 == nil
	})
}

// collectorVXLAN adds the collector's own kernel vxlan decapsulators: vx4
// for VNI 42 over IPv4 (port 4789), vx6 for VNI 43 over IPv6 (port 4790).
// The inner frames come out of them as a local port would carry them.
func (l *lab) collectorVXLAN() {
	l.t.Helper()
	l.in(l.collector, "ip", "link", "add", "vx4", "type", "vxlan", "id", "42", "dstport", "4789", "local", "198.18.3.9", "dev", "k0", "nolearning")
	l.in(l.collector, "ip", "link", "add", "vx6", "type", "vxlan", "id", "43", "dstport", "4790", "local", "2001:db8:3::9", "dev", "k0", "nolearning", "udp6zerocsumrx")
	for _, d := range []string{"vx4", "vx6"} {
		l.in(l.collector, "ip", "link", "set", d, "addrgenmode", "none")
		l.in(l.collector, "ip", "link", "set", d, "up", "promisc", "on")
	}
}

// run runs a command and returns its combined output and error.
func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

func (l *lab) must(name string, args ...string) string {
	l.t.Helper()
	out, err := run(name, args...)
	if err != nil {
		l.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// in runs a command in namespace ns and fails the test if it fails.
func (l *lab) in(ns string, args ...string) string {
	l.t.Helper()
	return l.must("ip", append([]string{"netns", "exec", ns}, args...)...)
}

// try runs a command in namespace ns and returns its output and error.
func (l *lab) try(ns string, args ...string) (string, error) {
	return run("ip", append([]string{"netns", "exec", ns}, args...)...)
}

// start starts a long-running command in namespace ns; it is killed at cleanup.
func (l *lab) start(ns string, stdout, stderr *bytes.Buffer, args ...string) *exec.Cmd {
	l.t.Helper()
	return l.startEnv(ns, nil, stdout, stderr, args...)
}

// startEnv is start with env added to the command's environment.
func (l *lab) startEnv(ns string, env []string, stdout, stderr *bytes.Buffer, args ...string) *exec.Cmd {
	l.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	if stdout != nil {
		cmd.Stdout = &lockedWriter{w: stdout}
	}
	if stderr != nil {
		cmd.Stderr = &lockedWriter{w: stderr}
	}
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("start %v: %v", args, err)
	}
	l.mu.Lock()
	l.procs = append(l.procs, cmd)
	l.mu.Unlock()
	return cmd
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// nfmirror is one running `nfmirror apply` in the router.
type nfmirror struct {
	l      *lab
	cmd    *exec.Cmd
	rules  string
	socket string
	stderr *bytes.Buffer
	done   chan struct{}
}

// writeRules writes a rules file into the lab's directory.
func (l *lab) writeRules(name, text string) string {
	l.t.Helper()
	path := filepath.Join(l.dir, name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		l.t.Fatal(err)
	}
	return path
}

// apply starts nfmirror apply with the rules text in the router and waits
// until it serves its control socket.
func (l *lab) apply(rules string, extra ...string) *nfmirror {
	l.t.Helper()
	return l.applyAs("nfmirror", rules, extra...)
}

// applyAs is apply for an instance whose rules file and control socket are
// named after name; every instance shares the lab's state directory.
func (l *lab) applyAs(name, rules string, extra ...string) *nfmirror {
	l.t.Helper()
	m := &nfmirror{
		l:      l,
		rules:  l.writeRules(name+".nft", rules),
		socket: filepath.Join(l.dir, name+".sock"),
		stderr: &bytes.Buffer{},
		done:   make(chan struct{}),
	}
	args := append([]string{nfmBin, "apply", "-socket", m.socket, "-state-dir", l.stateDir(), "-log-level", "debug"}, extra...)
	m.cmd = l.startEnv(l.router, l.applyEnv, nil, m.stderr, append(args, m.rules)...)
	go func() { m.cmd.Wait(); close(m.done) }()
	l.t.Cleanup(func() {
		if l.t.Failed() {
			l.t.Logf("nfmirror apply (%s) log:\n%s", name, m.stderrText())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := run(nfmBin, "status", "-socket", m.socket); err == nil {
			return m
		}
		select {
		case <-m.done:
			l.t.Fatalf("nfmirror apply exited early: %v\n%s", m.cmd.ProcessState, m.stderrText())
		case <-time.After(50 * time.Millisecond):
		}
	}
	l.t.Fatalf("nfmirror apply did not start serving within 10s\n%s", m.stderrText())
	return nil
}

// stateDir is the state directory every instance of the lab uses.
func (l *lab) stateDir() string { return filepath.Join(l.dir, "state") }

func (m *nfmirror) stderrText() string {
	w := m.cmd.Stderr.(*lockedWriter)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.String()
}

// signal sends sig to nfmirror (through ip netns exec, which execs it).
func (m *nfmirror) signal(sig syscall.Signal) {
	m.l.t.Helper()
	if err := m.cmd.Process.Signal(sig); err != nil {
		m.l.t.Fatalf("signal %v: %v", sig, err)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (m *nfmirror) stop() {
	m.l.t.Helper()
	m.signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(15 * time.Second):
		m.l.t.Fatalf("nfmirror did not exit within 15s of SIGTERM\n%s", m.stderrText())
	}
	if code := m.cmd.ProcessState.ExitCode(); code != 0 {
		m.l.t.Fatalf("nfmirror exited with %d after SIGTERM, want 0\n%s", code, m.stderrText())
	}
}

// settle waits until nfmirror has sent everything it received: its
// destinations' packet count stops moving (at most 10 s).
func (m *nfmirror) settle() {
	m.l.t.Helper()
	settle(m.l.t, m.socket)
}

// settle waits until the instance serving socket has sent everything it
// received: its destinations' packet counts stop moving (at most 10 s).
func settle(t *testing.T, socket string) {
	t.Helper()
	sent := func() uint64 {
		var n uint64
		for _, d := range queryStatus(t, socket).Destinations {
			n += d.Packets + d.Errors
		}
		return n
	}
	prev := sent()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		cur := sent()
		if cur == prev {
			return
		}
		prev = cur
	}
}

// status returns `nfmirror status --json` decoded.
func (m *nfmirror) status() service.Status {
	m.l.t.Helper()
	return queryStatus(m.l.t, m.socket)
}

// queryStatus returns `nfmirror status --json -socket socket` decoded.
func queryStatus(t *testing.T, socket string) service.Status {
	t.Helper()
	out, err := run(nfmBin, "status", "-json", "-socket", socket)
	if err != nil {
		t.Fatalf("nfmirror status: %v\n%s", err, out)
	}
	var st service.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("decode status: %v\n%s", err, out)
	}
	return st
}

// listening waits until something in namespace ns listens on TCP port.
func (l *lab) listening(ns string, port int) {
	l.t.Helper()
	waitFor(l.t, 5*time.Second, fmt.Sprintf("a listener on port %d", port), func() bool {
		out, _ := l.try(ns, "ss", "-Htln", fmt.Sprintf("sport = :%d", port))
		return strings.Contains(out, fmt.Sprintf(":%d", port))
	})
}

func writeFile(path string, data []byte) error { return os.WriteFile(path, data, 0o644) }
