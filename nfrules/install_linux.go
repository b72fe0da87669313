package nfrules

import (
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

func nftFamily(f Family) nftables.TableFamily {
	if f == FamilyNetdev {
		return nftables.TableFamilyNetdev
	}
	return nftables.TableFamilyINet
}

var nftHooks = map[Hook]*nftables.ChainHook{
	HookPrerouting: nftables.ChainHookPrerouting, HookInput: nftables.ChainHookInput,
	HookForward: nftables.ChainHookForward, HookOutput: nftables.ChainHookOutput,
	HookPostrouting: nftables.ChainHookPostrouting, HookIngress: nftables.ChainHookIngress,
	HookEgress: nftables.ChainHookEgress,
}

// ourTables returns the tables named name in the families nfmirror uses.
// Tables are told apart by name: google/nftables cannot set table userdata.
func ourTables(c *nftables.Conn, name string) ([]*nftables.Table, error) {
	var out []*nftables.Table
	for _, f := range []Family{FamilyInet, FamilyNetdev} {
		ts, err := c.ListTablesOfFamily(nftFamily(f))
		if err != nil {
			return nil, fmt.Errorf("list %s tables: %w", f, err)
		}
		for _, t := range ts {
			if t.Name == name && t.Family == nftFamily(f) {
				out = append(out, t)
			}
		}
	}
	return out, nil
}

// Install replaces nfmirror's tables with the plan's in one atomic netlink
// batch: the previous tables of the same name (if any) are deleted and the new
// ones added, so the kernel switches from one ruleset to the next at once, and
// a batch the kernel refuses changes nothing. Tables are created with the
// owner flag: they vanish when c's socket closes, so c should be a lasting
// connection (nftables.AsLasting) kept open while nfmirror runs. Other tables
// are never touched.
func (p *Plan) Install(c *nftables.Conn) error {
	old, err := ourTables(c, p.opt.TableName)
	if err != nil {
		return fmt.Errorf("install table %s: %w", p.opt.TableName, err)
	}
	for _, t := range old {
		c.DelTable(&nftables.Table{Name: t.Name, Family: t.Family})
	}
	for _, tp := range p.tables {
		t := c.AddTable(&nftables.Table{Name: p.opt.TableName, Family: nftFamily(tp.family), Flags: nftables.TableFlagOwner})
		for _, cp := range tp.chains {
			prio := nftables.ChainPriority(cp.prio)
			policy := nftables.ChainPolicyAccept
			ch := c.AddChain(&nftables.Chain{
				Name: cp.name, Table: t, Type: nftables.ChainTypeFilter,
				Hooknum: nftHooks[cp.hook], Priority: &prio, Policy: &policy, Device: cp.device,
			})
			for _, kr := range cp.rules {
				sets := make([]*nftables.Set, len(kr.sets))
				for i, as := range kr.sets {
					s := &nftables.Set{
						Table: t, Anonymous: true, Constant: true, Interval: as.interval,
						KeyType: as.keyType, Size: uint32(len(as.elems)),
					}
					if err := c.AddSet(s, as.elems); err != nil {
						return fmt.Errorf("add set for rule %d: %w", kr.id, err)
					}
					sets[i] = s
				}
				exprs := make([]expr.Any, len(kr.exprs))
				for i, e := range kr.exprs {
					if r, ok := e.(*setRef); ok {
						l := r.Lookup
						l.SetName, l.SetID = sets[r.idx].Name, sets[r.idx].ID
						e = &l
					}
					exprs[i] = e
				}
				nr := &nftables.Rule{Table: t, Chain: ch, Exprs: exprs}
				if kr.id >= 0 {
					nr.UserData = ruleUserData(kr.id)
				}
				c.AddRule(nr)
			}
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("install table %s: %w", p.opt.TableName, err)
	}
	return nil
}

// Uninstall deletes nfmirror's tables named tableName, in one batch. It is
// not an error if there are none. Other tables are never touched.
func Uninstall(c *nftables.Conn, tableName string) error {
	ts, err := ourTables(c, tableName)
	if err != nil {
		return fmt.Errorf("uninstall table %s: %w", tableName, err)
	}
	if len(ts) == 0 {
		return nil
	}
	for _, t := range ts {
		c.DelTable(&nftables.Table{Name: t.Name, Family: t.Family})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("uninstall table %s: %w", tableName, err)
	}
	return nil
}

// ErrTableInUse is wrapped by CheckTableFree when a table with nfmirror's
// name exists that this process did not create.
var ErrTableInUse = errors.New("already exists: another program or instance uses this table name")

// CheckTableFree returns an error wrapping ErrTableInUse when an inet or
// netdev table named tableName exists: it is not this process's (nfmirror
// creates its tables with the owner flag, so they vanish with it), and
// nfmirror never replaces or deletes a table that is not its own.
func CheckTableFree(c *nftables.Conn, tableName string) error {
	ts, err := ourTables(c, tableName)
	if err != nil {
		return err
	}
	if len(ts) == 0 {
		return nil
	}
	fam := "inet"
	if ts[0].Family == nftables.TableFamilyNetdev {
		fam = "netdev"
	}
	return fmt.Errorf("table %s %s %w: give nfmirror its own -table", fam, tableName, ErrTableInUse)
}
