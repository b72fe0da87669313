package mirror

import (
	"reflect"
	"testing"
)

// TestCountersSourceStats: a capture file's statistics per source come from
// the rules that copy to it (received; queue full and failed writes
// dropped) and the kernel's losses on its channels, charged to the source
// when the channel has one.
func TestCountersSourceStats(t *testing.T) {
	rules := []Rule{
		{ID: 0, Hook: HookIngress, Device: "eth0"},
		{ID: 1, Hook: HookPrerouting},
		{ID: 2, Hook: HookPostrouting},
		{ID: 3, Hook: HookEgress, Device: "eth1"}, // to another destination
	}
	chans := []Channel{
		{Kind: NFLOG, Num: 1, Dest: "file", Netdev: true, RuleIDs: []int{0}},
		{Kind: NFLOG, Num: 2, Dest: "file", RuleIDs: []int{1, 2}},
		{Kind: NFLOG, Num: 3, Dest: "port", Netdev: true, RuleIDs: []int{3}},
	}
	c := newCounters(rules, chans)
	for id, n := range map[int]uint64{0: 10, 1: 20, 2: 30, 3: 40} {
		c.rule(id).received.Add(n)
	}
	c.rule(0).queueFull.Add(2)
	c.rule(1).sendError.Add(3)
	c.rule(3).queueFull.Add(9)
	c.chans[0].seqGaps.Add(4) // one source: charged to it
	c.chans[1].seqGaps.Add(5) // two sources: unknown
	c.chans[2].seqGaps.Add(6) // another destination
	want := []SourceStats{
		{Source: Source{Hook: HookIngress, Dev: "eth0"}, Received: 14, Dropped: 6},
		{Source: Source{Hook: HookPostrouting}, Received: 30},
		{Source: Source{Hook: HookPrerouting}, Received: 20, Dropped: 3},
		{Source: Source{}, Received: 5, Dropped: 5},
	}
	if got := c.SourceStats("file"); !reflect.DeepEqual(got, want) {
		t.Errorf("SourceStats:\n got %+v\nwant %+v", got, want)
	}
}
