package route

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// rulesFor declares the ip rules of one destination.
func rulesFor(cfg Config, mark uint32, table int) []*netlink.Rule {
	mk := func(family int) *netlink.Rule {
		r := netlink.NewRule()
		r.Family = family
		r.Priority = cfg.Priority
		r.Mark = mark
		mask := uint32(0xffffffff)
		r.Mask = &mask
		r.Table = table
		return r
	}
	return []*netlink.Rule{
		// ip rule add pref P fwmark M|i lookup T+i: IPv4 copies of
		// destination i leave through its table, ahead of main (32766). The
		// local table (pref 0) still comes first: copies addressed to this
		// host are written at layer 2 by the sinks instead.
		mk(unix.AF_INET),
		// ip -6 rule add pref P fwmark M|i lookup T+i: the same for IPv6.
		mk(unix.AF_INET6),
	}
}

// routesFor declares the routes of one destination's table.
func routesFor(table, ifindex int) []*netlink.Route {
	return []*netlink.Route{
		// ip route add default dev DEST scope link table T+i: no gateway;
		// with IFF_NOARP the neighbour resolves to the port's own MAC.
		{
			Family:    unix.AF_INET,
			Dst:       &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
			LinkIndex: ifindex,
			Table:     table,
			Scope:     netlink.SCOPE_LINK,
			Type:      unix.RTN_UNICAST,
		},
		// ip -6 route add default dev DEST table T+i: likewise, and with
		// IFF_NOARP no neighbour discovery either.
		{
			Family:    unix.AF_INET6,
			Dst:       &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
			LinkIndex: ifindex,
			Table:     table,
			Type:      unix.RTN_UNICAST,
		},
	}
}

// Routing is the policy routing Setup applied. Undo removes it.
type Routing struct {
	h       *netlink.Handle
	ownH    bool // h was opened by Setup and is closed by Undo
	cfg     Config
	mu      sync.Mutex
	st      state
	port    []Port
	done    bool
	written string // the state file's content as last written
}

// Setup prepares every destination interface as a mirror port: IFF_UP and
// IFF_NOARP on, an IPv4 and an IPv6 ip rule "fwmark Mark|i lookup Table+i"
// and default routes through the port in that table. It records what it
// changed in a state file under cfg.StateDir first, so that Flush can undo it
// after a crash. It is all or nothing: on error it undoes what it did.
//
// h is the netlink handle of the namespace to work in (nil: the current one).
// A destination that does not exist yields an error wrapping ErrNoDevice that
// names it. A state file left by an earlier run yields ErrLeftover.
func Setup(h *netlink.Handle, cfg Config, dests []string) (r *Routing, err error) {
	ownH := h == nil
	if ownH {
		if h, err = netlink.NewHandle(); err != nil {
			return nil, fmt.Errorf("open netlink handle: %w", err)
		}
		defer func() {
			if err != nil {
				h.Close()
			}
		}()
	}
	cfg = cfg.withDefaults()
	if len(dests) > cfg.maxDests() {
		return nil, fmt.Errorf("%d mirror interfaces, at most %d", len(dests), cfg.maxDests())
	}
	path := filepath.Join(cfg.StateDir, stateFile)
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("%s: %w", path, ErrLeftover)
	}
	r = &Routing{h: h, ownH: ownH, cfg: cfg, st: state{Priority: cfg.Priority, Mark: cfg.Mark, MarkMask: cfg.MarkMask}}
	seen := map[string]bool{}
	for i, name := range dests {
		if seen[name] {
			return nil, fmt.Errorf("mirror interface %q listed twice", name)
		}
		seen[name] = true
		link, err := h.LinkByName(name)
		if err != nil {
			return nil, fmt.Errorf("mirror interface %q: %w (%w)", name, ErrNoDevice, err)
		}
		a := link.Attrs()
		r.st.Links = append(r.st.Links, linkState{
			Name:     name,
			Index:    a.Index,
			WasUp:    a.RawFlags&unix.IFF_UP != 0,
			WasNoARP: a.RawFlags&unix.IFF_NOARP != 0,
			Mark:     cfg.Mark&cfg.MarkMask | uint32(i),
			Table:    cfg.Table + i,
		})
	}
	// The state goes to disk before anything changes: a crash in between
	// leaves at worst a state file naming things Flush will not find.
	if err := writeState(path, &r.st); err != nil {
		return nil, err
	}
	if err := r.apply(); err != nil {
		r.ownH = false // closed by the deferred func
		if uerr := r.Undo(); uerr != nil {
			return nil, errors.Join(err, fmt.Errorf("undo: %w", uerr))
		}
		return nil, err
	}
	return r, nil
}

// apply applies the declared rules, routes and link flags, idempotently.
func (r *Routing) apply() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return errors.New("routing already undone")
	}
	ports := make([]Port, len(r.st.Links))
	var errs []error
	for i := range r.st.Links {
		p, err := r.applyLink(&r.st.Links[i])
		if err != nil {
			errs = append(errs, err)
			if i < len(r.port) {
				p = r.port[i] // keep what was known of a port that is gone
			}
		}
		ports[i] = p
	}
	r.port = ports
	// Record which flags were changed, so that Flush after a crash restores
	// exactly them. Unchanged state is not written again.
	if b, err := json.Marshal(&r.st); err == nil && string(b) == r.written {
		return errors.Join(errs...)
	}
	if err := writeState(filepath.Join(r.cfg.StateDir, stateFile), &r.st); err != nil {
		errs = append(errs, err)
	} else if b, err := json.Marshal(&r.st); err == nil {
		r.written = string(b)
	}
	return errors.Join(errs...)
}

// applyLink applies the link flags, rules and routes of one destination.
func (r *Routing) applyLink(ls *linkState) (Port, error) {
	link, err := r.h.LinkByName(ls.Name)
	if err != nil {
		return Port{}, fmt.Errorf("mirror interface %q: %w (%w)", ls.Name, ErrNoDevice, err)
	}
	a := link.Attrs()
	ls.Index = a.Index
	if a.RawFlags&unix.IFF_NOARP == 0 {
		if err := r.h.LinkSetARPOff(link); err != nil {
			return Port{}, fmt.Errorf("set arp off on %s: %w", ls.Name, err)
		}
		ls.SetNoARP = ls.SetNoARP || !ls.WasNoARP
	}
	if a.RawFlags&unix.IFF_UP == 0 {
		if err := r.h.LinkSetUp(link); err != nil {
			return Port{}, fmt.Errorf("set %s up: %w", ls.Name, err)
		}
		ls.SetUp = ls.SetUp || !ls.WasUp
	}
	off := map[int]bool{}
	for _, rule := range rulesFor(r.cfg, ls.Mark, ls.Table) {
		err := r.h.RuleAdd(rule)
		switch {
		case err == nil || errors.Is(err, unix.EEXIST):
		case familyOff(err):
			off[rule.Family] = true
		default:
			return Port{}, fmt.Errorf("add %s fwmark %#x rule: %w", family(rule.Family), ls.Mark, err)
		}
	}
	for _, rt := range routesFor(ls.Table, ls.Index) {
		if off[rt.Family] {
			continue
		}
		err := r.h.RouteReplace(rt)
		switch {
		case err == nil:
		case familyOff(err):
			off[rt.Family] = true
		default:
			return Port{}, fmt.Errorf("add %s default route dev %s table %d: %w", family(rt.Family), ls.Name, ls.Table, err)
		}
	}
	p := Port{Name: ls.Name, Index: a.Index, Mark: ls.Mark, Table: ls.Table, MTU: a.MTU, MAC: a.HardwareAddr}
	for _, f := range []int{unix.AF_INET, unix.AF_INET6} {
		if off[f] {
			p.FamilyOff = append(p.FamilyOff, family(f))
		}
	}
	return p, nil
}

// familyOff reports whether adding a rule or route failed because the host
// has the family turned off: IPv6 disabled on the device (disable_ipv6 gives
// EACCES) or not in the kernel at all (EAFNOSUPPORT).
func familyOff(err error) bool {
	return errors.Is(err, unix.EACCES) || errors.Is(err, unix.EAFNOSUPPORT)
}

// Lookup returns the ifindex of the device that the default route of the
// routing table sends each family's packets to, 0 for a family without one:
// the device a destination's copies leave by. An operator may point the
// table elsewhere (ip route replace default dev X table T); the writer
// follows.
func Lookup(h *netlink.Handle, table int) (v4, v6 int, err error) {
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		routes, lerr := h.RouteListFiltered(fam, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
		if lerr != nil {
			if familyOff(lerr) {
				continue
			}
			return 0, 0, fmt.Errorf("list %s routes of table %d: %w", family(fam), table, lerr)
		}
		idx := 0
		for _, rt := range routes {
			if rt.Dst != nil {
				if ones, _ := rt.Dst.Mask.Size(); ones != 0 {
					continue // not the default route
				}
			}
			if rt.LinkIndex > 0 {
				idx = rt.LinkIndex
				break
			}
		}
		if fam == unix.AF_INET {
			v4 = idx
		} else {
			v6 = idx
		}
	}
	return v4, v6, nil
}

// Ports returns the mirror ports, in the order of the destinations given to
// Setup.
func (r *Routing) Ports() []Port {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Port(nil), r.port...)
}

// Reapply applies the rules, routes and link flags again, after a mirror
// interface went away and came back (its routes die with it; a new link
// comes up without NOARP). It is cheap when nothing changed, so the caller may
// run it periodically or on link events. Ports reflects new ifindexes. The
// sinks re-resolve the port's ifindex by name on their own.
func (r *Routing) Reapply() error {
	return r.apply()
}

// Undo removes exactly what Setup added, restores the link flags it changed
// and removes the state file.
func (r *Routing) Undo() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return nil
	}
	r.done = true
	err := undoState(r.h, &r.st)
	if rerr := os.Remove(filepath.Join(r.cfg.StateDir, stateFile)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, fmt.Errorf("remove state file: %w", rerr))
	}
	if r.ownH {
		r.h.Close()
	}
	return err
}

// undoState removes the rules and routes of st and restores link flags.
func undoState(h *netlink.Handle, st *state) error {
	var errs []error
	cfg := Config{Priority: st.Priority, Mark: st.Mark, MarkMask: st.MarkMask}
	for _, ls := range st.Links {
		for _, rule := range rulesFor(cfg, ls.Mark, ls.Table) {
			if err := h.RuleDel(rule); err != nil && !gone(err) {
				errs = append(errs, fmt.Errorf("delete %s fwmark %#x rule: %w", family(rule.Family), ls.Mark, err))
			}
		}
		if err := flushTable(h, ls.Table); err != nil {
			errs = append(errs, err)
		}
		link, err := h.LinkByName(ls.Name)
		if err != nil {
			continue // gone: nothing to restore
		}
		if ls.SetNoARP && link.Attrs().RawFlags&unix.IFF_NOARP != 0 {
			if err := h.LinkSetARPOn(link); err != nil {
				errs = append(errs, fmt.Errorf("set arp on on %s: %w", ls.Name, err))
			}
		}
		if ls.SetUp && link.Attrs().RawFlags&unix.IFF_UP != 0 {
			if err := h.LinkSetDown(link); err != nil {
				errs = append(errs, fmt.Errorf("set %s down: %w", ls.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// flushTable deletes every route of a routing table, IPv4 and IPv6.
func flushTable(h *netlink.Handle, table int) error {
	var errs []error
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		routes, err := h.RouteListFiltered(fam, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
		if err != nil {
			errs = append(errs, fmt.Errorf("list %s routes of table %d: %w", family(fam), table, err))
			continue
		}
		for i := range routes {
			if err := h.RouteDel(&routes[i]); err != nil && !gone(err) {
				errs = append(errs, fmt.Errorf("delete %s route %s table %d: %w", family(fam), routes[i].Dst, table, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Flush removes what a killed nfmirror left behind: every ip rule (IPv4 and
// IPv6) at cfg.Priority whose fwmark carries the cfg.Mark base under
// cfg.MarkMask, every route in the tables those rules and the state file
// name, and the link flags recorded in the state file. Then it removes the
// state file. Nothing left is not an error.
func Flush(h *netlink.Handle, cfg Config) error {
	if h == nil {
		var err error
		if h, err = netlink.NewHandle(); err != nil {
			return fmt.Errorf("open netlink handle: %w", err)
		}
		defer h.Close()
	}
	cfg = cfg.withDefaults()
	path := filepath.Join(cfg.StateDir, stateFile)
	var errs []error
	st, err := readState(path)
	switch {
	case err == nil:
		if err := undoState(h, st); err != nil {
			errs = append(errs, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		errs = append(errs, err)
	}
	tables := map[int]bool{}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		rules, err := h.RuleList(fam)
		if err != nil {
			errs = append(errs, fmt.Errorf("list %s rules: %w", family(fam), err))
			continue
		}
		for i := range rules {
			ru := &rules[i]
			if ru.Priority != cfg.Priority || ru.Mark&cfg.MarkMask != cfg.Mark&cfg.MarkMask {
				continue
			}
			tables[ru.Table] = true
			if err := h.RuleDel(ru); err != nil && !gone(err) {
				errs = append(errs, fmt.Errorf("delete %s fwmark %#x rule: %w", family(fam), ru.Mark, err))
			}
		}
	}
	for t := range tables {
		if t < cfg.Table || t >= cfg.Table+cfg.maxDests() {
			continue // not one of ours: leave it alone
		}
		if err := flushTable(h, t); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove state file: %w", err))
	}
	return errors.Join(errs...)
}

func writeState(path string, st *state) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	return nil
}

func readState(path string) (*state, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read state file: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("decode state file %s: %w", path, err)
	}
	return &st, nil
}

// gone reports whether a delete failed because the thing is already gone.
func gone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENODEV)
}

func family(f int) string {
	if f == unix.AF_INET6 {
		return "ipv6"
	}
	return "ipv4"
}
