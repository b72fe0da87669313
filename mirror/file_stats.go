package mirror

import (
	"sort"
)

// SourceStats returns nfmirror's counts per source for the destination
// dest, for a capture file's statistics blocks (File.SetStats): per source,
// the copies its rules received, and those dropped (a full queue, a failed
// write, a full disk) plus the copies the kernel lost on dest's channels
// (NFLOG sequence gaps), charged to the channel's source when all its rules
// share one, else to a source of unknown hook. A rule that also copies to
// another destination counts all its copies here.
func (c *Counters) SourceStats(dest string) []SourceStats {
	by := map[Source]*SourceStats{}
	at := func(s Source) *SourceStats {
		if by[s] == nil {
			by[s] = &SourceStats{Source: s}
		}
		return by[s]
	}
	seen := map[int]bool{}
	for i := range c.chans {
		ch := &c.chans[i]
		if ch.ch.Dest != dest {
			continue
		}
		var src *Source
		one := true
		for _, id := range ch.ch.RuleIDs {
			if id < 0 || id+1 >= len(c.rules) {
				continue
			}
			s := c.ruleSrc[id+1]
			if src == nil {
				src = &s
			} else if *src != s {
				one = false
			}
			if seen[id] {
				continue
			}
			seen[id] = true
			r := &c.rules[id+1]
			st := at(s)
			st.Received += r.received.Load()
			st.Dropped += r.queueFull.Load() + r.sendError.Load()
		}
		if gaps := ch.seqGaps.Load(); gaps > 0 {
			lost := Source{}
			if src != nil && one {
				lost = *src
			}
			st := at(lost)
			st.Received += gaps
			st.Dropped += gaps
		}
	}
	out := make([]SourceStats, 0, len(by))
	for _, s := range by {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Source.String() < out[j].Source.String() })
	return out
}
