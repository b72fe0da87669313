package service

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/google/nftables"

	"github.com/nfmirror/nfmirror/mirror"
	"github.com/nfmirror/nfmirror/nfrules"
)

// Status is what `nfmirror status` shows: per rule, what the kernel matched
// and what became of the copies; per destination, what was sent and how;
// every count since the instance started, through every reload.
type Status struct {
	Rules         string    `json:"rules_file"`
	Started       time.Time `json:"started"`
	Generation    int       `json:"generation"` // the running generation
	Reloads       int       `json:"reloads"`
	FailedReloads int       `json:"failed_reloads"`
	LastReload    time.Time `json:"last_reload,omitzero"`
	Table         string    `json:"table"`
	// CountersError is set when the kernel's rule counters could not be read.
	CountersError string `json:"counters_error,omitempty"`
	// Total sums every rule since start; SinceReload the running
	// generation's rules only.
	Total        Counts                `json:"total"`
	SinceReload  Counts                `json:"since_reload"`
	RuleStats    []RuleStatus          `json:"rules"`
	Destinations []DestinationStatus   `json:"destinations"`
	Channels     []mirror.ChannelStats `json:"channels"`
}

// Counts is what happened to copies: matched by the kernel, received,
// mirrored, and lost on the way (in the kernel, in a full queue, at the
// writer).
type Counts struct {
	// Matched counts packets the kernel rules matched (their nft counters).
	Matched      uint64 `json:"matched"`
	MatchedBytes uint64 `json:"matched_bytes"`
	Received     uint64 `json:"received"`
	Mirrored     uint64 `json:"mirrored"`
	Truncated    uint64 `json:"truncated"`
	// LostInKernel counts copies the kernel made but never delivered
	// (NFLOG sequence gaps); they cannot be told to a rule.
	LostInKernel uint64           `json:"lost_in_kernel"`
	Dropped      mirror.RuleDrops `json:"dropped"`
}

func (c *Counts) add(o Counts) {
	c.Matched += o.Matched
	c.MatchedBytes += o.MatchedBytes
	c.Received += o.Received
	c.Mirrored += o.Mirrored
	c.Truncated += o.Truncated
	c.LostInKernel += o.LostInKernel
	c.Dropped.QueueFull += o.Dropped.QueueFull
	c.Dropped.SendError += o.Dropped.SendError
}

// RuleStatus is one rule of the running file with its counts since start: a
// rule that stayed the same through reloads (same hook, device and text)
// keeps counting.
type RuleStatus struct {
	ID     int    `json:"id"`
	Pos    string `json:"pos,omitempty"`
	Hook   string `json:"hook,omitempty"`
	Device string `json:"device,omitempty"`
	Text   string `json:"text"`
	Counts
}

// DestinationStatus is one mirror destination: what the pipeline handed its
// sink since start, and what the sink of the running generation did: how a
// local port's copies leave (devices, framing, segmenting), a collector's
// path and errors by reason, a capture file's files.
type DestinationStatus struct {
	mirror.DestStats
	// Kind is "port", "vxlan", "gre", "erspan" or "file".
	Kind      string                 `json:"kind"`
	Writer    *mirror.WriterStats    `json:"writer,omitempty"`
	Collector *mirror.CollectorStats `json:"collector,omitempty"`
	File      *mirror.FileStats      `json:"file,omitempty"`
}

// Describe says in one line how the destination's copies go out.
func (d DestinationStatus) Describe() string {
	switch {
	case d.Writer != nil:
		return d.Writer.Describe()
	case d.Collector != nil:
		return d.Collector.Describe()
	case d.File != nil:
		return d.File.Describe()
	}
	return "no longer in the rules"
}

var destKinds = map[nfrules.DestKind]string{
	nfrules.DestPort: "port", nfrules.DestVXLAN: "vxlan", nfrules.DestGRE: "gre", nfrules.DestERSPAN: "erspan", nfrules.DestFile: "file",
}

// totals holds the counts of retired generations, by rule key and
// destination.
type totals struct {
	rules map[string]Counts
	dests map[string]mirror.DestStats
	all   Counts // every rule, also those no longer in the file
}

func newTotals() *totals {
	return &totals{rules: map[string]Counts{}, dests: map[string]mirror.DestStats{}}
}

// ruleKey identifies a rule across generations.
func ruleKey(r nfrules.PlannedRule) string {
	return r.Hook.String() + "\x00" + r.Device + "\x00" + r.Text
}

// add adds a retired generation's final counts; matched holds the kernel's
// counters read before its rules went.
func (t *totals) add(g *generation, matched map[int]nfrules.Counter) {
	snap := g.pipeline.Counters().Snapshot()
	rules, gen := generationCounts(snap, matched)
	for _, r := range g.plan.Rules {
		k := ruleKey(r)
		c := t.rules[k]
		c.add(rules[r.ID])
		t.rules[k] = c
	}
	t.all.add(gen)
	addDests(t.dests, snap.Destinations)
}

// addDests adds each destination's counts in ds to m, by name.
func addDests(m map[string]mirror.DestStats, ds []mirror.DestStats) {
	for _, d := range ds {
		o := m[d.Name]
		o.Name = d.Name
		o.Packets += d.Packets
		o.Bytes += d.Bytes
		o.Errors += d.Errors
		m[d.Name] = o
	}
}

// generationCounts returns the counts of a generation's snapshot per rule ID
// (-1: copies no rule can be told for) and in all.
func generationCounts(snap mirror.Snapshot, matched map[int]nfrules.Counter) (map[int]Counts, Counts) {
	out := map[int]Counts{}
	var all Counts
	for _, r := range snap.Rules {
		c := Counts{Received: r.Received, Mirrored: r.Mirrored, Truncated: r.Truncated, Dropped: r.Dropped}
		m := matched[r.ID]
		c.Matched, c.MatchedBytes = m.Packets, m.Bytes
		out[r.ID] = c
		all.add(c)
	}
	for _, ch := range snap.Channels {
		all.LostInKernel += ch.SeqGaps
	}
	return out, all
}

// statusMaxAge is how long one status document serves every client that
// asks: a burst of clients costs one read of the kernel's counters.
const statusMaxAge = 250 * time.Millisecond

// statusWait bounds how long a client waits for a fresh document before it
// gets the last one.
const statusWait = 2 * time.Second

// statusCache builds status documents one at a time and shares each for
// statusMaxAge.
type statusCache struct {
	mu      sync.Mutex
	doc     Status
	at      time.Time
	pending chan struct{} // closed when the document being built is ready
}

// statusDoc returns the status document for the control socket.
func (s *server) statusDoc() any {
	c := &s.status
	c.mu.Lock()
	if time.Since(c.at) < statusMaxAge {
		d := c.doc
		c.mu.Unlock()
		return d
	}
	if c.pending == nil {
		c.pending = make(chan struct{})
		go func(done chan struct{}) {
			d := s.buildStatus()
			c.mu.Lock()
			c.doc, c.at, c.pending = d, time.Now(), nil
			c.mu.Unlock()
			close(done)
		}(c.pending)
	}
	wait := c.pending
	c.mu.Unlock()
	select {
	case <-wait:
	case <-time.After(statusWait):
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.doc
}

// buildStatus assembles a status document. The kernel's rule counters are
// read through a connection of its own, never the one that owns the tables.
func (s *server) buildStatus() Status {
	s.mu.Lock()
	g, gen := s.cur, s.gen
	st := Status{
		Rules: s.cfg.RulesPath, Started: s.started, Generation: gen, Table: s.inst.Table,
		Reloads: s.reloads, FailedReloads: s.failedReloads, LastReload: s.lastReload,
	}
	carried := make(map[string]Counts, len(s.totals.rules))
	for k, v := range s.totals.rules {
		carried[k] = v
	}
	st.Total = s.totals.all
	dests := make(map[string]mirror.DestStats, len(s.totals.dests))
	for k, v := range s.totals.dests {
		dests[k] = v
	}
	s.mu.Unlock()

	if g != nil {
		matched, err := readCounters(s.inst.Table)
		if err != nil {
			st.CountersError = err.Error()
		}
		snap := g.pipeline.Counters().Snapshot()
		rules, all := generationCounts(snap, matched)
		st.SinceReload = all
		st.Total.add(all)
		for _, r := range g.plan.Rules {
			c := carried[ruleKey(r)]
			c.add(rules[r.ID])
			st.RuleStats = append(st.RuleStats, RuleStatus{ID: r.ID, Pos: r.Pos.String(), Hook: r.Hook.String(), Device: r.Device, Text: r.Text, Counts: c})
		}
		if u, ok := rules[-1]; ok && (u.Received > 0 || u.Mirrored > 0) {
			st.RuleStats = append(st.RuleStats, RuleStatus{ID: -1, Text: "(rule unknown)", Counts: u})
		}
		addDests(dests, snap.Destinations)
		st.Channels = snap.Channels
		for _, d := range sortedDests(dests) {
			ds := DestinationStatus{DestStats: d}
			if to, ok := g.plan.Destination(d.Name); ok {
				ds.Kind = destKinds[to.Kind]
			}
			if w := g.sinks.writers[d.Name]; w != nil {
				ws := w.Stats()
				ds.Writer = &ws
			}
			if c := g.sinks.collectors[d.Name]; c != nil {
				cs := c.Stats()
				ds.Collector = &cs
			}
			if f := g.sinks.files[d.Name]; f != nil {
				fs := f.Stats()
				ds.File = &fs
			}
			st.Destinations = append(st.Destinations, ds)
		}
	}
	return st
}

func sortedDests(m map[string]mirror.DestStats) []mirror.DestStats {
	out := make([]mirror.DestStats, 0, len(m))
	for _, d := range m {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// readCounters reads the kernel's counters of the rules in the tables named
// table, over a short-lived connection.
func readCounters(table string) (map[int]nfrules.Counter, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("open nftables netlink: %w", err)
	}
	return nfrules.ReadCounters(c, table)
}

// WriteJSON writes st as indented JSON.
func (st *Status) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(st)
}

// WriteTable writes st as the human-readable tables `nfmirror status` prints.
func (st *Status) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "rules %s, running since %s (%s), %d reload(s)", st.Rules,
		st.Started.Format(time.RFC3339), time.Since(st.Started).Round(time.Second), st.Reloads)
	if st.FailedReloads > 0 {
		fmt.Fprintf(w, ", %d failed", st.FailedReloads)
	}
	fmt.Fprintln(w)
	if st.CountersError != "" {
		fmt.Fprintf(w, "kernel counters unavailable: %s\n", st.CountersError)
	}
	t := st.Total
	fmt.Fprintf(w, "since start: %d matched, %d mirrored, %d lost (%d in the kernel, %d queue full, %d send errors)\n",
		t.Matched, t.Mirrored, t.LostInKernel+t.Dropped.QueueFull+t.Dropped.SendError, t.LostInKernel, t.Dropped.QueueFull, t.Dropped.SendError)
	if st.Reloads+st.FailedReloads > 0 {
		t = st.SinceReload
		fmt.Fprintf(w, "since the last reload: %d matched, %d mirrored, %d lost\n",
			t.Matched, t.Mirrored, t.LostInKernel+t.Dropped.QueueFull+t.Dropped.SendError)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "RULE\tMATCHED\tMIRRORED\tQUEUE FULL\tSEND ERR\tTRUNCATED\t  WHERE\t  TEXT\t")
	for _, r := range st.RuleStats {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t  %s\t  %s\t\n", r.ID, r.Matched, r.Mirrored,
			r.Dropped.QueueFull, r.Dropped.SendError, r.Truncated, r.Pos, r.Text)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "DESTINATION\tKIND\tPACKETS\tBYTES\tERRORS\t")
	for _, d := range st.Destinations {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t\n", d.Name, d.Kind, d.Packets, d.Bytes, d.Errors)
	}
	tw.Flush()
	for _, d := range st.Destinations {
		fmt.Fprintf(w, "%s: %s\n", d.Name, d.Describe())
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "CHANNEL\tDESTINATION\tRECEIVED\tLOST IN KERNEL\tENOBUFS\tQUEUE FULL\tPARSE ERR\t")
	for _, c := range st.Channels {
		fmt.Fprintf(tw, "%s %d\t%s\t%d\t%d\t%d\t%d\t%d\t\n", c.Kind, c.Num, c.Dest, c.Received, c.SeqGaps, c.ENOBUFS, c.QueueFull, c.ParseErrors)
	}
	tw.Flush()
}
