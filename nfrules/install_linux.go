package nfrules

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"unsafe"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
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
						Table: t, Anonymous: true, Constant: true, Interval: as.interval, Concatenation: as.concat && as.interval,
						KeyType: as.keyType, Size: uint32(len(as.elems)),
					}
					if err := c.AddSet(s, as.elems); err != nil {
						return fmt.Errorf("add set for rule %d: %w", kr.id, err)
					}
					if err := setUserdata(c, s, as.userdata(), as.desc()); err != nil {
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

// errSetUserdata is returned when the set message whose userdata nfmirror
// writes cannot be found in the connection's batch.
var errSetUserdata = errors.New("write set userdata: set message not found (google/nftables changed?)")

// setUserdata replaces the userdata of the set s, just queued on c by
// AddSet, with ud, and its description with desc: the bytes nft writes (see
// setudata.go). google/nftables
// writes a fixed userdata, key byte order big-endian for every anonymous
// set, which lists host-order sets byte-swapped ("iifname { "", "" }",
// "meta mark { 0x01000000 }") and lacks what nft needs to list a
// concatenation. It has no option for it, so the queued message (found by
// the set's transaction ID) is rebuilt with nft's userdata; when it cannot
// be found the install fails rather than listing wrongly. The kernel
// stores the userdata without reading it. The description is rewritten
// because google/nftables takes the length of a concatenation's parts from
// their data types, which is wrong for integers (ip ttl is one byte).
func setUserdata(c *nftables.Conn, s *nftables.Set, ud, desc []byte) error {
	field := reflect.ValueOf(c).Elem().FieldByName("messages")
	if !field.IsValid() || field.Kind() != reflect.Slice {
		return errSetUserdata
	}
	msgs := reflect.NewAt(field.Type(), unsafe.Pointer(field.UnsafeAddr())).Elem()
	newSet := uint64(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSET)
	for i := msgs.Len() - 1; i >= 0; i-- {
		m := msgs.Index(i)
		hdr, data := m.FieldByName("Header"), m.FieldByName("Data")
		if !hdr.IsValid() || !data.IsValid() || data.Kind() != reflect.Slice || !data.CanSet() {
			return errSetUserdata
		}
		if t := hdr.FieldByName("Type"); !t.IsValid() || t.Uint() != newSet {
			continue
		}
		if b, ok := replaceSetUserdata(data.Bytes(), s.ID, ud, desc); ok {
			data.SetBytes(b)
			return nil
		}
	}
	return errSetUserdata
}

// replaceSetUserdata returns a NEWSET message body (nfgenmsg and
// attributes) with its NFTA_SET_USERDATA attribute set to ud and its
// NFTA_SET_DESC to desc (a nested attribute's payload), if the message is
// for the set with transaction ID id.
func replaceSetUserdata(b []byte, id uint32, ud, desc []byte) ([]byte, bool) {
	if len(b) < 4 {
		return nil, false
	}
	out := append([]byte(nil), b[:4]...)
	found := false
	for off := 4; off+4 <= len(b); {
		l := int(binary.NativeEndian.Uint16(b[off:]))
		typ := binary.NativeEndian.Uint16(b[off+2:]) & 0x3fff // NLA_TYPE_MASK
		if l < 4 || off+l > len(b) {
			return nil, false
		}
		next := min(len(b), off+(l+3)&^3)
		switch typ {
		case unix.NFTA_SET_ID:
			found = l == 8 && binary.BigEndian.Uint32(b[off+4:]) == id
			out = append(out, b[off:next]...)
		case unix.NFTA_SET_USERDATA, unix.NFTA_SET_DESC:
		default:
			out = append(out, b[off:next]...)
		}
		off = next
	}
	if !found {
		return nil, false
	}
	out = appendNLA(out, unix.NLA_F_NESTED|unix.NFTA_SET_DESC, desc)
	return appendNLA(out, unix.NFTA_SET_USERDATA, ud), true
}
