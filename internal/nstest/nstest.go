package nstest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// RequireRoot skips the test when not running as root, or fails it when the
// environment variable NFMIRROR_REQUIRE_ROOT=1 says skipping is not allowed
// (CI sets it so that a suite cannot pass by skipping).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("NFMIRROR_REQUIRE_ROOT") == "1" {
		t.Fatal("test needs root (NFMIRROR_REQUIRE_ROOT=1 forbids skipping)")
	}
	t.Skip("test needs root to create network namespaces")
}

// NS is a network namespace created for one test.
type NS struct {
	// Name is the namespace's name under /run/netns, usable with "ip netns exec".
	Name string
	f    *os.File
	h    *netlink.Handle // opened by Handle, closed with the namespace
}

// New creates a namespace with loopback up, and the links named in links
// (see AddLink). It skips the test when not root (see RequireRoot).
func New(t testing.TB, links ...string) *NS {
	t.Helper()
	RequireRoot(t)
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random namespace name: %v", err)
	}
	ns := &NS{Name: "nfm-" + hex.EncodeToString(b)}
	if out, err := exec.Command("ip", "netns", "add", ns.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns.Name, err, out)
	}
	t.Cleanup(func() {
		if ns.h != nil {
			ns.h.Close()
		}
		if ns.f != nil {
			ns.f.Close()
		}
		if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns.Name, err, out)
		}
	})
	f, err := os.Open("/run/netns/" + ns.Name)
	if err != nil {
		t.Fatalf("open namespace %s: %v", ns.Name, err)
	}
	ns.f = f
	ns.MustRun(t, "ip", "link", "set", "lo", "up")
	for _, l := range links {
		ns.AddLink(t, l)
	}
	return ns
}

// FD returns a file descriptor of the namespace, valid until the test ends.
func (ns *NS) FD() int { return int(ns.f.Fd()) }

// Handle returns a netlink handle bound to the namespace's fd: requests made
// through it act inside the namespace while no Go thread enters it. It is
// opened on the first call, shared by later ones, and closed when the
// namespace is removed.
func (ns *NS) Handle(t testing.TB) *netlink.Handle {
	t.Helper()
	if ns.h == nil {
		h, err := netlink.NewHandleAt(netns.NsHandle(ns.FD()))
		if err != nil {
			t.Fatalf("netlink handle in %s: %v", ns.Name, err)
		}
		ns.h = h
	}
	return ns.h
}

// AddLink creates an Ethernet link named name in the namespace and sets it
// up. It is one end of a veth pair whose other end is named name+"-p"
// (shortened to fit 15 bytes): the kernels these tests run on may lack the
// dummy driver, and the peer gives traffic somewhere to go.
func (ns *NS) AddLink(t testing.TB, name string) {
	t.Helper()
	peer := name + "-p"
	if len(peer) > 15 {
		peer = peer[:15]
	}
	ns.AddVeth(t, name, peer)
}

// AddVeth creates the veth pair a, b in the namespace and sets both up.
func (ns *NS) AddVeth(t testing.TB, a, b string) {
	t.Helper()
	ns.MustRun(t, "ip", "link", "add", a, "type", "veth", "peer", "name", b)
	ns.MustRun(t, "ip", "link", "set", a, "up")
	ns.MustRun(t, "ip", "link", "set", b, "up")
}

// Run runs a command inside the namespace with "ip netns exec", feeding it
// stdin if not empty, and returns its standard output, standard error and
// error.
func (ns *NS) Run(stdin string, name string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// MustRun is Run without stdin that fails the test on error.
func (ns *NS) MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, errOut, err := ns.Run("", name, args...)
	if err != nil {
		t.Fatalf("%s %s in %s: %v: %s", name, strings.Join(args, " "), ns.Name, err, errOut)
	}
	return out
}

// IP runs "ip -n NAME args..." and returns its combined output, failing the
// test on error. Unlike Run it does not go through "ip netns exec", so it
// costs no mount namespace; use it for ip's own subcommands.
func (ns *NS) IP(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns.Name}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s %s: %v: %s", ns.Name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
