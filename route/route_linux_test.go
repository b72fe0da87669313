package route

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nfmirror/nfmirror/internal/config"
	"github.com/nfmirror/nfmirror/internal/nstest"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// testConfig is the default configuration with its state file in a
// directory of the test's own; c's non-zero fields override.
func testConfig(t *testing.T, c Config) Config {
	t.Helper()
	d := config.Default()
	if c.Mark == 0 {
		c.Mark, c.MarkMask = d.Mark, d.MarkMask
	}
	if c.Table == 0 {
		c.Table = d.RouteTable
	}
	if c.Priority == 0 {
		c.Priority = d.Priority
	}
	if c.StatePath == "" {
		c.StatePath = filepath.Join(t.TempDir(), "state.json")
	}
	return c
}

// dests makes the Dest list of plain (not shared) destinations.
func dests(names ...string) []Dest {
	var ds []Dest
	for _, n := range names {
		ds = append(ds, Dest{Name: n})
	}
	return ds
}

// qdiscRE matches the qdisc of "ip link show": bringing a link up attaches
// its default qdisc (noop becomes noqueue) and the kernel keeps it after the
// link goes down again; that is not a flag and not ours to restore.
var qdiscRE = regexp.MustCompile(`qdisc \S+ `)

// snapshot is what a user sees of the namespace's routing state.
func snapshot(t *testing.T, n *nstest.NS) string {
	t.Helper()
	return strings.Join([]string{
		n.IP(t, "rule", "show"),
		n.IP(t, "-6", "rule", "show"),
		n.IP(t, "route", "show", "table", "all"),
		n.IP(t, "-6", "route", "show", "table", "all"),
		qdiscRE.ReplaceAllString(n.IP(t, "-d", "link", "show"), "qdisc Q "),
	}, "--\n")
}

// settled returns the snapshot once carrier and IPv6 link-local routes have
// settled (linkwatch reports carrier up to a second late).
func settled(t *testing.T, n *nstest.NS) string {
	t.Helper()
	prev := snapshot(t, n)
	for range 30 {
		time.Sleep(100 * time.Millisecond)
		cur := snapshot(t, n)
		// A link-local address still in DAD would become a route later.
		if cur == prev && !strings.Contains(cur, "NO-CARRIER,BROADCAST,MULTICAST,UP") &&
			strings.TrimSpace(n.IP(t, "-6", "addr", "show", "tentative")) == "" {
			return cur
		}
		prev = cur
	}
	return prev
}

// portNS makes a router namespace with span0 (a veth, down, ARP on, as
// created) whose peer mon0, up, is in a monitor namespace, a second veth
// other0 whose peer is in the monitor namespace too, and the addresses
// 198.18.0.1 and 2001:db8::1 on lo.
func portNS(t *testing.T) *nstest.NS {
	n := nstest.New(t)
	m := nstest.New(t)
	n.IP(t, "link", "add", "span0", "type", "veth", "peer", "name", "mon0", "netns", m.Name)
	n.IP(t, "link", "add", "other0", "type", "veth", "peer", "name", "other1", "netns", m.Name)
	// No IPv6 link-local addresses on the ports: the kernel adds one (and
	// its local route) some time after a link comes up, which raced with
	// the before/after snapshots (1 run in 20). Setup and Undo never touch
	// address generation, so this hides nothing they do.
	for _, dev := range []string{"span0", "other0"} {
		n.IP(t, "link", "set", dev, "addrgenmode", "none")
	}
	m.IP(t, "link", "set", "mon0", "up")
	n.IP(t, "addr", "add", "198.18.0.1/32", "dev", "lo")
	n.IP(t, "addr", "add", "2001:db8::1/128", "dev", "lo")
	return n
}

func TestSetupUndo(t *testing.T) {
	tests := []struct {
		name   string
		prep   []string // ip commands run before the snapshot
		dests  []string
		cfg    Config
		marks  []string // expected "fwmark ... lookup ..." in ip rule show
		tables []int
	}{
		{
			name:   "down and arp on",
			dests:  []string{"span0"},
			marks:  []string{"2826:\tfrom all fwmark 0x6e666d00 lookup 28262"},
			tables: []int{28262},
		},
		{
			name:   "already up, two ports, custom config",
			prep:   []string{"link set span0 up", "link set other0 arp off"},
			dests:  []string{"span0", "other0"},
			cfg:    Config{Mark: 0x1200, MarkMask: 0xff00, Table: 500, Priority: 100},
			marks:  []string{"100:\tfrom all fwmark 0x1200 lookup 500", "100:\tfrom all fwmark 0x1201 lookup 501"},
			tables: []int{500, 501},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := portNS(t)
			for _, p := range tt.prep {
				n.IP(t, strings.Fields(p)...)
			}
			cfg := testConfig(t, tt.cfg)
			before := settled(t, n)
			r, err := Setup(n.Handle(t), cfg, dests(tt.dests...))
			if err != nil {
				t.Fatalf("Setup: %v", err)
			}
			for _, fam := range []string{"-4", "-6"} {
				rules := n.IP(t, fam, "rule", "show")
				for _, m := range tt.marks {
					if !strings.Contains(rules, m) {
						t.Errorf("ip %s rule show lacks %q:\n%s", fam, m, rules)
					}
				}
			}
			ports := r.Ports()
			if len(ports) != len(tt.dests) {
				t.Fatalf("Ports() = %d ports, want %d", len(ports), len(tt.dests))
			}
			for i, p := range ports {
				link, err := n.Handle(t).LinkByName(tt.dests[i])
				if err != nil {
					t.Fatal(err)
				}
				a := link.Attrs()
				if p.Name != tt.dests[i] || p.Index != a.Index || p.Table != tt.tables[i] || p.MTU != a.MTU || p.MAC.String() != a.HardwareAddr.String() {
					t.Errorf("port %d = %+v, link %s index %d mtu %d mac %s", i, p, a.Name, a.Index, a.MTU, a.HardwareAddr)
				}
				for _, fam := range []string{"-4", "-6"} {
					routes := n.IP(t, fam, "route", "show", "table", fmt.Sprint(tt.tables[i]))
					if !strings.HasPrefix(routes, "default dev "+tt.dests[i]) {
						t.Errorf("ip %s route show table %d = %q", fam, tt.tables[i], routes)
					}
				}
				ls := n.IP(t, "link", "show", tt.dests[i])
				if !strings.Contains(ls, "NOARP") || !strings.Contains(ls, ",UP") {
					t.Errorf("link not up and noarp: %s", ls)
				}
				// A copy with the port's mark routes out of the port.
				got := n.IP(t, "route", "get", "198.18.7.7", "mark", fmt.Sprint(p.Mark))
				if !strings.Contains(got, "dev "+tt.dests[i]) {
					t.Errorf("route get mark %#x: %s", p.Mark, got)
				}
				got = n.IP(t, "-6", "route", "get", "2001:db8::7", "mark", fmt.Sprint(p.Mark))
				if !strings.Contains(got, "dev "+tt.dests[i]) {
					t.Errorf("route get -6 mark %#x: %s", p.Mark, got)
				}
			}
			if fi, err := os.Stat(cfg.StatePath); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("state file: %v, want mode 0600", err)
			}
			if err := r.Undo(); err != nil {
				t.Fatalf("Undo: %v", err)
			}
			if after := snapshot(t, n); after != before {
				t.Errorf("Undo did not restore:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			if _, err := os.Stat(cfg.StatePath); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("state file still there after Undo: %v", err)
			}
		})
	}
}

// TestNoARPNeighbour checks that with IFF_NOARP a neighbour on the port
// resolves to the port's own MAC without any ARP or ND.
func TestNoARPNeighbour(t *testing.T) {
	n := portNS(t)
	r, err := Setup(n.Handle(t), testConfig(t, Config{}), dests("span0"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Undo()
	p := r.Ports()[0]
	// ping cannot pick a source through a fwmark rule, so the test routes
	// two prefixes through the port in main; the neighbour code is the same.
	n.IP(t, "route", "add", "198.18.9.0/24", "dev", "span0")
	n.IP(t, "-6", "route", "add", "2001:db8:9::/64", "dev", "span0")
	for _, dst := range []string{"198.18.9.9", "2001:db8:9::9"} {
		// One ping makes the kernel create the neighbour entry.
		n.Run("", "ping", "-c1", "-W1", dst)
		out := n.IP(t, "neigh", "show", "nud", "all", "dev", "span0", "to", dst)
		want := "lladdr " + p.MAC.String() + " NOARP"
		if !strings.Contains(out, want) {
			t.Errorf("neighbour %s: %q, want %q", dst, out, want)
		}
	}
}

func TestSetupMissingDevice(t *testing.T) {
	n := portNS(t)
	cfg := testConfig(t, Config{})
	before := snapshot(t, n)
	_, err := Setup(n.Handle(t), cfg, dests("span0", "nope0"))
	if !errors.Is(err, ErrNoDevice) || !strings.Contains(err.Error(), `"nope0"`) {
		t.Fatalf("Setup with a missing device: %v, want ErrNoDevice naming nope0", err)
	}
	if after := snapshot(t, n); after != before {
		t.Errorf("failed Setup changed things:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if _, err := os.Stat(cfg.StatePath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file after failed Setup: %v", err)
	}
}

func TestFlushAfterCrash(t *testing.T) {
	n := portNS(t)
	cfg := testConfig(t, Config{})
	// An admin's rule at our priority with another mark, and an admin's
	// route in a table Setup does not use: Flush leaves them.
	n.IP(t, "rule", "add", "pref", "2826", "fwmark", "0x1", "lookup", "100")
	n.IP(t, "route", "add", "198.18.44.0/24", "dev", "lo", "table", "28300")
	before := snapshot(t, n)
	if _, err := Setup(n.Handle(t), cfg, dests("span0", "other0")); err != nil {
		t.Fatal(err)
	}
	// kill -9: the Routing is dropped without Undo.
	if _, err := Setup(n.Handle(t), cfg, dests("span0")); !errors.Is(err, ErrLeftover) {
		t.Fatalf("Setup over leftovers: %v, want ErrLeftover", err)
	}
	removed, err := Flush(n.Handle(t), cfg.StatePath)
	if err != nil {
		t.Fatalf("Flush: %v", err)
	}
	// Two ports: two rules and two routes each, ARP back on and down.
	if len(removed) != 12 {
		t.Errorf("Flush reports %d things removed, want 12: %q", len(removed), removed)
	}
	if after := snapshot(t, n); after != before {
		t.Errorf("Flush did not restore:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// Nothing left: nothing removed, and without a state file Flush
	// touches nothing at all, not even a rule that looks like nfmirror's.
	n.IP(t, "rule", "add", "pref", "2826", "fwmark", "0x6e666d42", "lookup", "28300")
	before = snapshot(t, n)
	if removed, err := Flush(n.Handle(t), cfg.StatePath); err != nil || len(removed) != 0 {
		t.Errorf("second Flush: %q, %v", removed, err)
	}
	if after := snapshot(t, n); after != before {
		t.Errorf("a Flush without state changed things:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestSetupRefusesForeign: an admin's route in nfmirror's table or rule at
// its priority and mark makes Setup refuse, changing nothing.
func TestSetupRefusesForeign(t *testing.T) {
	for _, tc := range []struct {
		name string
		prep []string
	}{
		{"route in table 28262", []string{"route add 198.18.44.0/24 dev lo table 28262"}},
		{"ipv6 route in table 28262", []string{"-6 route add 2001:db8:44::/64 dev lo table 28262"}},
		{"rule at priority and mark", []string{"rule add pref 2826 fwmark 0x6e666d42 lookup 28300"}},
		{"rule using table 28262", []string{"rule add pref 100 from 198.18.44.0/24 lookup 28262"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := portNS(t)
			for _, p := range tc.prep {
				n.IP(t, strings.Fields(p)...)
			}
			cfg := testConfig(t, Config{})
			before := snapshot(t, n)
			_, err := Setup(n.Handle(t), cfg, dests("span0"))
			if !errors.Is(err, ErrInUse) {
				t.Fatalf("Setup: %v, want ErrInUse", err)
			}
			if after := snapshot(t, n); after != before {
				t.Errorf("a refused Setup changed things:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			if _, err := os.Stat(cfg.StatePath); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("state file after a refused Setup: %v", err)
			}
		})
	}
}

// TestUndoLeavesOperatorRoute: a route the operator put in nfmirror's table
// in place of nfmirror's own is the operator's, and stays after Undo.
func TestUndoLeavesOperatorRoute(t *testing.T) {
	n := portNS(t)
	r, err := Setup(n.Handle(t), testConfig(t, Config{}), dests("span0"))
	if err != nil {
		t.Fatal(err)
	}
	n.IP(t, "route", "replace", "default", "dev", "lo", "table", "28262")
	if err := r.Undo(); err != nil {
		t.Fatalf("Undo: %v", err)
	}
	if out := n.IP(t, "route", "show", "table", "28262"); !strings.Contains(out, "default dev lo") {
		t.Errorf("table 28262 after Undo: %q, want the operator's route kept", out)
	}
	if out := n.IP(t, "-6", "route", "show", "table", "28262"); out != "" {
		t.Errorf("nfmirror's IPv6 route left after Undo: %q", out)
	}
}

func TestReapplyAfterRecreate(t *testing.T) {
	n := portNS(t)
	r, err := Setup(n.Handle(t), testConfig(t, Config{}), dests("span0"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Undo()
	old := r.Ports()[0].Index
	n.IP(t, "link", "del", "span0")
	n.IP(t, "link", "add", "span0", "type", "veth", "peer", "name", "mon0")
	if err := r.Reapply(); err != nil {
		t.Fatalf("Reapply: %v", err)
	}
	p := r.Ports()[0]
	if p.Index == old {
		t.Errorf("index not refreshed: %d", p.Index)
	}
	if out := n.IP(t, "route", "show", "table", "28262"); !strings.HasPrefix(out, "default dev span0") {
		t.Errorf("route not back: %q", out)
	}
	if ls := n.IP(t, "link", "show", "span0"); !strings.Contains(ls, "NOARP") || !strings.Contains(ls, ",UP") {
		t.Errorf("link flags not back: %s", ls)
	}
}

// TestSetupIPv6Off: with IPv6 disabled on the port, Setup installs the IPv4
// rule and route, reports IPv6 off, Lookup finds the port for IPv4 only, and
// Undo leaves the namespace as it was.
func TestSetupIPv6Off(t *testing.T) {
	n := portNS(t)
	n.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.span0.disable_ipv6=1")
	before := settled(t, n)
	r, err := Setup(n.Handle(t), testConfig(t, Config{}), dests("span0"))
	if err != nil {
		t.Fatalf("Setup with IPv6 off on the port: %v", err)
	}
	p := r.Ports()[0]
	if strings.Join(p.FamilyOff, ",") != "ipv6" {
		t.Errorf("FamilyOff = %v, want [ipv6]", p.FamilyOff)
	}
	v4, v6, err := Lookup(n.Handle(t), p.Table)
	if err != nil || v4 != p.Index || v6 != 0 {
		t.Errorf("Lookup = %d, %d, %v; want %d for IPv4 and none for IPv6", v4, v6, err, p.Index)
	}
	if err := r.Undo(); err != nil {
		t.Fatalf("Undo: %v", err)
	}
	if after := settled(t, n); after != before {
		t.Errorf("namespace changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestLookupStrict: a handle with netlink strict checking, which the writer
// uses so that the kernel dumps only the port's table, finds the same
// devices as one without, beside a main table of 20,000 routes.
func TestLookupStrict(t *testing.T) {
	n := portNS(t)
	n.IP(t, "link", "set", "other0", "up")
	var batch strings.Builder
	for i := range 20000 {
		fmt.Fprintf(&batch, "route add 198.19.%d.%d/32 dev other0\n", i/256, i%256)
	}
	path := filepath.Join(t.TempDir(), "routes")
	if err := os.WriteFile(path, []byte(batch.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	n.IP(t, "-batch", path)
	r, err := Setup(n.Handle(t), testConfig(t, Config{}), dests("span0"))
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() { r.Undo() })
	p := r.Ports()[0]
	strict, err := netlink.NewHandleAt(netns.NsHandle(n.FD()))
	if err != nil {
		t.Fatal(err)
	}
	defer strict.Close()
	if err := strict.SetStrictCheck(true); err != nil {
		t.Fatalf("SetStrictCheck: %v", err)
	}
	for _, h := range []struct {
		name string
		h    *netlink.Handle
	}{{"loose", n.Handle(t)}, {"strict", strict}} {
		v4, v6, err := Lookup(h.h, p.Table)
		if err != nil || v4 != p.Index || v6 != p.Index {
			t.Errorf("%s Lookup = %d, %d, %v; want %d for both families", h.name, v4, v6, err, p.Index)
		}
	}
}
