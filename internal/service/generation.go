package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"time"

	"github.com/nfmirror/nfmirror/mirror"
	"github.com/nfmirror/nfmirror/nfrules"
	"github.com/nfmirror/nfmirror/route"
)

// generation is one compiled plan with the writers and the pipeline serving
// it. A reload starts the next generation beside the running one, swaps the
// rules, and retires the old one.
type generation struct {
	plan     *nfrules.Plan
	pipeline *mirror.Pipeline
	sinks    *sinkSet
	cancel   context.CancelFunc
	done     chan error // receives Run's result once
}

// failed returns the channel on which the generation's pipeline reports
// that it ended on its own; nil (never ready) for no generation.
func (g *generation) failed() <-chan error {
	if g == nil {
		return nil
	}
	return g.done
}

// retireTimeout bounds how long a retiring generation may take to write
// what it still holds before it is stopped hard.
const retireTimeout = 3 * time.Second

// swap makes plan the running generation. With the same destinations it
// binds the new generation's groups and queues first, swaps the rules in one
// atomic batch, then retires the old generation once it has written every
// copy the kernel made for it: no copy is lost in the swap. With other
// destinations it stops copying, moves the ports and starts again; if the
// new ports cannot be set up, it goes back to the old plan.
func (s *server) swap(ctx context.Context, plan *nfrules.Plan, gen int) error {
	dests := destinations(plan)
	if s.cur != nil && slices.Equal(dests, s.dests) {
		next, err := s.start(ctx, plan)
		if err != nil {
			return err
		}
		s.limitMemory(next) // both run until the old one is retired
		matched := s.kernelCounters()
		if err := plan.Install(s.nft); err != nil {
			s.stopNow(next)
			return fmt.Errorf("install nftables rules: %w", err)
		}
		old := s.cur
		s.setCurrent(next, gen)
		s.retire(old, matched)
		s.settle()
		return nil
	}
	old, oldGen := s.cur, s.gen
	if old != nil {
		matched := s.kernelCounters()
		if err := nfrules.Uninstall(s.nft, s.inst.Table); err != nil {
			return fmt.Errorf("remove old rules: %w", err)
		}
		s.retire(old, matched)
		s.setCurrent(nil, oldGen)
		if err := s.ports.Undo(); err != nil {
			s.log.Warn("undo old mirror ports", "err", err)
		}
		s.ports, s.dests = nil, nil
	}
	err := s.startPorts(ctx, plan, gen)
	if err == nil || old == nil {
		return err
	}
	if rerr := s.startPorts(ctx, old.plan, oldGen); rerr != nil {
		s.log.Error("mirroring is stopped until the next good reload: the old rules could not be restored", "err", rerr)
		return errors.Join(err, rerr)
	}
	return err
}

// startPorts installs plan's rules, sets up its ports and starts its
// generation, from a state where none of its ports is set up. The rules go
// in before the ports come up, so that the port guard already silences the
// host on them; copies made before the pipeline binds its groups a moment
// later are dropped by the kernel. On error it undoes what it did.
func (s *server) startPorts(ctx context.Context, plan *nfrules.Plan, gen int) error {
	dests := destinations(plan)
	if err := plan.Install(s.nft); err != nil {
		return fmt.Errorf("install nftables rules: %w", err)
	}
	ports, err := route.Setup(s.h, s.routeConfig(), routeDests(plan))
	if err != nil {
		if uerr := nfrules.Uninstall(s.nft, s.inst.Table); uerr != nil {
			err = errors.Join(err, uerr)
		}
		return fmt.Errorf("set up mirror ports: %w", err)
	}
	s.ports, s.dests = ports, dests
	s.logFamiliesOff()
	next, err := s.start(ctx, plan)
	if err != nil {
		errs := []error{err}
		if uerr := nfrules.Uninstall(s.nft, s.inst.Table); uerr != nil {
			errs = append(errs, uerr)
		}
		if uerr := s.ports.Undo(); uerr != nil {
			errs = append(errs, uerr)
		}
		s.ports, s.dests = nil, nil
		return errors.Join(errs...)
	}
	s.setCurrent(next, gen)
	s.settle()
	return nil
}

// routeConfig is the instance's policy routing identity.
func (s *server) routeConfig() route.Config {
	return route.Config{
		Mark: s.inst.Mark, MarkMask: s.inst.MarkMask, Table: s.inst.RouteTable,
		Priority: s.inst.Priority, StatePath: s.inst.StatePath(),
	}
}

// start opens the writers and the pipeline for plan and starts reading its
// channels. The pipeline's sockets are bound when start returns, so rules
// installed after it never copy to a group nobody reads.
func (s *server) start(ctx context.Context, plan *nfrules.Plan) (*generation, error) {
	ss, err := s.openSinks(plan)
	if err != nil {
		return nil, err
	}
	p, err := mirror.NewPipeline(mirror.Config{
		Channels:    pipelineChannels(plan),
		Rules:       pipelineRules(plan),
		Sinks:       ss.sinks(),
		QueueLen:    s.inst.QueueLen,
		InetReader:  s.cfg.InetReader,
		QueueReader: s.cfg.QueueReader,
		Log:         s.log,
	})
	if err != nil {
		ss.close()
		return nil, fmt.Errorf("start copy pipeline: %w", err)
	}
	counters := p.Counters()
	for key, f := range ss.files {
		f.SetStats(func() []mirror.SourceStats { return counters.SourceStats(key) })
	}
	pctx, cancel := context.WithCancel(ctx)
	g := &generation{plan: plan, pipeline: p, sinks: ss, cancel: cancel, done: make(chan error, 1)}
	go func() { g.done <- p.Run(pctx) }()
	select {
	case <-p.Ready():
		return g, nil
	case err := <-g.done:
		cancel()
		ss.close()
		if err == nil {
			err = errors.New("stopped before it was ready")
		}
		return nil, fmt.Errorf("start copy pipeline: %w", err)
	}
}

// stopNow stops a generation that never ran rules, discarding what it
// holds.
func (s *server) stopNow(g *generation) {
	g.cancel()
	<-g.done
	g.sinks.close()
}

// retire ends a generation whose rules are gone: its pipeline reads what the
// kernel still holds for it and writes every queued copy (at most
// retireTimeout, then it is stopped hard), and its counts, with the kernel's
// rule counters read before its rules went (matched), join the totals.
func (s *server) retire(g *generation, matched map[int]nfrules.Counter) {
	if g == nil {
		return
	}
	g.pipeline.Drain()
	var err error
	select {
	case err = <-g.done:
	case <-time.After(retireTimeout):
		s.log.Warn("a retiring generation did not finish writing in time: the rest of its copies are dropped", "timeout", retireTimeout)
		g.cancel()
		err = <-g.done
	}
	g.cancel()
	if err != nil {
		s.log.Warn("copy pipeline", "err", err)
	}
	g.sinks.close()
	s.mu.Lock()
	s.totals.add(g, matched)
	s.mu.Unlock()
}

// setCurrent makes g the running generation (nil: none).
func (s *server) setCurrent(g *generation, gen int) {
	s.mu.Lock()
	s.cur, s.gen = g, gen
	s.mu.Unlock()
}

// kernelCounters reads the running rules' counters, for the totals of the
// generation about to retire. It is nil when they cannot be read.
func (s *server) kernelCounters() map[int]nfrules.Counter {
	if s.cur == nil {
		return nil
	}
	c, err := nfrules.ReadCounters(s.nft, s.inst.Table)
	if err != nil {
		s.log.Warn("read rule counters before the swap", "err", err)
		return nil
	}
	return c
}

// settle fits what the process holds to the generation now running alone:
// capture files no generation writes to are closed, and the runtime's
// memory limit and thread count follow the running plan. It runs once the
// previous generation, if any, is retired.
func (s *server) settle() {
	s.closeUnusedFiles()
	s.limitMemory()
	s.matchProcs()
}

// runtimeHeadroom is what the Go runtime, the libraries and the control
// socket need besides the pipelines' buffers.
const runtimeHeadroom = 16 << 20

// limitMemory sets the Go runtime's soft memory limit to what the running
// pipeline (and extra, a generation starting beside it) can hold at most,
// plus a quarter and runtimeHeadroom, so that the garbage collector keeps
// the heap near the live data instead of letting it double under an
// overload's slow churn. An operator's GOMEMLIMIT wins.
func (s *server) limitMemory(extra ...*generation) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	var n int64
	for _, g := range append(extra, s.cur) {
		if g != nil {
			n += g.pipeline.MemoryBound()
		}
	}
	debug.SetMemoryLimit(runtimeHeadroom + n*5/4)
}

// pipelineChannels is the plan's channels as the pipeline reads them.
func pipelineChannels(plan *nfrules.Plan) []mirror.Channel {
	out := make([]mirror.Channel, len(plan.Channels))
	for i, c := range plan.Channels {
		kind := mirror.NFLOG
		if c.Kind == nfrules.ChannelNFQUEUE {
			kind = mirror.NFQUEUE
		}
		out[i] = mirror.Channel{Kind: kind, Num: c.Num, Dest: c.Dest, Snaplen: c.Snaplen, Netdev: c.Netdev, RuleIDs: c.RuleIDs}
	}
	return out
}

// pipelineRules is the plan's rules as the pipeline counts them.
func pipelineRules(plan *nfrules.Plan) []mirror.Rule {
	out := make([]mirror.Rule, len(plan.Rules))
	for i, r := range plan.Rules {
		out[i] = mirror.Rule{ID: r.ID, Text: r.Text, Hook: mirror.HookNamed(r.Hook.String()), Device: r.Device}
	}
	return out
}
