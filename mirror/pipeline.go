package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// DefaultQueueLen is the number of copies a channel buffers between its
// reader and its sink when Config.QueueLen is 0.
const DefaultQueueLen = 4096

// Config says which channels a Pipeline reads and where it replays copies.
type Config struct {
	// Channels are the NFLOG groups and NFQUEUE queues to read, as planned by
	// the compiler.
	Channels []Channel
	// Rules are the planned rules, for per-rule counters.
	Rules []Rule
	// Sinks holds one sink per destination named by a channel. The caller
	// builds them and closes them after Run returns.
	Sinks map[string]Sink
	// QueueLen bounds the copies buffered per channel (DefaultQueueLen if 0).
	QueueLen int
	// NetNS is a file descriptor of the network namespace to open the
	// kernel sockets in; 0 means the caller's namespace.
	NetNS int
	// InetReader chooses the NFLOG reader for inet channels; the zero value
	// is the builtin reader. Netdev channels always use the builtin reader:
	// go-nflog v2.3.0 drops their messages.
	InetReader NFLOGReader
	// QueueReader chooses the NFQUEUE reader of lossless channels; the zero
	// value is the builtin reader.
	QueueReader NFQUEUEReader
	// Log receives diagnostics; nil discards them.
	Log *slog.Logger
}

// NFLOGReader names an implementation of the NFLOG reader.
type NFLOGReader int

// The NFLOG readers. The builtin reader is the default: it reads a batch
// with one recvmsg into a reused buffer and allocates nothing per copy,
// where go-nflog makes two recvmsg per datagram and allocates per copy
// (BenchmarkPipelineNetnsReaderCost measures both).
const (
	// ReaderBuiltin reads with nfmirror's own reader: one recvmsg per
	// datagram into a reused buffer, no allocation per copy.
	ReaderBuiltin NFLOGReader = iota
	// ReaderGoNFLOG reads inet NFLOG groups with github.com/florianl/go-nflog.
	ReaderGoNFLOG
)

// NFQUEUEReader names an implementation of the NFQUEUE reader.
type NFQUEUEReader int

// The NFQUEUE readers. The builtin reader is the default (see
// bench/RESULTS.md for what each sustains).
const (
	// QueueReaderBuiltin reads with nfmirror's own reader: recvmmsg of up to
	// 64 queued packets, decoded in place, and one verdict per read.
	QueueReaderBuiltin NFQUEUEReader = iota
	// QueueReaderGoNFQueue reads with github.com/florianl/go-nfqueue and
	// batches verdicts on a timer (its callback does not say where a read
	// ends).
	QueueReaderGoNFQueue
)

// Pipeline reads copies from the kernel and hands them to sinks: one reader
// goroutine per channel pushes into a bounded queue, one goroutine per
// destination drains its queues into the Sink. A reader never waits for a
// sink; when a queue is full the copy is dropped and counted.
type Pipeline struct {
	cfg      Config
	log      *slog.Logger
	counters *Counters
	chans    []*chanState
	dests    []*destWorker
	ready    chan struct{}
	ran      bool
	mu       sync.Mutex

	drain     chan struct{} // closed by Drain
	drainOnce sync.Once
}

// chanState is the reader side of one channel.
type chanState struct {
	ch       Channel
	idx      int
	q        *queue
	cnt      *chanCounters
	counters *Counters
	// defRule is the rule to credit when a copy does not say: the channel's
	// only rule, or -1.
	defRule int
	// lossless channels (NFQUEUE) wait for room in a full queue, up to
	// losslessWait, instead of dropping at once: the kernel holds the
	// packets meanwhile, and fails open past its own limit.
	lossless bool
	wait     *time.Timer
	done     <-chan struct{} // closed when the pipeline stops
}

// losslessWait is how long a lossless channel's reader waits for room in
// its queue before it drops a copy: longer than any burst a working port
// takes to drain, short enough that a port that stopped taking copies does
// not stall the reader (fail-open bounds what production waits anyway).
const losslessWait = 100 * time.Millisecond

// destWorker drains the queues of one destination into its sink.
type destWorker struct {
	name   string
	sink   Sink
	queues []*queue
	wake   chan struct{}
	cnt    *destCounters
	rules  *Counters
	log    *slog.Logger
}

// NewPipeline checks cfg and prepares the queues and counters. It opens no
// socket: Run does.
func NewPipeline(cfg Config) (*Pipeline, error) {
	if cfg.QueueLen == 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.QueueLen < 0 {
		return nil, fmt.Errorf("queue length %d: must be positive", cfg.QueueLen)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{
		cfg:      cfg,
		log:      log,
		counters: newCounters(cfg.Rules, cfg.Channels),
		ready:    make(chan struct{}),
		drain:    make(chan struct{}),
	}
	byDest := make(map[string]*destWorker)
	seen := make(map[[2]int]bool)
	for i, ch := range cfg.Channels {
		key := [2]int{int(ch.Kind), int(ch.Num)}
		if seen[key] {
			return nil, fmt.Errorf("channel %s %d: listed twice", ch.Kind, ch.Num)
		}
		seen[key] = true
		if ch.Kind == NFQUEUE && ch.Netdev {
			return nil, fmt.Errorf("nfqueue %d: netdev channels can only be nflog", ch.Num)
		}
		d := byDest[ch.Dest]
		if d == nil {
			sink := cfg.Sinks[ch.Dest]
			if sink == nil {
				return nil, fmt.Errorf("channel %s %d: no sink for destination %q", ch.Kind, ch.Num, ch.Dest)
			}
			d = &destWorker{
				name:  ch.Dest,
				sink:  sink,
				wake:  make(chan struct{}, 1),
				cnt:   p.counters.dests[ch.Dest],
				rules: p.counters,
				log:   log,
			}
			byDest[ch.Dest] = d
			p.dests = append(p.dests, d)
		}
		cs := &chanState{
			ch:       ch,
			idx:      i,
			q:        newQueue(cfg.QueueLen, d.wake),
			cnt:      &p.counters.chans[i],
			counters: p.counters,
			defRule:  -1,
		}
		if len(ch.RuleIDs) == 1 {
			cs.defRule = ch.RuleIDs[0]
		}
		cs.lossless = ch.Kind == NFQUEUE
		d.queues = append(d.queues, cs.q)
		p.chans = append(p.chans, cs)
	}
	return p, nil
}

// Counters returns the pipeline's live counters.
func (p *Pipeline) Counters() *Counters { return p.counters }

// Ready is closed once Run has opened and bound every source: copies the
// kernel makes from then on are read.
func (p *Pipeline) Ready() <-chan struct{} { return p.ready }

// source is one kernel channel being read.
type source interface {
	// Run reads until ctx is cancelled and returns nil then.
	Run(ctx context.Context) error
	// Close releases the source's socket; call it after Run returned.
	Close() error
}

// Run opens every source, then reads and writes copies until ctx is
// cancelled or a Drain completes; it returns nil then, after every goroutine
// it started has returned and every socket it opened is closed. Cancelling
// ctx discards the copies still queued; a drain writes them all. It returns
// an error when a source cannot be opened or fails. Sinks are left open.
// Run may be called once.
func (p *Pipeline) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.ran {
		p.mu.Unlock()
		return errors.New("pipeline: Run called twice")
	}
	p.ran = true
	p.mu.Unlock()

	g, ctx := errgroup.WithContext(ctx)
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	srcs := make([]source, 0, len(p.chans))
	defer func() {
		for _, s := range srcs {
			_ = s.Close()
		}
	}()
	for _, cs := range p.chans {
		cs.done = readCtx.Done() // before the source starts reading
		s, err := openSource(cs, p.cfg, p.log)
		if err != nil {
			return fmt.Errorf("open %s %d: %w", cs.ch.Kind, cs.ch.Num, err)
		}
		srcs = append(srcs, s)
	}
	close(p.ready)
	p.log.Info("pipeline running", "channels", len(srcs), "destinations", len(p.dests))

	readersDone := make(chan struct{})
	var readers errgroup.Group
	for i, s := range srcs {
		ch := p.chans[i].ch
		readers.Go(func() error {
			if err := s.Run(readCtx); err != nil {
				return fmt.Errorf("read %s %d: %w", ch.Kind, ch.Num, err)
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(readersDone)
		return readers.Wait()
	})
	g.Go(func() error {
		select {
		case <-ctx.Done():
		case <-p.drain:
			// The kernel makes no more copies for these channels: read
			// until they have been quiet for a while (a batch the kernel
			// still holds is flushed within nflogTimeout), then stop.
			p.waitQuiet(ctx)
			stopReading()
		}
		return nil
	})
	for _, d := range p.dests {
		g.Go(func() error { return d.Run(ctx, readersDone) })
	}
	return g.Wait()
}

// drainQuiet is how long every channel of a draining pipeline must receive
// nothing before its readers stop: longer than the kernel holds a batch
// (nflogTimeout, 10 ms).
const drainQuiet = 50 * time.Millisecond

// Drain asks a running pipeline to finish gracefully, once the kernel no
// longer copies to its channels (the rules that used them are gone): its
// readers read what the kernel still has for them until the channels have
// been quiet for a moment, its writers write everything queued, and Run
// returns nil. Drain does not wait; calling it twice is harmless.
func (p *Pipeline) Drain() {
	p.drainOnce.Do(func() { close(p.drain) })
}

// waitQuiet returns once no channel received a copy for drainQuiet, or ctx
// is done.
func (p *Pipeline) waitQuiet(ctx context.Context) {
	received := func() uint64 {
		var n uint64
		for _, cs := range p.chans {
			n += cs.cnt.received.Load()
		}
		return n
	}
	t := time.NewTicker(drainQuiet)
	defer t.Stop()
	last := received()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n := received(); n != last {
			last = n
			continue
		}
		return
	}
}

// deliver counts one copy read from the kernel and queues it for the sink.
// parts are concatenated into the packet; m says what else the reader knows
// of it (m.l2: a whole Ethernet frame rather than an IP packet). It never
// blocks.
func (cs *chanState) deliver(m copyMeta, parts ...[]byte) {
	if m.ruleID < 0 {
		m.ruleID = cs.defRule
	}
	cs.cnt.received.Add(1)
	r := cs.counters.rule(m.ruleID)
	if r == &cs.counters.rules[0] {
		m.ruleID = -1 // not a rule of this plan
	}
	r.received.Add(1)
	if m.origLen > 0 {
		r.truncated.Add(1)
	}
	if !cs.q.push(&m, parts...) && !cs.pushWait(&m, parts) {
		r.queueFull.Add(1)
		cs.cnt.queueFull.Add(1)
	}
}

// pushWait retries a push that found the queue full, for a lossless channel
// only: it waits for the sink to free a slot, up to losslessWait or until
// the pipeline stops. It reports whether the copy was queued.
func (cs *chanState) pushWait(m *copyMeta, parts [][]byte) bool {
	if !cs.lossless {
		return false
	}
	if cs.wait == nil {
		cs.wait = time.NewTimer(losslessWait)
	} else {
		cs.wait.Reset(losslessWait)
	}
	defer cs.wait.Stop()
	for {
		cs.q.waiting.Store(true)
		if cs.q.push(m, parts...) {
			cs.q.waiting.Store(false)
			return true
		}
		select {
		case <-cs.q.space:
		case <-cs.wait.C:
			cs.q.waiting.Store(false)
			return false
		case <-cs.done:
			cs.q.waiting.Store(false)
			return false
		}
	}
}

// Run sends queued copies until ctx is cancelled, when copies still queued
// are discarded, or until readersDone is closed and every queue is empty. It
// returns nil.
func (d *destWorker) Run(ctx context.Context, readersDone <-chan struct{}) error {
	bs, batched := d.sink.(BatchSink)
	var (
		pkts = make([]*Packet, 0, destBurst)
		errs = make([]error, destBurst)
	)
	for {
		if ctx.Err() != nil {
			return nil
		}
		sent := false
		for _, q := range d.queues {
			// A bounded burst per queue keeps one busy channel from
			// starving the others of the same destination.
			pkts = q.peekBatch(pkts[:0])
			if len(pkts) == 0 {
				continue
			}
			if batched {
				bs.SendBatch(pkts, errs[:len(pkts)])
				for i, pkt := range pkts {
					d.count(pkt, errs[i])
				}
			} else {
				for _, pkt := range pkts {
					if ctx.Err() != nil {
						break // the rest is discarded, as queued copies are
					}
					d.count(pkt, d.sink.Send(pkt))
				}
			}
			q.releaseN(len(pkts))
			sent = true
		}
		if sent {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
		case <-readersDone:
			if d.empty() {
				return nil
			}
			readersDone = nil // the queues still hold copies: send them
		}
	}
}

// empty reports whether every queue of the destination is empty.
func (d *destWorker) empty() bool {
	for _, q := range d.queues {
		if q.len() > 0 {
			return false
		}
	}
	return true
}

// destBurst is how many copies of one queue a destination sends before it
// looks at its next queue: one sendmmsg batch.
const destBurst = 64

// count records the result of sending pkt.
func (d *destWorker) count(pkt *Packet, err error) {
	r := d.rules.rule(pkt.RuleID)
	if err != nil {
		r.sendError.Add(1)
		d.cnt.errors.Add(1)
		d.log.Debug("send copy", "dest", d.name, "rule", pkt.RuleID, "err", err)
		return
	}
	r.mirrored.Add(1)
	d.cnt.packets.Add(1)
	d.cnt.bytes.Add(uint64(len(pkt.Data)))
}
