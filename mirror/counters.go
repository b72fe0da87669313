package mirror

import (
	"sort"
	"sync/atomic"
)

// Counters holds every counter of a pipeline. The pipeline's goroutines
// update it with atomic adds; Snapshot reads a consistent-enough copy at any
// time (each counter is read atomically, the set is not a transaction).
type Counters struct {
	rules    []ruleCounters // index 0: copies whose rule is unknown; ID i at i+1
	ruleText []string
	ruleSrc  []Source // where each rule takes its copies, same indexes
	chans    []chanCounters
	dests    map[string]*destCounters
}

type ruleCounters struct {
	received  atomic.Uint64
	mirrored  atomic.Uint64
	truncated atomic.Uint64
	queueFull atomic.Uint64
	sendError atomic.Uint64
}

type chanCounters struct {
	ch          Channel
	received    atomic.Uint64
	seqGaps     atomic.Uint64
	enobufs     atomic.Uint64
	queueFull   atomic.Uint64
	parseErrors atomic.Uint64
	verdictErrs atomic.Uint64
}

type destCounters struct {
	packets atomic.Uint64
	bytes   atomic.Uint64
	errors  atomic.Uint64
}

// newCounters sizes the counters for a plan's rules, channels and
// destinations.
func newCounters(rules []Rule, chans []Channel) *Counters {
	maxID := -1
	for _, r := range rules {
		maxID = max(maxID, r.ID)
	}
	c := &Counters{
		rules:    make([]ruleCounters, maxID+2),
		ruleText: make([]string, maxID+2),
		ruleSrc:  make([]Source, maxID+2),
		chans:    make([]chanCounters, len(chans)),
		dests:    make(map[string]*destCounters),
	}
	for _, r := range rules {
		if r.ID >= 0 {
			c.ruleText[r.ID+1] = r.Text
			c.ruleSrc[r.ID+1] = r.source()
		}
	}
	for i, ch := range chans {
		c.chans[i].ch = ch
		if c.dests[ch.Dest] == nil {
			c.dests[ch.Dest] = new(destCounters)
		}
	}
	return c
}

// rule returns the counters of a rule ID; unknown IDs share one bucket.
func (c *Counters) rule(id int) *ruleCounters {
	if id < 0 || id+1 >= len(c.rules) {
		return &c.rules[0]
	}
	return &c.rules[id+1]
}

// Snapshot is a point-in-time copy of a pipeline's counters, ready for JSON.
type Snapshot struct {
	Rules        []RuleStats    `json:"rules"`
	Destinations []DestStats    `json:"destinations"`
	Channels     []ChannelStats `json:"channels"`
}

// RuleStats counts the copies one rule selected.
type RuleStats struct {
	// ID is the rule's PlannedRule.ID; -1 collects copies whose rule could not
	// be told (an NFQUEUE channel shared by several rules, a foreign prefix).
	ID   int    `json:"id"`
	Text string `json:"text,omitempty"`
	// Received counts copies read from the kernel.
	Received uint64 `json:"received"`
	// Mirrored counts copies the sink sent.
	Mirrored uint64 `json:"mirrored"`
	// Truncated counts received copies shorter than the packet (snaplen).
	Truncated uint64    `json:"truncated"`
	Dropped   RuleDrops `json:"dropped"`
}

// RuleDrops counts copies of a rule received but not mirrored. Copies the
// kernel dropped before userspace saw them cannot be told to a rule: they are
// counted per channel (ChannelStats.SeqGaps, ENOBUFS).
type RuleDrops struct {
	// QueueFull counts copies dropped because the queue to the sink was full.
	QueueFull uint64 `json:"queue_full"`
	// SendError counts copies the sink failed to send.
	SendError uint64 `json:"send_error"`
}

// DestStats counts what was replayed onto one mirror interface.
type DestStats struct {
	Name    string `json:"name"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	Errors  uint64 `json:"errors"`
}

// ChannelStats counts one NFLOG group or NFQUEUE queue.
type ChannelStats struct {
	Kind string `json:"kind"` // "nflog" or "nfqueue"
	Num  uint16 `json:"num"`
	Dest string `json:"dest"`
	// Received counts copies read from the kernel.
	Received uint64 `json:"received"`
	// SeqGaps counts copies the kernel numbered but never delivered (NFLOG
	// sequence numbers skipped): copies lost before userspace.
	SeqGaps uint64 `json:"seq_gaps"`
	// ENOBUFS counts receive-buffer overruns reported by the socket; the
	// copies lost with them show up in SeqGaps.
	ENOBUFS uint64 `json:"enobufs"`
	// QueueFull counts copies dropped because the queue to the sink was full.
	QueueFull uint64 `json:"queue_full"`
	// ParseErrors counts kernel messages that could not be decoded.
	ParseErrors uint64 `json:"parse_errors"`
	// VerdictErrors counts NFQUEUE verdicts that could not be sent (the
	// packet then passes when the queue fails open, or waits for a timeout).
	VerdictErrors uint64 `json:"verdict_errors,omitempty"`
}

// Snapshot copies the counters. Rules are listed by ID, with the unknown
// bucket (ID -1) first and only when it counted something; destinations by
// name; channels in plan order.
func (c *Counters) Snapshot() Snapshot {
	var s Snapshot
	for i := range c.rules {
		r := &c.rules[i]
		st := RuleStats{
			ID:        i - 1,
			Text:      c.ruleText[i],
			Received:  r.received.Load(),
			Mirrored:  r.mirrored.Load(),
			Truncated: r.truncated.Load(),
			Dropped:   RuleDrops{QueueFull: r.queueFull.Load(), SendError: r.sendError.Load()},
		}
		if i == 0 && st.Received == 0 && st.Mirrored == 0 {
			continue
		}
		s.Rules = append(s.Rules, st)
	}
	for name, d := range c.dests {
		s.Destinations = append(s.Destinations, DestStats{
			Name: name, Packets: d.packets.Load(), Bytes: d.bytes.Load(), Errors: d.errors.Load(),
		})
	}
	sort.Slice(s.Destinations, func(i, j int) bool { return s.Destinations[i].Name < s.Destinations[j].Name })
	for i := range c.chans {
		ch := &c.chans[i]
		s.Channels = append(s.Channels, ChannelStats{
			Kind:          ch.ch.Kind.String(),
			Num:           ch.ch.Num,
			Dest:          ch.ch.Dest,
			Received:      ch.received.Load(),
			SeqGaps:       ch.seqGaps.Load(),
			ENOBUFS:       ch.enobufs.Load(),
			QueueFull:     ch.queueFull.Load(),
			ParseErrors:   ch.parseErrors.Load(),
			VerdictErrors: ch.verdictErrs.Load(),
		})
	}
	return s
}

// seqTracker turns NFLOG sequence numbers into a count of lost copies.
type seqTracker struct {
	last  uint32
	valid bool
}

// next records seq and returns how many sequence numbers were skipped since
// the previous one. The first number seen starts the count.
func (t *seqTracker) next(seq uint32) uint64 {
	if !t.valid {
		t.last, t.valid = seq, true
		return 0
	}
	gap := seq - t.last - 1 // wraps correctly at 2^32
	t.last = seq
	if gap >= 1<<31 { // a step backwards (instance rebound): not a loss
		return 0
	}
	return uint64(gap)
}
