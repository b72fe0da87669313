package service

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/nfmirror/nfmirror/mirror"
	"github.com/nfmirror/nfmirror/nfrules"
)

// Status is what `nfmirror status` shows: per rule, what the kernel matched
// and what became of the copies; per destination, what was sent.
type Status struct {
	Rules      string    `json:"rules_file"`
	Started    time.Time `json:"started"`
	Generation int       `json:"generation"` // reloads so far
	Table      string    `json:"table"`
	// CountersError is set when the kernel's rule counters could not be read.
	CountersError string                `json:"counters_error,omitempty"`
	RuleStats     []RuleStatus          `json:"rules"`
	Destinations  []DestinationStatus   `json:"destinations"`
	Channels      []mirror.ChannelStats `json:"channels"`
}

// DestinationStatus is one mirror destination: what the pipeline handed its
// writer, and how the writer's copies leave (devices, framing, segmenting).
type DestinationStatus struct {
	mirror.DestStats
	Writer mirror.WriterStats `json:"writer"`
}

// RuleStatus is one rule of the file with its counters.
type RuleStatus struct {
	ID   int    `json:"id"`
	Pos  string `json:"pos,omitempty"`
	Text string `json:"text"`
	// Matched counts packets the kernel rule matched (its nft counter).
	Matched      uint64 `json:"matched"`
	MatchedBytes uint64 `json:"matched_bytes"`
	// Received, Mirrored, Truncated and Dropped are the pipeline's counts for
	// the copies this rule selected (one per mirror statement).
	Received  uint64           `json:"received"`
	Mirrored  uint64           `json:"mirrored"`
	Truncated uint64           `json:"truncated"`
	Dropped   mirror.RuleDrops `json:"dropped"`
}

// status assembles the document the control socket serves.
func (s *server) status() Status {
	s.mu.Lock()
	inst, gen := s.inst, s.gen
	s.mu.Unlock()
	st := Status{Rules: s.cfg.RulesPath, Started: s.started, Generation: gen, Table: s.cfg.Compile.TableName}
	if inst == nil {
		return st
	}
	counters, err := nfrules.ReadCounters(s.nft, s.cfg.Compile.TableName)
	if err != nil {
		st.CountersError = err.Error()
	}
	snap := inst.pipeline.Counters().Snapshot()
	byID := map[int]mirror.RuleStats{}
	for _, r := range snap.Rules {
		byID[r.ID] = r
	}
	for _, r := range inst.plan.Rules {
		p := byID[r.ID]
		c := counters[r.ID]
		st.RuleStats = append(st.RuleStats, RuleStatus{
			ID: r.ID, Pos: r.Pos.String(), Text: r.Text,
			Matched: c.Packets, MatchedBytes: c.Bytes,
			Received: p.Received, Mirrored: p.Mirrored, Truncated: p.Truncated, Dropped: p.Dropped,
		})
	}
	if u, ok := byID[-1]; ok {
		st.RuleStats = append(st.RuleStats, RuleStatus{ID: -1, Text: "(rule unknown)", Received: u.Received, Mirrored: u.Mirrored, Dropped: u.Dropped})
	}
	for _, d := range snap.Destinations {
		ds := DestinationStatus{DestStats: d}
		if w := inst.writers[d.Name]; w != nil {
			ds.Writer = w.Stats()
		}
		st.Destinations = append(st.Destinations, ds)
	}
	st.Channels = snap.Channels
	return st
}

// WriteJSON writes st as indented JSON.
func (st *Status) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(st)
}

// WriteTable writes st as the human-readable tables `nfmirror status` prints.
func (st *Status) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "rules %s, running since %s (%s), %d reload(s)\n", st.Rules,
		st.Started.Format(time.RFC3339), time.Since(st.Started).Round(time.Second), st.Generation)
	if st.CountersError != "" {
		fmt.Fprintf(w, "kernel counters unavailable: %s\n", st.CountersError)
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
	fmt.Fprintln(tw, "DESTINATION\tPACKETS\tBYTES\tERRORS\tNO ROUTE\t")
	for _, d := range st.Destinations {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t\n", d.Name, d.Packets, d.Bytes, d.Errors, d.Writer.NoRoute)
	}
	tw.Flush()
	for _, d := range st.Destinations {
		fmt.Fprintf(w, "%s: %s\n", d.Name, d.Writer.Describe())
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "CHANNEL\tDESTINATION\tRECEIVED\tLOST IN KERNEL\tENOBUFS\tQUEUE FULL\tPARSE ERR\t")
	for _, c := range st.Channels {
		fmt.Fprintf(tw, "%s %d\t%s\t%d\t%d\t%d\t%d\t%d\t\n", c.Kind, c.Num, c.Dest, c.Received, c.SeqGaps, c.ENOBUFS, c.QueueFull, c.ParseErrors)
	}
	tw.Flush()
}
