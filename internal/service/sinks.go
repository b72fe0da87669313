package service

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/nfmirror/nfmirror/mirror"
	"github.com/nfmirror/nfmirror/nfrules"
	"github.com/nfmirror/nfmirror/route"
)

// destinations lists the mirror destinations a plan writes copies to, in
// first-use order: destination i gets fwmark MARK|i and routing table
// TABLE+i.
func destinations(plan *nfrules.Plan) []string {
	var dests []string
	for _, c := range plan.Channels {
		if !slices.Contains(dests, c.Dest) {
			dests = append(dests, c.Dest)
		}
	}
	return dests
}

// routeDests is destinations as route.Setup takes them.
func routeDests(plan *nfrules.Plan) []route.Dest {
	var ds []route.Dest
	for _, d := range destinations(plan) {
		ds = append(ds, route.Dest{Name: d, Shared: plan.Shared(d)})
	}
	return ds
}

// openWriters opens one writer per destination of plan, on the ports s set
// up: every copy of a destination, IP packet or Ethernet frame, leaves
// through its writer.
func (s *server) openWriters(plan *nfrules.Plan) (map[string]*mirror.Writer, error) {
	writers := map[string]*mirror.Writer{}
	for _, port := range s.ports.Ports() {
		if writers[port.Name] != nil {
			continue
		}
		w, err := mirror.NewWriter(port, s.log)
		if err != nil {
			closeWriters(writers)
			return nil, fmt.Errorf("open writer for %s: %w", port.Name, err)
		}
		writers[port.Name] = w
	}
	for _, c := range plan.Channels {
		if writers[c.Dest] == nil {
			closeWriters(writers)
			return nil, fmt.Errorf("mirror port %q is not set up", c.Dest)
		}
	}
	return writers, nil
}

func closeWriters(ws map[string]*mirror.Writer) {
	for _, w := range ws {
		w.Close()
	}
}

// sinks returns the writers as the pipeline takes them.
func sinks(ws map[string]*mirror.Writer) map[string]mirror.Sink {
	out := make(map[string]mirror.Sink, len(ws))
	for name, w := range ws {
		out[name] = w
	}
	return out
}

// lookupInterval is how often the writers look up the devices their tables
// route to, besides on every link change.
const lookupInterval = 2 * time.Second

// refreshWriters has every writer of the running generation look up its
// devices again (a moved route, a changed MTU or carrier, a device back).
func (s *server) refreshWriters() {
	if s.cur == nil {
		return
	}
	for name, w := range s.cur.writers {
		if err := w.Refresh(); err != nil {
			s.log.Debug("look up mirror devices", "dest", name, "err", err)
		}
	}
}

// linkChanged applies a mirror port's routing again if the link is one of
// ours (routes die with a link, and a re-created link comes up without
// NOARP), and has the writers look again (MTU, carrier).
func (s *server) linkChanged(name string) {
	if s.ports != nil && slices.Contains(s.dests, name) {
		if err := s.ports.Reapply(); err != nil {
			s.log.Debug("mirror port not ready", "port", name, "err", err)
		}
	}
	s.refreshWriters()
}

// logFamiliesOff says once, at setup, which IP families the host has turned
// off on a mirror port: their copies cannot leave and are counted as errors.
func (s *server) logFamiliesOff() {
	for _, p := range s.ports.Ports() {
		for _, f := range p.FamilyOff {
			s.log.Warn("an IP family is off on the mirror port: its copies are counted as errors (NO ROUTE), the other family is mirrored", "port", p.Name, "family", f)
		}
	}
}

// watchLinks reports the name of every link that changes (deleted,
// re-created, flags, MTU or carrier changed).
func (s *server) watchLinks(ctx context.Context) <-chan string {
	out := make(chan string, 16)
	updates := make(chan netlink.LinkUpdate, 64)
	err := netlink.LinkSubscribeWithOptions(updates, ctx.Done(), netlink.LinkSubscribeOptions{
		ErrorCallback: func(err error) {
			if ctx.Err() == nil { // the subscription's socket is closed on shutdown
				s.log.Warn("link updates", "err", err)
			}
		},
	})
	if err != nil {
		s.log.Warn("cannot watch mirror ports; changes are picked up every few seconds only", "err", err)
		return out
	}
	go func() {
		for u := range updates {
			select {
			case out <- u.Attrs().Name:
			default: // a burst: the pending one covers it
			}
		}
	}()
	return out
}
