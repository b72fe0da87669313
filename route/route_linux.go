package route

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// rulesFor declares the ip rule of one destination for one family.
func ruleFor(priority, family int, mark uint32, table int) *netlink.Rule {
	r := netlink.NewRule()
	r.Family = family
	r.Priority = priority
	r.Mark = mark
	mask := uint32(0xffffffff)
	r.Mask = &mask
	r.Table = table
	return r
}

// families are the address families of the rules and routes, in order.
var families = []int{unix.AF_INET, unix.AF_INET6}

// routeFor declares the default route of one destination's table for one
// family:
//
//	ip route add default dev DEST scope link table T+i     (IPv4: no gateway)
//	ip -6 route add default dev DEST table T+i             (IPv6)
//
// The writer looks the route up to know which device the destination's
// copies leave by; with IFF_NOARP nothing is ever resolved.
func routeFor(family, table, ifindex int) *netlink.Route {
	if family == unix.AF_INET {
		return &netlink.Route{
			Family:    unix.AF_INET,
			Dst:       &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
			LinkIndex: ifindex,
			Table:     table,
			Scope:     netlink.SCOPE_LINK,
			Type:      unix.RTN_UNICAST,
		}
	}
	return &netlink.Route{
		Family:    unix.AF_INET6,
		Dst:       &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
		LinkIndex: ifindex,
		Table:     table,
		Type:      unix.RTN_UNICAST,
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
// IFF_NOARP on (unless the destination is shared), an IPv4 and an IPv6 ip
// rule "fwmark Mark|i lookup Table+i" and default routes through the port in
// that table. It records what it changed in the state file first, so that
// Flush can undo exactly that after a crash. It is all or nothing: on error
// it undoes what it did.
//
// Setup changes nothing that is not its own: an ip rule at its priority with
// its mark, or any ip rule or route that uses one of its routing tables, is
// someone else's, and Setup refuses with ErrInUse.
//
// h is the netlink handle of the namespace to work in (nil: the current one).
// A destination that does not exist yields an error wrapping ErrNoDevice that
// names it. A state file left by an earlier run yields ErrLeftover.
func Setup(h *netlink.Handle, cfg Config, dests []Dest) (r *Routing, err error) {
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
	if len(dests) > cfg.maxDests() {
		return nil, fmt.Errorf("%d mirror interfaces, at most %d", len(dests), cfg.maxDests())
	}
	if _, err := os.Lstat(cfg.StatePath); err == nil {
		return nil, fmt.Errorf("%s: %w", cfg.StatePath, ErrLeftover)
	}
	r = &Routing{h: h, ownH: ownH, cfg: cfg, st: state{Priority: cfg.Priority, Mark: cfg.Mark, MarkMask: cfg.MarkMask}}
	seen := map[string]bool{}
	for i, d := range dests {
		if seen[d.Name] {
			return nil, fmt.Errorf("mirror interface %q listed twice", d.Name)
		}
		seen[d.Name] = true
		link, err := h.LinkByName(d.Name)
		if err != nil {
			return nil, fmt.Errorf("mirror interface %q: %w (%w)", d.Name, ErrNoDevice, err)
		}
		a := link.Attrs()
		r.st.Links = append(r.st.Links, linkState{
			Name:     d.Name,
			Index:    a.Index,
			Shared:   d.Shared,
			WasUp:    a.RawFlags&unix.IFF_UP != 0,
			WasNoARP: a.RawFlags&unix.IFF_NOARP != 0,
			Mark:     cfg.Mark&cfg.MarkMask | uint32(i),
			Table:    cfg.Table + i,
		})
	}
	if err := checkFree(h, cfg, len(dests)); err != nil {
		return nil, err
	}
	// The state goes to disk before anything changes: a crash in between
	// leaves at worst a state file naming things Flush will not find.
	if err := r.writeState(); err != nil {
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

// checkFree reports, wrapping ErrInUse, an ip rule or route that occupies
// one of the numbers Setup would use for n destinations.
func checkFree(h *netlink.Handle, cfg Config, n int) error {
	ours := func(table int) bool { return table >= cfg.Table && table < cfg.Table+n }
	for _, fam := range families {
		rules, err := h.RuleList(fam)
		if err != nil {
			if familyOff(err) {
				continue
			}
			return fmt.Errorf("list %s rules: %w", family(fam), err)
		}
		for _, ru := range rules {
			if ours(ru.Table) || ru.Priority == cfg.Priority && ru.Mark&cfg.MarkMask == cfg.Mark&cfg.MarkMask && ru.Mark != 0 {
				return fmt.Errorf("%s rule \"pref %d fwmark %#x lookup %d\" is %w: choose another -rule-priority, -fwmark or -route-table, or remove it",
					family(fam), ru.Priority, ru.Mark, ru.Table, ErrInUse)
			}
		}
		for i := range n {
			routes, err := h.RouteListFiltered(fam, &netlink.Route{Table: cfg.Table + i}, netlink.RT_FILTER_TABLE)
			if err != nil {
				if familyOff(err) {
					continue
				}
				return fmt.Errorf("list %s routes of table %d: %w", family(fam), cfg.Table+i, err)
			}
			if len(routes) > 0 {
				return fmt.Errorf("routing table %d (%s) already has routes, so it is %w: choose another -route-table, or empty it",
					cfg.Table+i, family(fam), ErrInUse)
			}
		}
	}
	return nil
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
	if err := r.writeState(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// applyLink applies the link flags, rules and routes of one destination and
// records what it added.
func (r *Routing) applyLink(ls *linkState) (Port, error) {
	link, err := r.h.LinkByName(ls.Name)
	if err != nil {
		return Port{}, fmt.Errorf("mirror interface %q: %w (%w)", ls.Name, ErrNoDevice, err)
	}
	a := link.Attrs()
	ls.Index = a.Index
	if !ls.Shared {
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
	}
	off := map[int]bool{}
	if a.MTU < 1280 {
		off[unix.AF_INET6] = true // IPv6 needs 1280 bytes: the kernel turned it off here
	}
	for _, fam := range families {
		if off[fam] {
			continue
		}
		err := r.h.RuleAdd(ruleFor(r.cfg.Priority, fam, ls.Mark, ls.Table))
		switch {
		case err == nil:
			ls.Rules = addOnce(ls.Rules, family(fam))
		case errors.Is(err, unix.EEXIST) && slices.Contains(ls.Rules, family(fam)):
			// ours, from an earlier apply
		case familyOff(err):
			off[fam] = true
		default:
			return Port{}, fmt.Errorf("add %s fwmark %#x rule: %w", family(fam), ls.Mark, err)
		}
	}
	for _, fam := range families {
		if off[fam] {
			continue
		}
		err := r.h.RouteAdd(routeFor(fam, ls.Table, ls.Index))
		switch {
		case err == nil:
			ls.Routes = recordRoute(ls.Routes, family(fam), ls.Index)
		case errors.Is(err, unix.EEXIST):
			// Ours from an earlier apply, or one the operator put there
			// instead (the writer follows it): either way it stays.
		case familyOff(err):
			off[fam] = true
		default:
			return Port{}, fmt.Errorf("add %s default route dev %s table %d: %w", family(fam), ls.Name, ls.Table, err)
		}
	}
	p := Port{Name: ls.Name, Index: a.Index, Mark: ls.Mark, Table: ls.Table, MTU: a.MTU, MAC: a.HardwareAddr, Shared: ls.Shared}
	for _, f := range families {
		if off[f] {
			p.FamilyOff = append(p.FamilyOff, family(f))
		}
	}
	return p, nil
}

func addOnce(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// recordRoute records the route of family fam to ifindex, replacing the
// record of an earlier one of the same family (its link is gone).
func recordRoute(rs []routeRecord, fam string, ifindex int) []routeRecord {
	rs = slices.DeleteFunc(rs, func(r routeRecord) bool { return r.Family == fam })
	return append(rs, routeRecord{Family: fam, Index: ifindex})
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
// run it periodically or on link events. Ports reflects new ifindexes.
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
	_, err := undoState(r.h, &r.st)
	if rerr := os.Remove(r.cfg.StatePath); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, fmt.Errorf("remove state file: %w", rerr))
	}
	if r.ownH {
		r.h.Close()
	}
	return err
}

// undoState removes the rules and routes st records and restores the link
// flags it changed. It returns what it removed or restored.
func undoState(h *netlink.Handle, st *state) ([]string, error) {
	var errs []error
	var done []string
	for _, ls := range st.Links {
		for _, f := range ls.Rules {
			fam := familyNum(f)
			err := h.RuleDel(ruleFor(st.Priority, fam, ls.Mark, ls.Table))
			switch {
			case err == nil:
				done = append(done, fmt.Sprintf("%s rule pref %d fwmark %#x lookup %d", f, st.Priority, ls.Mark, ls.Table))
			case !gone(err):
				errs = append(errs, fmt.Errorf("delete %s fwmark %#x rule: %w", f, ls.Mark, err))
			}
		}
		for _, rr := range ls.Routes {
			err := h.RouteDel(routeFor(familyNum(rr.Family), ls.Table, rr.Index))
			switch {
			case err == nil:
				done = append(done, fmt.Sprintf("%s default route dev %s table %d", rr.Family, ls.Name, ls.Table))
			case !gone(err):
				errs = append(errs, fmt.Errorf("delete %s default route table %d: %w", rr.Family, ls.Table, err))
			}
		}
		link, err := h.LinkByName(ls.Name)
		if err != nil {
			continue // gone: nothing to restore
		}
		if ls.SetNoARP && link.Attrs().RawFlags&unix.IFF_NOARP != 0 {
			if err := h.LinkSetARPOn(link); err != nil {
				errs = append(errs, fmt.Errorf("set arp on on %s: %w", ls.Name, err))
			} else {
				done = append(done, "arp on "+ls.Name)
			}
		}
		if ls.SetUp && link.Attrs().RawFlags&unix.IFF_UP != 0 {
			if err := h.LinkSetDown(link); err != nil {
				errs = append(errs, fmt.Errorf("set %s down: %w", ls.Name, err))
			} else {
				done = append(done, ls.Name+" down")
			}
		}
	}
	return done, errors.Join(errs...)
}

// Flush removes what a killed nfmirror left behind, as its state file at
// statePath records it: exactly the ip rules and routes it added and the
// link flags it changed, nothing else. Then it removes the state file. It
// returns what it removed; no state file is not an error. The caller must
// make sure the instance that wrote the file is not running.
func Flush(h *netlink.Handle, statePath string) ([]string, error) {
	if h == nil {
		var err error
		if h, err = netlink.NewHandle(); err != nil {
			return nil, fmt.Errorf("open netlink handle: %w", err)
		}
		defer h.Close()
	}
	st, err := readState(statePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	done, err := undoState(h, st)
	if rerr := os.Remove(statePath); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, fmt.Errorf("remove state file: %w", rerr))
	}
	return done, err
}

// Leftover reports whether the state file of an earlier run is there.
func Leftover(statePath string) bool {
	_, err := os.Lstat(statePath)
	return err == nil
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
// follows. With strict checking on h (netlink.Handle.SetStrictCheck) the
// kernel dumps only that table; without it, every route of the host, which
// Lookup filters.
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

// writeState writes the state file (mode 0600, never through a symbolic
// link) when its content changed.
func (r *Routing) writeState() error {
	b, err := json.MarshalIndent(&r.st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	if string(b) == r.written {
		return nil
	}
	tmp := r.cfg.StatePath + ".tmp"
	fd, err := unix.Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, werr := f.Write(b)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, r.cfg.StatePath)
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("write state file %s: %w", r.cfg.StatePath, werr)
	}
	r.written = string(b)
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

func familyNum(f string) int {
	if f == "ipv6" {
		return unix.AF_INET6
	}
	return unix.AF_INET
}
