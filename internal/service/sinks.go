package service

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/nfmirror/nfmirror/internal/encap"
	"github.com/nfmirror/nfmirror/mirror"
	"github.com/nfmirror/nfmirror/nfrules"
	"github.com/nfmirror/nfmirror/route"
)

// destinations lists the names of the local mirror ports a plan writes
// copies to, in first-use order: port i gets fwmark MARK|i and routing
// table TABLE+i.
func destinations(plan *nfrules.Plan) []string {
	var ports []string
	for _, d := range plan.Destinations() {
		if d.Local() {
			ports = append(ports, d.Port)
		}
	}
	return ports
}

// routeDests is the plan's local ports as route.Setup takes them.
func routeDests(plan *nfrules.Plan) []route.Dest {
	var ds []route.Dest
	for _, d := range destinations(plan) {
		ds = append(ds, route.Dest{Name: d, Shared: plan.Shared(d)})
	}
	return ds
}

// sinkSet is what a generation writes to: a writer per local port, a
// collector per remote collector, a capture file per file destination (the
// files belong to the server and outlive generations that keep them).
type sinkSet struct {
	writers    map[string]*mirror.Writer
	collectors map[string]*mirror.Collector
	files      map[string]*mirror.File
}

// sinks returns every sink by destination key, as the pipeline takes them.
func (ss *sinkSet) sinks() map[string]mirror.Sink {
	out := map[string]mirror.Sink{}
	for k, w := range ss.writers {
		out[k] = w
	}
	for k, c := range ss.collectors {
		out[k] = c
	}
	for k, f := range ss.files {
		out[k] = f
	}
	return out
}

// close closes the writers and collectors; files stay (see
// server.closeUnusedFiles).
func (ss *sinkSet) close() {
	for _, w := range ss.writers {
		w.Close()
	}
	for _, c := range ss.collectors {
		c.Close()
	}
}

// refresh has every writer and collector look up its devices and routes
// again.
func (ss *sinkSet) refresh(log *slog.Logger) {
	for name, w := range ss.writers {
		if err := w.Refresh(); err != nil {
			log.Debug("look up mirror devices", "dest", name, "err", err)
		}
	}
	for name, c := range ss.collectors {
		if err := c.Refresh(); err != nil {
			log.Debug("look up the route to a collector", "dest", name, "err", err)
		}
	}
}

// openSinks opens the sinks of every destination of plan: writers on the
// ports s set up, collectors, and capture files (reusing an open file whose
// settings did not change, so that a reload keeps writing to it).
func (s *server) openSinks(plan *nfrules.Plan) (*sinkSet, error) {
	ss := &sinkSet{writers: map[string]*mirror.Writer{}, collectors: map[string]*mirror.Collector{}, files: map[string]*mirror.File{}}
	fail := func(err error) (*sinkSet, error) {
		ss.close()
		return nil, err
	}
	var ports []route.Port
	if s.ports != nil {
		ports = s.ports.Ports()
	}
	for _, port := range ports {
		w, err := mirror.NewWriter(port, s.log)
		if err != nil {
			return fail(fmt.Errorf("open writer for %s: %w", port.Name, err))
		}
		ss.writers[port.Name] = w
	}
	for i, d := range plan.Destinations() {
		key := d.Key()
		switch d.Kind {
		case nfrules.DestPort:
			if ss.writers[key] == nil {
				return fail(fmt.Errorf("mirror port %q is not set up", key))
			}
		case nfrules.DestFile:
			f, err := s.file(d)
			if err != nil {
				return fail(fmt.Errorf("open capture file %s: %w", d.Path, err))
			}
			ss.files[key] = f
		default:
			c, err := mirror.NewCollector(collectorConfig(d, s.inst.DestMark(i)), s.log)
			if err != nil {
				return fail(fmt.Errorf("open collector %s: %w", key, err))
			}
			ss.collectors[key] = c
		}
	}
	return ss, nil
}

// collectorConfig is the collector of destination d, whose tunnel packets
// carry mark.
func collectorConfig(d nfrules.Destination, mark uint32) mirror.CollectorConfig {
	cfg := mirror.CollectorConfig{Name: d.Key(), Addr: d.Addr, Mark: mark}
	switch d.Kind {
	case nfrules.DestVXLAN:
		cfg.Format, cfg.VNI, cfg.Port = encap.VXLAN, d.VNI, d.UDPPort
	case nfrules.DestGRE:
		cfg.Format = encap.GRE
	case nfrules.DestERSPAN:
		cfg.Format, cfg.Session = encap.ERSPAN2, d.Session
		if d.Version == 3 {
			cfg.Format = encap.ERSPAN3
		}
	}
	return cfg
}

// fileConfig is the capture file of destination d.
func fileConfig(d nfrules.Destination) mirror.FileConfig {
	return mirror.FileConfig{Path: d.Path, RotateBytes: d.RotateBytes, RotateEvery: d.RotateEvery, Keep: d.Keep}
}

// file returns the open capture file of d, opening it if no generation has
// it open with the same settings.
func (s *server) file(d nfrules.Destination) (*mirror.File, error) {
	cfg := fileConfig(d)
	if f := s.files[cfg]; f != nil {
		return f, nil
	}
	f, err := mirror.NewFile(cfg, s.log)
	if err != nil {
		return nil, err
	}
	f.SetDevNames(func(ifindex int) string {
		if ifi, err := net.InterfaceByIndex(ifindex); err == nil {
			return ifi.Name
		}
		return ""
	})
	s.files[cfg] = f
	return f, nil
}

// closeUnusedFiles closes the capture files the running generation no
// longer writes to (a reload changed or dropped their statements), or all
// of them when none runs.
func (s *server) closeUnusedFiles() {
	for cfg, f := range s.files {
		used := false
		if s.cur != nil {
			for _, g := range s.cur.sinks.files {
				used = used || g == f
			}
		}
		if !used {
			if err := f.Close(); err != nil {
				s.log.Warn("close capture file", "path", cfg.Path, "err", err)
			}
			delete(s.files, cfg)
		}
	}
}

// lookupInterval is how often the writers look up the devices their tables
// route to, besides on every link change.
const lookupInterval = 2 * time.Second

// refreshWriters has every writer and collector of the running generation
// look up its devices again (a moved route, a changed MTU or carrier, a
// device back, a new next hop).
func (s *server) refreshWriters() {
	if s.cur != nil {
		s.cur.sinks.refresh(s.log)
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
