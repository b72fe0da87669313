package mirror

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// recordSink records copies; it can block until released, or fail.
type recordSink struct {
	mu      sync.Mutex
	pkts    []Packet
	block   chan struct{} // when non-nil, Send waits for it to be closed
	entered chan struct{} // receives once per Send call, if non-nil
	fail    error
}

func (s *recordSink) Send(p *Packet) error {
	if s.entered != nil {
		select {
		case s.entered <- struct{}{}:
		default:
		}
	}
	if s.block != nil {
		<-s.block
	}
	if s.fail != nil {
		return s.fail
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pkts = append(s.pkts, Packet{Data: append([]byte(nil), p.Data...), OrigLen: p.OrigLen, RuleID: p.RuleID, L2: p.L2, Hook: p.Hook, Dev: p.Dev, Time: p.Time})
	return nil
}

func (s *recordSink) Close() error { return nil }

func (s *recordSink) packets() []Packet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Packet(nil), s.pkts...)
}

func TestQueue(t *testing.T) {
	tests := []struct {
		name     string
		size     int
		push     int
		wantOK   int
		wantLast string
	}{
		{"fits", 4, 3, 3, "p2"},
		{"exactly full", 4, 4, 4, "p3"},
		{"overflow drops the newest", 4, 10, 4, "p3"},
		{"one slot", 1, 5, 1, "p0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newQueue(tt.size, make(chan struct{}, 1))
			ok := 0
			for i := range tt.push {
				if q.push(&copyMeta{ruleID: i}, []byte("p"), []byte(fmt.Sprint(i))) {
					ok++
				}
			}
			if ok != tt.wantOK || q.len() != tt.wantOK {
				t.Fatalf("accepted %d (len %d), want %d", ok, q.len(), tt.wantOK)
			}
			var last string
			for i := 0; ; i++ {
				p := q.peek()
				if p == nil {
					break
				}
				if want := fmt.Sprintf("p%d", i); string(p.Data) != want || p.RuleID != i {
					t.Fatalf("slot %d = %q rule %d, want %q rule %d", i, p.Data, p.RuleID, want, i)
				}
				last = string(p.Data)
				q.release()
			}
			if last != tt.wantLast {
				t.Errorf("last = %q, want %q", last, tt.wantLast)
			}
			// Freed slots take new packets again.
			if !q.push(&copyMeta{}, []byte("again")) {
				t.Error("push after draining failed")
			}
		})
	}
}

func TestQueueNoAllocInSteadyState(t *testing.T) {
	q := newQueue(8, make(chan struct{}, 1))
	data := make([]byte, 1500)
	for range 8 { // warm every slot
		q.push(&copyMeta{}, data)
		q.peek()
		q.release()
	}
	allocs := testing.AllocsPerRun(1000, func() {
		q.push(&copyMeta{ruleID: 1}, data[:14], data[14:])
		q.peek()
		q.release()
	})
	if allocs != 0 {
		t.Errorf("push/peek/release allocates %.1f times per packet, want 0", allocs)
	}
}

// testPipeline builds a pipeline over n NFLOG channels to one sink without
// opening any socket; deliver feeds it as a reader would.
func testPipeline(t *testing.T, sink Sink, queueLen int, chans ...Channel) *Pipeline {
	t.Helper()
	var rules []Rule
	for i := range 3 {
		rules = append(rules, Rule{ID: i, Text: fmt.Sprintf("rule %d", i)})
	}
	p, err := NewPipeline(Config{Channels: chans, Rules: rules, Sinks: map[string]Sink{"m0": sink}, QueueLen: queueLen})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runDests runs the pipeline's sink goroutines (not its sources) until the
// returned stop is called.
func runDests(p *Pipeline) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, d := range p.dests {
		wg.Go(func() { _ = d.Run(ctx, nil) })
	}
	return func() { cancel(); wg.Wait() }
}

func TestPipelineStalledSinkDropsAndCounts(t *testing.T) {
	const queueLen, sent = 16, 1000
	sink := &recordSink{block: make(chan struct{}), entered: make(chan struct{}, 1)}
	p := testPipeline(t, sink, queueLen, Channel{Num: 1, Dest: "m0", RuleIDs: []int{0, 1}})
	stop := runDests(p)
	var unblock sync.Once
	release := func() { unblock.Do(func() { close(sink.block) }) }
	defer stop()
	defer release() // runs first: a failed test must not leave Send blocked
	cs := p.chans[0]
	// The first copy is taken by the sink, which then blocks in Send.
	cs.deliver(copyMeta{ruleID: 1}, []byte("first"))
	<-sink.entered
	start := time.Now()
	for i := range sent - 1 {
		cs.deliver(copyMeta{ruleID: 1}, []byte(fmt.Sprint(i)))
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("reader took %v to deliver %d copies to a stalled sink", d, sent)
	}
	s := p.Counters().Snapshot()
	r := s.Rules[1]
	// The copy in Send keeps its slot until Send returns: queueLen copies
	// are held, the rest were dropped.
	wantDrops := uint64(sent - queueLen)
	if r.Received != sent || r.Dropped.QueueFull != wantDrops || s.Channels[0].QueueFull != wantDrops {
		t.Fatalf("rule 1 %+v channel %+v, want %d received and %d queue-full drops", r, s.Channels[0], sent, wantDrops)
	}
	release()
	waitFor(t, func() bool { return p.Counters().Snapshot().Rules[1].Mirrored == uint64(queueLen) })
	got := sink.packets()
	if len(got) != queueLen || string(got[0].Data) != "first" || string(got[queueLen-1].Data) != fmt.Sprint(queueLen-2) {
		t.Errorf("sink got %d copies %q ... %q, want %d: first ... %d", len(got), got[0].Data, got[len(got)-1].Data, queueLen, queueLen-2)
	}
	if d := p.Counters().Snapshot().Destinations[0]; d.Packets != uint64(queueLen) || d.Errors != 0 {
		t.Errorf("destination counters %+v, want %d packets", d, queueLen)
	}
}

// slowSink records copies, taking a while over each.
type slowSink struct {
	recordSink
	delay time.Duration
}

func (s *slowSink) Send(p *Packet) error {
	time.Sleep(s.delay)
	return s.recordSink.Send(p)
}

// TestPipelineLosslessWaitsForRoom: a lossless (NFQUEUE) channel whose sink
// is slower than its reader loses nothing: the reader waits for room (the
// kernel holds the packets meanwhile) instead of dropping. A sink that stops
// taking copies costs each copy at most losslessWait, then it is dropped and
// counted like any full queue.
func TestPipelineLosslessWaitsForRoom(t *testing.T) {
	lossless := Channel{Kind: NFQUEUE, Num: 1, Dest: "m0", RuleIDs: []int{0}}
	t.Run("slow sink", func(t *testing.T) {
		const queueLen, sent = 16, 300
		sink := &slowSink{delay: 200 * time.Microsecond}
		p := testPipeline(t, sink, queueLen, lossless)
		stop := runDests(p)
		defer stop()
		for i := range sent {
			p.chans[0].deliver(copyMeta{ruleID: -1}, []byte(fmt.Sprint(i)))
		}
		waitFor(t, func() bool { return p.Counters().Snapshot().Rules[0].Mirrored == sent })
		got := sink.packets()
		for i, pkt := range got {
			if string(pkt.Data) != fmt.Sprint(i) {
				t.Fatalf("copy %d is %q: lost or out of order", i, pkt.Data)
			}
		}
		if c := p.Counters().Snapshot().Channels[0]; c.QueueFull != 0 {
			t.Errorf("channel %+v: no copy may be dropped", c)
		}
	})
	t.Run("stalled sink", func(t *testing.T) {
		const queueLen, extra = 16, 3
		sink := &recordSink{block: make(chan struct{}), entered: make(chan struct{}, 1)}
		p := testPipeline(t, sink, queueLen, lossless)
		stop := runDests(p)
		defer stop()
		defer close(sink.block)
		cs := p.chans[0]
		cs.deliver(copyMeta{ruleID: -1}, []byte("first"))
		<-sink.entered // held in Send; its slot stays taken
		for range queueLen - 1 {
			cs.deliver(copyMeta{ruleID: -1}, []byte("queued"))
		}
		start := time.Now()
		for range extra {
			cs.deliver(copyMeta{ruleID: -1}, []byte("late"))
		}
		if d := time.Since(start); d < extra*losslessWait*9/10 {
			t.Errorf("%d copies to a full queue returned after %v: each must wait about %v for room", extra, d, losslessWait)
		}
		if c := p.Counters().Snapshot().Channels[0]; c.QueueFull != extra {
			t.Errorf("channel %+v, want %d dropped for a full queue", c, extra)
		}
	})
}

func TestPipelineCounters(t *testing.T) {
	tests := []struct {
		name      string
		sinkErr   error
		rule      int
		defRules  []int
		wantRule  int
		truncated bool
	}{
		{name: "mirrored", rule: 2, wantRule: 2},
		{name: "send errors", sinkErr: errors.New("no buffer"), rule: 0, wantRule: 0},
		{name: "unknown rule on a shared channel", rule: -1, defRules: []int{0, 1}, wantRule: -1},
		{name: "unknown rule on a channel of one rule", rule: -1, defRules: []int{1}, wantRule: 1},
		{name: "rule ID out of range", rule: 42, wantRule: -1},
		{name: "truncated copies", rule: 1, wantRule: 1, truncated: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &recordSink{fail: tt.sinkErr}
			p := testPipeline(t, sink, 64, Channel{Num: 3, Dest: "m0", RuleIDs: tt.defRules})
			stop := runDests(p)
			const n = 10
			orig := 0
			if tt.truncated {
				orig = 1500
			}
			for range n {
				p.chans[0].deliver(copyMeta{ruleID: tt.rule, origLen: orig}, []byte("0123456789"))
			}
			waitFor(t, func() bool {
				r := findRule(p.Counters().Snapshot(), tt.wantRule)
				return r.Mirrored+r.Dropped.SendError == n
			})
			stop()
			s := p.Counters().Snapshot()
			r := findRule(s, tt.wantRule)
			want := RuleStats{ID: tt.wantRule, Text: r.Text, Received: n}
			if tt.sinkErr != nil {
				want.Dropped.SendError = n
			} else {
				want.Mirrored = n
			}
			if tt.truncated {
				want.Truncated = n
			}
			if r != want {
				t.Errorf("rule counters %+v, want %+v", r, want)
			}
			d := s.Destinations[0]
			if tt.sinkErr != nil && (d.Errors != n || d.Packets != 0) || tt.sinkErr == nil && (d.Packets != n || d.Bytes != 10*n) {
				t.Errorf("destination counters %+v", d)
			}
			for _, p := range sink.packets() {
				if p.RuleID != tt.wantRule || p.OrigLen != orig {
					t.Errorf("packet rule %d origlen %d, want %d %d", p.RuleID, p.OrigLen, tt.wantRule, orig)
				}
			}
		})
	}
}

func findRule(s Snapshot, id int) RuleStats {
	for _, r := range s.Rules {
		if r.ID == id {
			return r
		}
	}
	return RuleStats{ID: id}
}

func TestNewPipelineErrors(t *testing.T) {
	sink := &recordSink{}
	tests := []struct {
		name string
		cfg  Config
	}{
		{"missing sink", Config{Channels: []Channel{{Num: 1, Dest: "nowhere"}}, Sinks: map[string]Sink{"m0": sink}}},
		{"duplicate channel", Config{Channels: []Channel{{Num: 1, Dest: "m0"}, {Num: 1, Dest: "m0"}}, Sinks: map[string]Sink{"m0": sink}}},
		{"netdev nfqueue", Config{Channels: []Channel{{Kind: NFQUEUE, Netdev: true, Dest: "m0"}}, Sinks: map[string]Sink{"m0": sink}}},
		{"negative queue", Config{QueueLen: -1}},
	}
	for _, tt := range tests {
		if _, err := NewPipeline(tt.cfg); err == nil {
			t.Errorf("%s: NewPipeline succeeded, want an error", tt.name)
		}
	}
}

func TestSeqTracker(t *testing.T) {
	tests := []struct {
		name string
		seqs []uint32
		want uint64
	}{
		{"in order", []uint32{1, 2, 3, 4}, 0},
		{"gaps", []uint32{1, 3, 10}, 1 + 6},
		{"wraps", []uint32{0xfffffffe, 0xffffffff, 0, 2}, 1},
		{"backwards is not a loss", []uint32{100, 5, 6}, 0},
	}
	for _, tt := range tests {
		var tr seqTracker
		var got uint64
		for _, s := range tt.seqs {
			got += tr.next(s)
		}
		if got != tt.want {
			t.Errorf("%s: %d lost, want %d", tt.name, got, tt.want)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func BenchmarkQueuePushPop(b *testing.B) {
	q := newQueue(4096, make(chan struct{}, 1))
	data := make([]byte, 1500)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		q.push(&copyMeta{ruleID: 1}, data)
		q.peek()
		q.release()
	}
}

func BenchmarkPipelineDeliver(b *testing.B) {
	sink := &countSink{}
	p, err := NewPipeline(Config{Channels: []Channel{{Num: 1, Dest: "m0"}}, Sinks: map[string]Sink{"m0": sink}})
	if err != nil {
		b.Fatal(err)
	}
	stop := runDests(p)
	defer stop()
	data := make([]byte, 1500)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		p.chans[0].deliver(copyMeta{ruleID: 0}, data)
	}
}

type countSink struct{ n int }

func (s *countSink) Send(*Packet) error { s.n++; return nil }
func (s *countSink) Close() error       { return nil }

// TestQueueLargeCopiesBounded: super-packet copies borrow large buffers
// within a byte budget (copies past it are refused, so the caller counts a
// drop), give them back when sent, and reuse them without allocating.
func TestQueueLargeCopiesBounded(t *testing.T) {
	q := newQueue(4096, make(chan struct{}, 1))
	big := make([]byte, 60<<10)
	accepted := 0
	for range 1000 {
		if q.push(&copyMeta{}, big) {
			accepted++
		}
	}
	if want := largeBudget / largeCap; accepted != want {
		t.Fatalf("accepted %d large copies, want the budget's %d", accepted, want)
	}
	if lent := q.lent.Load(); lent > largeBudget {
		t.Fatalf("%d bytes lent, budget %d", lent, largeBudget)
	}
	for q.peek() != nil {
		if got := len(q.peek().Data); got != len(big) {
			t.Fatalf("queued copy has %d bytes, want %d", got, len(big))
		}
		q.release()
	}
	if lent := q.lent.Load(); lent != 0 {
		t.Fatalf("after releasing every copy %d bytes are still lent", lent)
	}
	small := make([]byte, 100)
	for range len(q.slots) { // every slot allocates its own small buffer once
		q.push(&copyMeta{}, small)
		q.release()
	}
	allocs := testing.AllocsPerRun(200, func() {
		q.push(&copyMeta{}, big)
		q.push(&copyMeta{}, small)
		q.release()
		q.release()
	})
	if allocs != 0 {
		t.Errorf("large and small copies through a warm queue: %v allocations per run, want 0", allocs)
	}
}
