package service

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nfmirror/nfmirror/internal/config"
	"github.com/nfmirror/nfmirror/nfrules"
)

// InputError wraps an error in the user's input (the rules file, a flag, or
// a device it names that does not exist or cannot be a mirror port):
// nothing was changed, and the CLI prints Err with nfrules.Describe and
// exits 2.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// maxRulesFile bounds the size of a rules file.
const maxRulesFile = 16 << 20

// CompileOptions are the compiler options of an instance's generation gen:
// consecutive generations use group and queue numbers config.GenerationSpan
// apart, so that a reload binds the new ones before the new rules use them.
func CompileOptions(inst config.Instance, gen int) nfrules.Options {
	inst = inst.WithDefaults()
	off := uint16(gen%2) * config.GenerationSpan
	return nfrules.Options{
		TableName: inst.Table, Mark: inst.Mark, MarkMask: inst.MarkMask,
		NFLOGBase: inst.NFLOGBase + off, QueueBase: inst.QueueBase + off,
	}
}

// load loads the rules file for generation gen, with this machine's devices
// checked.
func (s *server) load(gen int) (*nfrules.Plan, error) {
	plan, err := Load(s.cfg.RulesPath, CompileOptions(s.inst, gen), DevicesOf(s.inst))
	if err == nil && len(plan.Channels) == 0 {
		err = &InputError{errNoChannels}
	}
	return plan, err
}

// Devices says how Load checks the devices a rules file names against this
// machine.
type Devices struct {
	// Own reports whether a routing table is one of the instance's own: its
	// routes to a destination do not make it a port the host uses.
	Own func(table int) bool
}

// DevicesOf is the device check of an instance.
func DevicesOf(inst config.Instance) *Devices {
	inst = inst.WithDefaults()
	return &Devices{Own: func(t int) bool { return t >= inst.RouteTable && t < inst.RouteTable+config.MaxDests }}
}

// Load parses, checks and compiles the rules file at path. With devices,
// every mirror destination and every device a netdev block reads must exist
// on this machine, and every destination must be fit to be a mirror port
// (see checkPort), as apply needs; check passes nil so a file can be checked
// anywhere. The error, if any, is an *InputError.
func Load(path string, opt nfrules.Options, devices *Devices) (*nfrules.Plan, error) {
	if err := regularFile(path); err != nil {
		return nil, &InputError{err}
	}
	rs, err := nfrules.ParseFile(path)
	if err != nil {
		return nil, &InputError{err}
	}
	if devices != nil {
		if err := devices.check(rs); err != nil {
			addSource(err.(nfrules.ErrorList))
			return nil, &InputError{err}
		}
	}
	plan, err := nfrules.Compile(rs, opt)
	if err != nil {
		return nil, &InputError{err}
	}
	return plan, nil
}

// regularFile refuses what is not a regular file of sane size: a FIFO or a
// device would block the reader (and a reload) for good.
func regularFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file (%s)", path, fi.Mode().Type())
	}
	if fi.Size() > maxRulesFile {
		return fmt.Errorf("%s: %d bytes, more than a rules file may have (%d)", path, fi.Size(), maxRulesFile)
	}
	return nil
}

// checkDevices reports, at its position in the file, every device the
// ruleset names that this machine does not have, and every destination that
// cannot be a mirror port.
func (d *Devices) check(rs *nfrules.Ruleset) error {
	h, err := netlink.NewHandle()
	if err != nil {
		return nfrules.ErrorList{&nfrules.Error{Msg: fmt.Sprintf("open rtnetlink: %v", err)}}
	}
	defer h.Close()
	var errs nfrules.ErrorList
	seen := map[string]bool{}
	missing := func(name string) bool {
		if v, ok := seen[name]; ok {
			return !v
		}
		_, err := h.LinkByName(name)
		seen[name] = err == nil
		return err != nil
	}
	checked := map[string]bool{}
	named := rs.InterfaceNames()
	for _, b := range rs.Blocks {
		if b.Device != "" && missing(b.Device) {
			errs = append(errs, &nfrules.Error{Pos: b.Pos, Msg: fmt.Sprintf("%s %q: no such interface", b.Hook, b.Device)})
		}
		for _, r := range b.Rules {
			for _, m := range r.Mirrors {
				if !m.Target().Local() {
					continue // a collector or a file: checked when opened
				}
				switch {
				case missing(m.Dest):
					errs = append(errs, &nfrules.Error{Pos: m.Pos, Msg: fmt.Sprintf("mirror to %q: no such interface", m.Dest)})
				case !checked[m.Dest]:
					checked[m.Dest] = true
					err := checkPort(h, m.Dest, rs.Shared(m.Dest), d.Own)
					if err == nil && !rs.Shared(m.Dest) {
						err = selected(named, m.Dest)
					}
					if err != nil {
						errs = append(errs, &nfrules.Error{Pos: m.Pos, Msg: err.Error()})
					}
				}
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// errProductionPort explains why a device the host uses is refused.
var errProductionPort = errors.New(`a mirror port carries copies only, and nfmirror would turn ARP off there and drop the host's own packets; say "shared" after the destination to mirror onto it anyway`)

// checkPort refuses a destination that cannot be a mirror port: the
// loopback device always, and, unless the operator says it is shared, any
// device the host itself sends or receives traffic through: one with an
// address other than a link-local one, or that a route other than a local
// or link-local one (or nfmirror's own) points at.
func checkPort(h *netlink.Handle, name string, shared bool, own func(table int) bool) error {
	link, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("mirror to %q: %w", name, err)
	}
	a := link.Attrs()
	if a.Flags&net.FlagLoopback != 0 || a.EncapType == "loopback" {
		return fmt.Errorf("mirror to %q: the loopback device cannot be a mirror port", name)
	}
	if shared {
		return nil
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("mirror to %q: list its addresses: %w", name, err)
	}
	for _, ad := range addrs {
		ip, _ := netip.AddrFromSlice(ad.IP)
		if !ip.Unmap().IsLinkLocalUnicast() {
			return fmt.Errorf("mirror to %q: the host uses it (address %s): %w", name, ad.IPNet, errProductionPort)
		}
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: a.Index, Table: unix.RT_TABLE_UNSPEC},
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("mirror to %q: list routes: %w", name, err)
	}
	for _, rt := range routes {
		if rt.Table == unix.RT_TABLE_LOCAL || own(rt.Table) || rt.Dst != nil && linkLocalOrMulticast(rt.Dst) {
			continue
		}
		dst := "default"
		if rt.Dst != nil {
			dst = rt.Dst.String()
		}
		return fmt.Errorf("mirror to %q: the host routes through it (%s table %d): %w", name, dst, rt.Table, errProductionPort)
	}
	return nil
}

// selected refuses a destination the rules themselves select traffic on
// (iifname, oifname, iif, oif): a device that carries production traffic.
func selected(named map[string]nfrules.Pos, dest string) error {
	for name, pos := range named {
		if nfrules.MatchesInterface(name, dest) {
			return fmt.Errorf("mirror to %q: the rules select the host's traffic on it (%q at %s): %w", dest, name, pos, errProductionPort)
		}
	}
	return nil
}

// linkLocalOrMulticast reports whether a route's destination is link-local
// or multicast, as every IPv6 device has.
func linkLocalOrMulticast(dst *net.IPNet) bool {
	ip, ok := netip.AddrFromSlice(dst.IP)
	return ok && (ip.Unmap().IsLinkLocalUnicast() || ip.Unmap().IsMulticast())
}

// addSource fills in the source line of errors found after parsing, so
// that they print with a caret like the parser's own.
func addSource(errs nfrules.ErrorList) {
	files := map[string][]string{}
	for _, e := range errs {
		if e.Source != "" || !e.Pos.IsValid() {
			continue
		}
		lines, ok := files[e.Pos.File]
		if !ok {
			data, _ := os.ReadFile(e.Pos.File)
			lines = strings.Split(string(data), "\n")
			files[e.Pos.File] = lines
		}
		if e.Pos.Line <= len(lines) {
			e.Source = strings.TrimRight(lines[e.Pos.Line-1], "\r")
		}
	}
}

var errNoChannels = errors.New("the rules use no mirror destination")
