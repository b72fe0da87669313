package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/nfmirror/nfmirror/internal/config"
	"github.com/nfmirror/nfmirror/internal/control"
	"github.com/nfmirror/nfmirror/internal/sdnotify"
	"github.com/nfmirror/nfmirror/mirror"
	"github.com/nfmirror/nfmirror/nfrules"
	"github.com/nfmirror/nfmirror/route"
)

// Config is what one instance needs.
type Config struct {
	RulesPath string
	// Instance is the identity and files of the instance; zero fields take
	// the defaults.
	Instance config.Instance
	// InetReader picks the NFLOG reader for groups that carry only IP
	// copies.
	InetReader mirror.NFLOGReader
	// QueueReader picks the NFQUEUE reader for lossless channels.
	QueueReader mirror.NFQUEUEReader
	Log         *slog.Logger
	// Reload receives a value for every SIGHUP: re-read RulesPath and swap.
	Reload <-chan os.Signal
	// SocketGroup, when set, owns the control socket (mode 0660) so that
	// its members can read status; otherwise only the owner can (0600).
	SocketGroup string
	// Notify, when set, tells the service manager how the instance is
	// doing (sd_notify assignments: READY=1, RELOADING=1, STOPPING=1,
	// STATUS=...).
	Notify func(states ...string)
	// Serving, when set, is called once the instance mirrors, with a
	// function returning the same status document the control socket
	// serves (for metrics).
	Serving func(status func() Status)
}

// Run installs the rules and mirrors until ctx is cancelled, then removes
// everything it added and returns nil. A bad rules file at start is an
// *InputError and nothing is changed.
func Run(ctx context.Context, cfg Config) error {
	cfg.Instance = cfg.Instance.WithDefaults()
	if err := cfg.Instance.Validate(); err != nil {
		return &InputError{err}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Notify == nil {
		cfg.Notify = func(...string) {}
	}
	if err := checkCapabilities(); err != nil {
		return err
	}
	s := &server{cfg: cfg, inst: cfg.Instance, log: cfg.Log, started: time.Now(), totals: newTotals(), files: map[mirror.FileConfig]*mirror.File{}}
	return s.run(ctx)
}

type server struct {
	cfg     Config
	inst    config.Instance
	log     *slog.Logger
	started time.Time

	// Owned by run's goroutine.
	nft   *nftables.Conn // lasting: the tables vanish when it closes
	h     *netlink.Handle
	ports *route.Routing // nil while no port is set up
	dests []string

	mu            sync.Mutex // guards what status reads below
	cur           *generation
	gen           int
	reloads       int
	failedReloads int
	lastReload    time.Time
	totals        *totals // counts of retired generations
	status        statusCache

	files map[mirror.FileConfig]*mirror.File // capture files open, by settings
}

func (s *server) run(ctx context.Context) (err error) {
	lock, err := s.inst.Lock()
	if err != nil {
		if errors.Is(err, config.ErrRunning) {
			return fmt.Errorf("%w: stop it first, or give this one its own -table", err)
		}
		return err
	}
	defer lock.Release()
	if err := s.flushLeftovers(); err != nil {
		return err
	}
	plan, err := s.load(0)
	if err != nil {
		return err
	}
	if s.h, err = netlink.NewHandle(); err != nil {
		return fmt.Errorf("open rtnetlink: %w", err)
	}
	defer s.h.Close()
	// One lasting netlink connection owns the tables: if this process
	// dies, the kernel removes them (the table owner flag).
	if s.nft, err = nftables.New(nftables.AsLasting()); err != nil {
		return fmt.Errorf("open nftables netlink: %w", err)
	}
	defer s.nft.CloseLasting()
	if err := nfrules.CheckTableFree(s.nft, s.inst.Table); err != nil {
		return err
	}
	ctl, err := control.Listen(s.inst.SocketPath(), s.cfg.SocketGroup, s.statusDoc, s.log)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.shutdown()) }()
	if err := s.swap(ctx, plan, 0); err != nil {
		if errors.Is(err, route.ErrNoDevice) {
			return &InputError{err}
		}
		return err
	}
	s.log.Info("mirroring", "rules", s.cfg.RulesPath, "rules_compiled", len(plan.Rules), "channels", len(plan.Channels), "destinations", s.dests)
	if s.cfg.Serving != nil {
		s.cfg.Serving(func() Status { return s.statusDoc().(Status) })
	}

	ctlCtx, stopCtl := context.WithCancel(context.Background())
	ctlDone := make(chan error, 1)
	go func() { ctlDone <- ctl.Run(ctlCtx) }()
	defer func() { stopCtl(); <-ctlDone }()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	links := s.watchLinks(watchCtx)
	// The writers follow their tables' routes: on every link change, and
	// every lookupInterval for a route an operator moved.
	lookups := time.NewTicker(lookupInterval)
	defer lookups.Stop()
	s.cfg.Notify("READY=1", "STATUS="+s.summary())
	for {
		select {
		case <-ctx.Done():
			s.cfg.Notify("STOPPING=1")
			s.log.Info("stopping: removing rules, routes and interface settings")
			return nil
		case err := <-s.cur.failed():
			return fmt.Errorf("copy pipeline: %w", err)
		case <-s.cfg.Reload:
			s.reload(ctx)
		case name := <-links:
			s.linkChanged(name)
		case <-lookups.C:
			s.refreshWriters()
		}
	}
}

// shutdown removes the rules first, so that the kernel stops copying; then
// drains the running generation, so that every copy already made goes out;
// then undoes the ports.
func (s *server) shutdown() error {
	var errs []error
	if err := nfrules.Uninstall(s.nft, s.inst.Table); err != nil {
		errs = append(errs, fmt.Errorf("remove nftables rules: %w", err))
	}
	s.retire(s.cur, nil)
	s.setCurrent(nil, s.gen)
	s.closeUnusedFiles()
	if s.ports != nil {
		if err := s.ports.Undo(); err != nil {
			errs = append(errs, fmt.Errorf("undo mirror port setup: %w", err))
		}
		s.ports, s.dests = nil, nil
	}
	return errors.Join(errs...)
}

// flushLeftovers clears what a killed instance with this identity left
// behind (the caller holds the lock, so that instance is not running): its
// ip rules, routes and link flags, as its state file records them. Its
// tables went with it (the owner flag).
func (s *server) flushLeftovers() error {
	if !route.Leftover(s.inst.StatePath()) {
		return nil
	}
	removed, err := route.Flush(nil, s.inst.StatePath())
	if err != nil {
		return fmt.Errorf("clear what a killed nfmirror left behind: %w", err)
	}
	s.log.Warn("removed what a killed nfmirror left behind", "removed", removed)
	return nil
}

// reload re-reads the rules file and swaps to it; on any error the running
// generation stays as it was.
func (s *server) reload(ctx context.Context) {
	s.cfg.Notify(sdnotify.Reloading()...)
	defer func() { s.cfg.Notify("READY=1", "STATUS="+s.summary()) }()
	gen := s.gen + 1
	plan, err := s.load(gen)
	if err == nil {
		err = s.swap(ctx, plan, gen)
	}
	s.mu.Lock()
	s.lastReload = time.Now()
	if err != nil {
		s.failedReloads++
	} else {
		s.reloads++
	}
	s.mu.Unlock()
	var in *InputError
	switch {
	case errors.As(err, &in):
		s.log.Error("reload: the rules file has errors; keeping the running rules\n" + nfrules.Describe(in.Err))
	case err != nil:
		s.log.Error("reload failed; keeping the running rules", "err", err)
	default:
		s.log.Info("reloaded", "rules", len(plan.Rules), "generation", gen, "destinations", s.dests)
	}
}

// summary is the one-line state for the service manager.
func (s *server) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return "not mirroring: the last reload failed"
	}
	return fmt.Sprintf("mirroring %d rules to %s (generation %d, %d reloads, %d failed)",
		len(s.cur.plan.Rules), strings.Join(s.dests, ", "), s.gen, s.reloads, s.failedReloads)
}
