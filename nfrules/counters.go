package nfrules

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Counter is what the kernel counted for one source rule.
type Counter struct {
	Packets uint64
	Bytes   uint64
}

// ReadCounters returns the packet and byte counters of the installed rules of
// nfmirror's tables named tableName, keyed by PlannedRule.ID (read back from
// each rule's comment). Rules that matched nothing are present with zero
// counts; an empty map means no nfmirror table is installed.
func ReadCounters(c *nftables.Conn, tableName string) (map[int]Counter, error) {
	ts, err := ourTables(c, tableName)
	if err != nil {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	out := map[int]Counter{}
	for _, t := range ts {
		chains, err := c.ListChainsOfTableFamily(t.Family)
		if err != nil {
			return nil, fmt.Errorf("read counters: list chains: %w", err)
		}
		for _, ch := range chains {
			if ch.Table.Name != t.Name {
				continue
			}
			rules, err := c.GetRules(t, ch)
			if err != nil {
				return nil, fmt.Errorf("read counters: list rules of chain %s: %w", ch.Name, err)
			}
			for _, r := range rules {
				id, ok := parseRuleUserData(r.UserData)
				if !ok {
					continue
				}
				cnt := out[id]
				for _, e := range r.Exprs {
					if ce, ok := e.(*expr.Counter); ok {
						cnt.Packets += ce.Packets
						cnt.Bytes += ce.Bytes
					}
				}
				out[id] = cnt
			}
		}
	}
	return out, nil
}
