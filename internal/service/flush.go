package service

import (
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/nfmirror/nfmirror/internal/control"
	"github.com/nfmirror/nfmirror/nfrules"
	"github.com/nfmirror/nfmirror/route"
)

// Flush removes what a killed nfmirror left behind in this namespace: its
// nftables tables named table (the owner flag normally removes them already),
// its ip rules and routes, and the link flags it changed. It reports what it
// removed; nothing left is not an error.
func Flush(table string, rc route.Config) ([]string, error) {
	var removed []string
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("open nftables netlink: %w", err)
	}
	defer c.CloseLasting()
	n, err := countTables(c, table)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		if err := nfrules.Uninstall(c, table); err != nil {
			return nil, fmt.Errorf("remove nftables tables: %w", err)
		}
		removed = append(removed, fmt.Sprintf("%d nftables table(s) %q", n, table))
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return removed, fmt.Errorf("open rtnetlink: %w", err)
	}
	defer h.Close()
	before, err := ourRules(h, rc)
	if err != nil {
		return removed, err
	}
	if err := route.Flush(h, rc); err != nil {
		return removed, fmt.Errorf("remove ip rules and routes: %w", err)
	}
	if before > 0 {
		removed = append(removed, fmt.Sprintf("%d ip rule(s) at priority %d with their routes", before, priority(rc)))
	}
	return removed, nil
}

func priority(rc route.Config) int {
	if rc.Priority == 0 {
		return route.DefaultPriority
	}
	return rc.Priority
}

// ourRules counts the IPv4 and IPv6 ip rules at nfmirror's priority.
func ourRules(h *netlink.Handle, rc route.Config) (int, error) {
	n := 0
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rules, err := h.RuleList(fam)
		if err != nil {
			return 0, fmt.Errorf("list ip rules: %w", err)
		}
		for _, r := range rules {
			if r.Priority == priority(rc) {
				n++
			}
		}
	}
	return n, nil
}

// flushIfAbandoned clears the leftovers of a killed instance before a new
// one starts, but only when no instance answers on the control socket.
func flushIfAbandoned(socket, table string, rc route.Config) ([]string, error) {
	var v any
	if socket != "" {
		if err := control.Query(socket, &v); err == nil {
			return nil, errors.New("another nfmirror is running (its control socket answers): stop it first")
		}
	}
	return Flush(table, rc)
}

// countTables counts the inet and netdev tables named table.
func countTables(c *nftables.Conn, table string) (int, error) {
	tables, err := c.ListTables()
	if err != nil {
		return 0, fmt.Errorf("list nftables tables: %w", err)
	}
	n := 0
	for _, t := range tables {
		if t.Name == table && (t.Family == nftables.TableFamilyINet || t.Family == nftables.TableFamilyNetdev) {
			n++
		}
	}
	return n, nil
}
