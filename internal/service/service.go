package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/nfmirror/nfmirror/internal/control"
	"github.com/nfmirror/nfmirror/mirror"
	"github.com/nfmirror/nfmirror/nfrules"
	"github.com/nfmirror/nfmirror/route"
)

// Config is what one instance needs.
type Config struct {
	RulesPath string
	Compile   nfrules.Options
	Route     route.Config
	Socket    string // control socket; "" serves none
	QueueLen  int
	// InetReader picks the NFLOG reader for inet channels.
	InetReader mirror.NFLOGReader
	// QueueReader picks the NFQUEUE reader for lossless channels.
	QueueReader mirror.NFQUEUEReader
	Log         *slog.Logger
	// Reload receives a value for every SIGHUP: re-read RulesPath and swap.
	Reload <-chan os.Signal
}

// generationSpan separates the NFLOG group and queue numbers of two
// consecutive generations, so that a reload binds the new groups before the
// new rules start using them and no copy falls between the two.
const generationSpan = 500

// instance is one generation: a compiled plan with the writers and the
// pipeline serving it.
type instance struct {
	plan     *nfrules.Plan
	pipeline *mirror.Pipeline
	writers  map[string]*mirror.Writer // by destination
	cancel   context.CancelFunc
	done     chan error // receives Run's result once
	stopped  bool       // stop ran: done is drained, writers closed
}

// Run installs the rules and mirrors until ctx is cancelled, then removes
// everything it added and returns nil. A bad rules file at start is an
// *InputError and nothing is changed.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &server{cfg: cfg, log: log, started: time.Now()}
	return s.run(ctx)
}

type server struct {
	cfg     Config
	log     *slog.Logger
	started time.Time

	mu    sync.Mutex // guards inst, gen and routing for the status handler
	inst  *instance
	gen   int
	ports *route.Routing // nil while no port is set up (a failed reload)
	dests []string
	nft   *nftables.Conn
}

func (s *server) options(gen int) nfrules.Options {
	opt := s.cfg.Compile
	off := uint16(gen%2) * generationSpan
	opt.NFLOGBase += off
	opt.QueueBase += off
	return opt
}

func (s *server) run(ctx context.Context) (err error) {
	plan, err := Load(s.cfg.RulesPath, s.options(0), true)
	if err != nil {
		return err
	}
	dests := destinations(plan)
	if len(dests) == 0 {
		return &InputError{errNoChannels}
	}

	if s.cfg.Socket != "" {
		var v any
		if control.Query(s.cfg.Socket, &v) == nil {
			return fmt.Errorf("another nfmirror is running (it answers on %s): stop it first, or give this one its own -socket, -table, -fwmark and -state-dir", s.cfg.Socket)
		}
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("open rtnetlink: %w", err)
	}
	defer h.Close()
	if route.Leftover(s.cfg.Route) {
		// A killed instance left its routing behind: clear it, unless an
		// instance is still running.
		removed, ferr := flushIfAbandoned(s.cfg.Socket, s.cfg.Compile.TableName, s.cfg.Route)
		if ferr != nil {
			return fmt.Errorf("set up mirror ports: %w", ferr)
		}
		s.log.Warn("removed what a killed nfmirror left behind", "removed", removed)
	}

	// One lasting netlink connection owns the tables: if this process dies,
	// the kernel removes them (the table owner flag).
	s.nft, err = nftables.New(nftables.AsLasting())
	if err != nil {
		return fmt.Errorf("open nftables netlink: %w", err)
	}
	// The rules go in before the ports come up, so that the port guard
	// already silences the host on them; copies made before the pipeline
	// binds its groups a moment later are dropped by the kernel.
	if err := plan.Install(s.nft); err != nil {
		s.nft.CloseLasting()
		return fmt.Errorf("install nftables rules: %w", err)
	}
	// Shutdown order: rules first, so the kernel stops copying; then the
	// readers and senders; then the routing that carried the copies.
	defer func() {
		if uerr := nfrules.Uninstall(s.nft, s.cfg.Compile.TableName); uerr != nil {
			err = errors.Join(err, fmt.Errorf("remove nftables rules: %w", uerr))
		}
		s.stop(s.inst)
		if s.ports != nil {
			if uerr := s.ports.Undo(); uerr != nil {
				err = errors.Join(err, fmt.Errorf("undo mirror port setup: %w", uerr))
			}
		}
		s.nft.CloseLasting()
	}()

	ports, err := route.Setup(h, s.cfg.Route, dests)
	if err != nil {
		if errors.Is(err, route.ErrNoDevice) {
			return &InputError{err}
		}
		return fmt.Errorf("set up mirror ports: %w", err)
	}
	s.ports, s.dests = ports, dests
	s.logFamiliesOff()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	links := s.watchLinks(watchCtx)

	inst, err := s.start(ctx, plan)
	if err != nil {
		return err
	}
	s.setInstance(inst, 0)
	s.log.Info("mirroring", "rules", s.cfg.RulesPath, "rules_compiled", len(plan.Rules), "channels", len(plan.Channels), "destinations", dests)

	var ctlDone chan error
	if s.cfg.Socket != "" {
		ctl, err := control.Listen(s.cfg.Socket, func() any { return s.status() }, s.log)
		if err != nil {
			return err
		}
		ctlCtx, cancel := context.WithCancel(context.Background())
		ctlDone = make(chan error, 1)
		go func() { ctlDone <- ctl.Run(ctlCtx) }()
		defer func() { cancel(); <-ctlDone }()
	}

	// The writers follow their tables' routes: on every link change, and
	// every lookupInterval for a route an operator moved.
	lookups := time.NewTicker(lookupInterval)
	defer lookups.Stop()
	for {
		select {
		case <-lookups.C:
			s.refreshWriters()
		case <-ctx.Done():
			s.log.Info("stopping: removing rules, routes and interface settings")
			return nil
		case err := <-s.running():
			s.inst.done <- err // for stop, which the deferred shutdown runs
			if err != nil {
				return fmt.Errorf("copy pipeline: %w", err)
			}
			return errors.New("copy pipeline stopped")
		case <-s.cfg.Reload:
			s.reload(ctx, h)
		case name := <-links:
			s.reapply(name)
			s.refreshWriters()
		}
	}
}

// start opens the writers and the pipeline for plan and starts reading its
// channels. The pipeline's sockets are bound when start returns, so rules
// installed after it never copy to a group nobody reads.
func (s *server) start(ctx context.Context, plan *nfrules.Plan) (*instance, error) {
	if s.ports == nil {
		return nil, errors.New("no mirror port is set up")
	}
	writers, err := s.openWriters(plan)
	if err != nil {
		return nil, err
	}
	p, err := mirror.NewPipeline(mirror.Config{
		Channels:    plan.Channels,
		Rules:       plan.Rules,
		Sinks:       sinks(writers),
		QueueLen:    s.cfg.QueueLen,
		InetReader:  s.cfg.InetReader,
		QueueReader: s.cfg.QueueReader,
		Log:         s.log,
	})
	if err != nil {
		closeWriters(writers)
		return nil, fmt.Errorf("start copy pipeline: %w", err)
	}
	s.limitMemory(s.inst, &instance{pipeline: p}) // the old one runs until the swap
	pctx, cancel := context.WithCancel(ctx)
	inst := &instance{plan: plan, pipeline: p, writers: writers, cancel: cancel, done: make(chan error, 1)}
	go func() { inst.done <- p.Run(pctx) }()
	select {
	case <-p.Ready():
		return inst, nil
	case err := <-inst.done:
		cancel()
		closeWriters(writers)
		if err == nil {
			err = errors.New("stopped before it was ready")
		}
		return nil, fmt.Errorf("start copy pipeline: %w", err)
	}
}

// running returns the channel on which the live pipeline reports that it
// ended, or nil (never ready) when no pipeline runs.
func (s *server) running() <-chan error {
	if s.inst == nil || s.inst.stopped {
		return nil
	}
	return s.inst.done
}

// stop stops inst's pipeline and closes its writers; stopping twice is a no-op.
func (s *server) stop(inst *instance) {
	if inst == nil || inst.stopped {
		return
	}
	inst.stopped = true
	inst.cancel()
	if err := <-inst.done; err != nil {
		s.log.Warn("copy pipeline", "err", err)
	}
	closeWriters(inst.writers)
}

// reload re-reads the rules file and swaps to it; on any error the running
// generation stays as it was.
func (s *server) reload(ctx context.Context, h *netlink.Handle) {
	gen := s.gen + 1
	plan, err := Load(s.cfg.RulesPath, s.options(gen), true)
	if err != nil {
		s.log.Error("reload: the rules file has errors; keeping the running rules\n" + nfrules.Describe(err))
		return
	}
	dests := destinations(plan)
	if len(dests) == 0 {
		s.log.Error("reload: the rules use no mirror destination; keeping the running rules")
		return
	}
	if !slices.Equal(dests, s.dests) {
		// New ports: stop copying, rebuild the routing, start again. Copies
		// never travel with a mark that has no rule.
		old := s.inst
		if err := nfrules.Uninstall(s.nft, s.cfg.Compile.TableName); err != nil {
			s.log.Error("reload: remove old rules", "err", err)
			return
		}
		s.stop(old)
		if s.ports != nil {
			if err := s.ports.Undo(); err != nil {
				s.log.Warn("reload: undo old ports", "err", err)
			}
		}
		s.ports, s.dests = nil, nil
		ports, err := route.Setup(h, s.cfg.Route, dests)
		if err != nil {
			s.log.Error("reload: set up new ports; mirroring is stopped until the next good reload", "err", err)
			return
		}
		s.ports, s.dests = ports, dests
		s.logFamiliesOff()
		inst, err := s.start(ctx, plan)
		if err != nil {
			s.log.Error("reload: start pipeline", "err", err)
			return
		}
		if err := plan.Install(s.nft); err != nil {
			s.log.Error("reload: install rules", "err", err)
			s.stop(inst)
			return
		}
		s.setInstance(inst, gen)
		s.log.Info("reloaded", "rules", len(plan.Rules), "destinations", dests)
		return
	}
	inst, err := s.start(ctx, plan)
	if err != nil {
		s.log.Error("reload: start pipeline; keeping the running rules", "err", err)
		return
	}
	if err := plan.Install(s.nft); err != nil {
		s.log.Error("reload: install rules; keeping the running rules", "err", err)
		s.stop(inst)
		return
	}
	old := s.inst
	s.setInstance(inst, gen)
	s.stop(old)
	s.limitMemory(inst)
	s.log.Info("reloaded", "rules", len(plan.Rules), "generation", gen)
}

// runtimeHeadroom is what the Go runtime, the libraries and the control
// socket need besides the pipelines' buffers.
const runtimeHeadroom = 16 << 20

// limitMemory sets the Go runtime's soft memory limit to what the given
// pipelines can hold at most, plus a quarter and runtimeHeadroom, so that the
// garbage collector keeps the heap near the live data instead of letting it
// double under an overload's slow churn. An operator's GOMEMLIMIT wins.
func (s *server) limitMemory(insts ...*instance) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	var n int64
	for _, in := range insts {
		if in != nil && in.pipeline != nil && !in.stopped {
			n += in.pipeline.MemoryBound()
		}
	}
	debug.SetMemoryLimit(runtimeHeadroom + n*5/4)
}

func (s *server) setInstance(inst *instance, gen int) {
	s.mu.Lock()
	s.inst, s.gen = inst, gen
	s.mu.Unlock()
}

// watchLinks reports the name of every mirror port that changes (deleted,
// re-created, flags reset), so its routing can be applied again: routes die
// with a link, and a re-created link comes up without NOARP.
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
		s.log.Warn("cannot watch mirror ports; a port that is re-created will not be set up again", "err", err)
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

// reapply sets the routing of port name up again if it is one of ours.
func (s *server) reapply(name string) {
	if s.ports == nil || !slices.Contains(s.dests, name) {
		return
	}
	if err := s.ports.Reapply(); err != nil {
		s.log.Debug("mirror port not ready", "port", name, "err", err)
		return
	}
	s.log.Debug("mirror port routing applied", "port", name)
}

// lookupInterval is how often the writers look up the devices their tables
// route to, besides on every link change.
const lookupInterval = 2 * time.Second

// refreshWriters has every writer of the running generation look up its
// devices again (a moved route, a changed MTU, a device back).
func (s *server) refreshWriters() {
	if s.inst == nil || s.inst.stopped {
		return
	}
	for name, w := range s.inst.writers {
		if err := w.Refresh(); err != nil {
			s.log.Debug("look up mirror devices", "dest", name, "err", err)
		}
	}
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
