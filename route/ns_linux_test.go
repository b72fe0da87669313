package route

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// requireRoot skips a test that needs root, or fails it when
// NFMIRROR_REQUIRE_ROOT=1 so that CI cannot pass by skipping.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("NFMIRROR_REQUIRE_ROOT") == "1" {
		t.Fatal("needs root (NFMIRROR_REQUIRE_ROOT=1)")
	}
	t.Skip("needs root to create network namespaces")
}

// testNS is a named network namespace made for one test and removed when it
// ends. No Go thread ever enters it: the test talks to it through a netlink
// handle bound to its fd and runs commands with "ip -n".
type testNS struct {
	Name string
	FD   netns.NsHandle
	H    *netlink.Handle
}

func newTestNS(t *testing.T) *testNS {
	t.Helper()
	requireRoot(t)
	b := make([]byte, 4)
	rand.Read(b)
	name := "nfm-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	fd, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("open netns %s: %v", name, err)
	}
	t.Cleanup(func() { fd.Close() })
	h, err := netlink.NewHandleAt(fd)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", name, err)
	}
	t.Cleanup(h.Close)
	return &testNS{Name: name, FD: fd, H: h}
}

// ip runs "ip -n NS args..." and returns its output.
func (n *testNS) ip(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", n.Name}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s %s: %v: %s", n.Name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
