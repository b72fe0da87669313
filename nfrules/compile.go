package nfrules

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"

	"github.com/nfmirror/nfmirror/internal/config"
)

// Chain priorities of the base chains nfmirror creates. They decide what a
// mirror port sees relative to the other netfilter users of the same hook.
const (
	// PrioPrerouting comes after conntrack (-200) and mangle (-150) and before
	// dstnat (-100): the packet as it arrived, with ct state known.
	PrioPrerouting int32 = -140
	// PrioInput runs just after the filter chains (0) of the input hook.
	PrioInput int32 = 10
	// PrioForward runs just after the filter chains (0) of the forward hook.
	PrioForward int32 = 10
	// PrioOutput comes after conntrack (-200) and mangle (-150) and before
	// dstnat (-100): the packet as the local stack sent it.
	PrioOutput int32 = -140
	// PrioPostrouting comes after srcnat (100): the packet as it leaves.
	PrioPostrouting int32 = 110
	// PrioNetdev is the priority of netdev ingress and egress chains.
	PrioNetdev int32 = 10
	// PrioPortGuard is the priority of the egress chain on each mirror port
	// that lets only copies out.
	PrioPortGuard int32 = -500
)

// Options tune Compile. The zero value selects every default (see
// internal/config).
type Options struct {
	// TableName names the tables nfmirror owns; default "nfmirror".
	TableName string
	// Mark and MarkMask form the loop guard: packets whose mark&MarkMask
	// equals Mark&MarkMask are never copied. Default 0x6e666d00/0xffffff00.
	Mark, MarkMask uint32
	// NFLOGBase and QueueBase are the first NFLOG group and NFQUEUE queue
	// number nfmirror allocates; default 6000 and 6000.
	NFLOGBase, QueueBase uint16
	// Ifindex resolves interface names for iif and oif; nil means
	// net.InterfaceByName in the current network namespace.
	Ifindex func(name string) (uint32, error)
}

func (o Options) withDefaults() Options {
	if o.TableName == "" {
		o.TableName = config.DefaultTable
	}
	if o.Mark == 0 && o.MarkMask == 0 {
		o.Mark, o.MarkMask = config.DefaultMark, config.DefaultMarkMask
	}
	if o.NFLOGBase == 0 {
		o.NFLOGBase = config.DefaultNFLOGBase
	}
	if o.QueueBase == 0 {
		o.QueueBase = config.DefaultQueueBase
	}
	if o.Ifindex == nil {
		o.Ifindex = func(name string) (uint32, error) {
			ifi, err := net.InterfaceByName(name)
			if err != nil {
				return 0, err
			}
			return uint32(ifi.Index), nil
		}
	}
	return o
}

// Plan is a compiled ruleset: the source rules and copy channels for
// userspace, and the nftables objects Install sends to the kernel.
type Plan struct {
	// Rules lists every source rule in file order; PlannedRule.ID is its index.
	Rules []PlannedRule
	// Channels lists the NFLOG groups and NFQUEUE queues the rules copy to.
	Channels []Channel

	opt    Options
	tables []*tablePlan
	dests  []Destination
}

// TableName returns the name of the tables the plan installs.
func (p *Plan) TableName() string { return p.opt.TableName }

type tablePlan struct {
	family Family
	chains []*chainPlan
}

type chainPlan struct {
	name     string
	hook     Hook
	device   string
	prio     int32
	lossless bool // a chain holding one NFQUEUE rule, see compileBlocks
	rules    []*kernelRule
}

// kernelRule is one rule as the kernel sees it.
type kernelRule struct {
	id    int // PlannedRule.ID, or -1 for a loop guard
	pos   Pos
	exprs []expr.Any
	sets  []*anonSet // referenced by *setRef placeholders in exprs, in order
	text  string     // the rule in nft syntax
	note  string     // printed as a comment before the rule
}

// anonSet is an anonymous constant set used by one lookup.
type anonSet struct {
	keyType  nftables.SetDatatype
	interval bool
	elems    []nftables.SetElement
}

// setRef stands for an expr.Lookup of sets[idx] until Install names the set.
type setRef struct {
	expr.Lookup
	idx int
}

// ruleCtx tracks the protocol context of one rule, so that implicit
// dependencies are added once, as nft does.
type ruleCtx struct {
	family Family
	net    string // "ip" or "ip6" once known
	l4     string // "tcp", "udp", "icmp", "icmpv6" once known
	ll     bool   // link layer known to be Ethernet
	vlan   bool
}

var l4Numbers = map[string]byte{"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}

type compiler struct {
	opt   Options
	plan  *Plan
	errs  ErrorList
	chans map[chanKey]int
}

// chanKey identifies a channel: one NFLOG group per destination, one
// NFQUEUE queue per destination and snaplen (see Channel).
type chanKey struct {
	kind    ChannelKind
	dest    string
	snaplen uint32
}

// Compile turns a checked ruleset into a Plan. It does not touch the kernel
// except to resolve interface names of iif and oif matches through
// opt.Ifindex. Problems come back as an ErrorList of positioned errors, like
// the parser's, sorted and at most one per line.
func Compile(rs *Ruleset, opt Options) (*Plan, error) {
	if rs == nil {
		return nil, errors.New("compile: nil ruleset")
	}
	c := &compiler{opt: opt.withDefaults(), chans: map[chanKey]int{}}
	c.plan = &Plan{opt: c.opt}
	c.compileBlocks(rs)
	if len(c.errs) > 0 {
		c.errs.RemoveMultiples()
		return nil, c.errs
	}
	return c.plan, nil
}

func (c *compiler) errorf(pos Pos, format string, args ...any) {
	c.errs.Add(pos, "", fmt.Sprintf(format, args...))
}

func basePrio(h Hook) int32 {
	switch h {
	case HookPrerouting:
		return PrioPrerouting
	case HookInput:
		return PrioInput
	case HookForward:
		return PrioForward
	case HookOutput:
		return PrioOutput
	case HookPostrouting:
		return PrioPostrouting
	}
	return PrioNetdev
}

// compileBlocks lays out tables and chains. Each hook (and, for netdev, each
// device) gets one base chain holding the loop guard and every NFLOG rule in
// file order. NFQUEUE ends a chain's traversal for the packet it queues (the
// verdict, accept, resumes at the next base chain of the hook), so every
// lossless mirror statement gets a base chain of its own at the next
// priority up (base+1, base+2, ...): later rules still see every packet.
func (c *compiler) compileBlocks(rs *Ruleset) {
	type chainKey struct {
		hook   Hook
		device string
	}
	tables := map[Family]*tablePlan{}
	chains := map[chainKey]*chainPlan{}
	queueChains := map[chainKey]int{}
	dests := map[Family]map[string]bool{}
	var order []*chainPlan

	getTable := func(f Family) *tablePlan {
		t := tables[f]
		if t == nil {
			t = &tablePlan{family: f}
			tables[f] = t
			dests[f] = map[string]bool{}
		}
		return t
	}
	// First pass: destinations per table, for the loop guards. A shared
	// destination carries the host's own traffic: it gets neither a name
	// guard nor a port guard (nfmirror's copies never pass an inet hook, and
	// their mark still keeps them from being copied again).
	// Only local ports get these guards: copies to a collector leave by a
	// production uplink, and a file is no device.
	shared := map[string]bool{}
	for _, b := range rs.Blocks {
		for _, r := range b.Rules {
			for _, m := range r.Mirrors {
				shared[m.Dest] = shared[m.Dest] || m.Shared
				if to := m.Target(); !slices.ContainsFunc(c.plan.dests, func(d Destination) bool { return d.Key() == to.Key() }) {
					c.plan.dests = append(c.plan.dests, to)
				}
			}
		}
	}
	for _, b := range rs.Blocks {
		getTable(b.Hook.Family())
		for _, r := range b.Rules {
			for _, m := range r.Mirrors {
				if !shared[m.Dest] && m.Target().Local() {
					dests[b.Hook.Family()][m.Dest] = true
				}
			}
		}
	}

	for _, b := range rs.Blocks {
		fam := b.Hook.Family()
		if fam == FamilyNetdev && b.Device == "" {
			c.errorf(b.Pos, "%s block needs a device", b.Hook)
			continue
		}
		key := chainKey{b.Hook, b.Device}
		newChain := func(name string, prio int32, lossless bool) *chainPlan {
			ch := &chainPlan{name: name, hook: b.Hook, device: b.Device, prio: prio, lossless: lossless}
			ch.rules = c.guards(fam, b.Hook, dests[fam])
			order = append(order, ch)
			return ch
		}
		baseName := b.Hook.String()
		if fam == FamilyNetdev {
			baseName += "_" + b.Device
		}
		for _, r := range b.Rules {
			id := len(c.plan.Rules)
			pr := PlannedRule{ID: id, Pos: r.Pos, Text: r.Text, Hook: b.Hook, Device: b.Device}
			matches, text, ok := c.compileMatches(fam, r)
			var logs, queues []*Mirror
			for _, m := range r.Mirrors {
				if m.Lossless {
					if fam == FamilyNetdev {
						c.errorf(m.Pos, "lossless is not supported in %s blocks: nft_compat has no netdev targets", b.Hook)
						ok = false
						continue
					}
					queues = append(queues, m)
				} else {
					logs = append(logs, m)
				}
			}
			if len(r.Mirrors) == 0 {
				c.errorf(r.Pos, "rule has no mirror statement")
				ok = false
			}
			if !ok {
				c.plan.Rules = append(c.plan.Rules, pr)
				continue
			}
			counted := false
			if len(logs) > 0 {
				ch := chains[key]
				if ch == nil {
					ch = newChain(baseName, basePrio(b.Hook), false)
					chains[key] = ch
				}
				kr := &kernelRule{id: id, pos: r.Pos, sets: matches.sets}
				kr.exprs = append(kr.exprs, matches.exprs...)
				kr.exprs = append(kr.exprs, &expr.Counter{})
				counted = true
				stmts := []string{"counter"}
				for _, m := range logs {
					ci := c.channel(ChannelNFLOG, fam, m, id)
					pr.Channels = append(pr.Channels, ci)
					ch := c.plan.Channels[ci]
					kr.exprs = append(kr.exprs, logExpr(id, ch.Num, m.Snaplen))
					stmts = append(stmts, logText(id, ch.Num, m.Snaplen))
				}
				kr.text = joinText(text, stmts, id)
				ch.rules = append(ch.rules, kr)
			}
			for _, m := range queues {
				queueChains[key]++
				n := queueChains[key]
				ch := newChain(fmt.Sprintf("%s_lossless%d", baseName, n), basePrio(b.Hook)+int32(n), true)
				ci := c.channel(ChannelNFQUEUE, fam, m, id)
				pr.Channels = append(pr.Channels, ci)
				num := c.plan.Channels[ci].Num
				kr := &kernelRule{id: id, pos: r.Pos, sets: matches.sets}
				kr.exprs = append(kr.exprs, matches.exprs...)
				stmts := []string{}
				if !counted {
					kr.exprs = append(kr.exprs, &expr.Counter{})
					stmts = append(stmts, "counter")
					counted = true
				}
				kr.exprs = append(kr.exprs, queueExpr(num))
				kr.note = fmt.Sprintf("installed: xt target NFQUEUE --queue-num %d --queue-bypass (nft_compat); nft's own \"queue num %d bypass\" is not in this kernel", num, num)
				kr.text = joinText(text, stmts, id)
				ch.rules = append(ch.rules, kr)
			}
			c.plan.Rules = append(c.plan.Rules, pr)
		}
	}
	// Port guards: a mirror port sends copies and nothing else. The host's
	// own chatter on it (IPv6 MLD reports and router solicitations, ARP, ...)
	// would show up on the analyzer as packets nobody mirrored.
	var ports []string
	for _, f := range []Family{FamilyInet, FamilyNetdev} {
		for d := range dests[f] {
			if !slices.Contains(ports, d) {
				ports = append(ports, d)
			}
		}
	}
	sort.Strings(ports)
	if len(ports) > 0 {
		getTable(FamilyNetdev)
	}
	for _, d := range ports {
		order = append(order, &chainPlan{
			name: "port_" + d, hook: HookEgress, device: d, prio: PrioPortGuard,
			rules: c.portGuard(),
		})
	}
	for _, f := range []Family{FamilyInet, FamilyNetdev} {
		t := tables[f]
		if t == nil {
			continue
		}
		for _, ch := range order {
			if ch.hook.Family() == f {
				t.chains = append(t.chains, ch)
			}
		}
		c.plan.tables = append(c.plan.tables, t)
	}
}

func joinText(matches string, stmts []string, id int) string {
	parts := []string{}
	if matches != "" {
		parts = append(parts, matches)
	}
	parts = append(parts, stmts...)
	parts = append(parts, fmt.Sprintf("comment %q", ruleComment(id)))
	return strings.Join(parts, " ")
}

// ruleComment is the comment (rule userdata) carrying a rule's ID.
func ruleComment(id int) string { return "nfm:" + strconv.Itoa(id) }

func ruleUserData(id int) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, ruleComment(id))
}

// parseRuleUserData returns the rule ID stored by ruleUserData.
func parseRuleUserData(ud []byte) (int, bool) {
	s, ok := userdata.GetString(ud, userdata.TypeComment)
	if !ok || !strings.HasPrefix(s, "nfm:") {
		return 0, false
	}
	id, err := strconv.Atoi(strings.TrimPrefix(s, "nfm:"))
	if err != nil || id < 0 {
		return 0, false
	}
	return id, true
}

func (c *compiler) channel(kind ChannelKind, fam Family, m *Mirror, id int) int {
	k := chanKey{kind: kind, dest: m.Dest}
	if kind == ChannelNFQUEUE {
		k.snaplen = m.Snaplen
	}
	i, ok := c.chans[k]
	if !ok {
		var n uint16
		base := c.opt.NFLOGBase
		if kind == ChannelNFQUEUE {
			base = c.opt.QueueBase
		}
		for _, ch := range c.plan.Channels {
			if ch.Kind == kind {
				n++
			}
		}
		i = len(c.plan.Channels)
		c.plan.Channels = append(c.plan.Channels, Channel{Kind: kind, Num: base + n, Dest: m.Dest, Snaplen: k.snaplen})
		c.chans[k] = i
	}
	ch := &c.plan.Channels[i]
	ch.Netdev = ch.Netdev || fam == FamilyNetdev
	ch.Shared = ch.Shared || m.Shared
	if len(ch.RuleIDs) == 0 || ch.RuleIDs[len(ch.RuleIDs)-1] != id {
		ch.RuleIDs = append(ch.RuleIDs, id)
	}
	return i
}

func logExpr(id int, group uint16, snaplen uint32) *expr.Log {
	l := &expr.Log{
		Key:   1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX,
		Group: group,
		Data:  []byte(ruleComment(id)),
	}
	if snaplen > 0 {
		l.Key |= 1 << unix.NFTA_LOG_SNAPLEN
		l.Snaplen = snaplen
	}
	return l
}

func logText(id int, group uint16, snaplen uint32) string {
	s := fmt.Sprintf("log prefix %q group %d", ruleComment(id), group)
	if snaplen > 0 {
		s += fmt.Sprintf(" snaplen %d", snaplen)
	}
	return s
}

// nfqFlagBypass is NFQ_FLAG_BYPASS of xt_NFQ_info_v3: with no listener the
// packet is accepted (fail-open).
const nfqFlagBypass = 0x01

// queueExpr is the xt NFQUEUE target, revision 3, through nft_compat:
// struct xt_NFQ_info_v3 { __u16 queuenum, queues_total, flags, cpu; }
// in host byte order.
func queueExpr(num uint16) *expr.Target {
	info := make([]byte, 8)
	binary.NativeEndian.PutUint16(info[0:], num)
	binary.NativeEndian.PutUint16(info[2:], 1)
	binary.NativeEndian.PutUint16(info[4:], nfqFlagBypass)
	u := xt.Unknown(info)
	return &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &u}
}

// portGuard returns the rules of a mirror port's egress chain: copies
// (nfmirror's mark) pass, everything else the host sends there is dropped
// and counted.
func (c *compiler) portGuard() []*kernelRule {
	return []*kernelRule{
		c.markRule(expr.VerdictAccept, "accept", "port guard: the mirror port carries nfmirror's copies and nothing else"),
		{
			id:    -1,
			exprs: []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}},
			text:  "counter drop",
		},
	}
}

// markRule returns "meta mark & MASK == MARK VERDICT": the test for
// nfmirror's own copies.
func (c *compiler) markRule(v expr.VerdictKind, word, note string) *kernelRule {
	mask := c.opt.MarkMask
	mark := c.opt.Mark & mask
	return &kernelRule{
		id: -1,
		exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: hostU32(mask), Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: hostU32(mark)},
			&expr.Verdict{Kind: v},
		},
		text: fmt.Sprintf("meta mark & 0x%08x == 0x%08x %s", mask, mark, word),
		note: note,
	}
}

// guards returns the loop guard rules that start every chain.
func (c *compiler) guards(fam Family, h Hook, dests map[string]bool) []*kernelRule {
	rs := []*kernelRule{c.markRule(expr.VerdictReturn, "return", "loop guard: nfmirror's own copies carry this mark")}
	if fam == FamilyNetdev {
		return rs
	}
	names := make([]string, 0, len(dests))
	for d := range dests {
		names = append(names, d)
	}
	sort.Strings(names)
	var keys []expr.MetaKey
	var words []string
	switch h {
	case HookPrerouting, HookInput:
		keys, words = []expr.MetaKey{expr.MetaKeyIIFNAME}, []string{"iifname"}
	case HookOutput, HookPostrouting:
		keys, words = []expr.MetaKey{expr.MetaKeyOIFNAME}, []string{"oifname"}
	default:
		keys, words = []expr.MetaKey{expr.MetaKeyIIFNAME, expr.MetaKeyOIFNAME}, []string{"iifname", "oifname"}
	}
	for _, d := range names {
		for i, k := range keys {
			rs = append(rs, &kernelRule{
				id: -1,
				exprs: []expr.Any{
					&expr.Meta{Key: k, Register: 1},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(d)},
					&expr.Verdict{Kind: expr.VerdictReturn},
				},
				text: fmt.Sprintf("%s %q return", words[i], d),
			})
		}
	}
	return rs
}

func hostU32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func ifname(s string) []byte {
	b := make([]byte, 16)
	copy(b, s)
	return b
}

type compiledMatches struct {
	exprs []expr.Any
	sets  []*anonSet
}

func (c *compiler) compileMatches(fam Family, r *Rule) (compiledMatches, string, bool) {
	var out compiledMatches
	ctx := &ruleCtx{family: fam}
	var texts []string
	ok := true
	for _, m := range r.Matches {
		switch m := m.(type) {
		case *Compare:
			if !c.compileCompare(ctx, m, &out) {
				ok = false
			}
			texts = append(texts, compareText(m))
		case *Limit:
			burst := m.Burst
			if burst == 0 {
				burst = 5
			}
			out.exprs = append(out.exprs, &expr.Limit{
				Type: expr.LimitTypePkts, Rate: m.Rate, Over: m.Over,
				Unit: limitUnits[m.Unit], Burst: burst,
			})
			texts = append(texts, limitText(m))
		case *Sample:
			if m.Mod == 0 {
				c.errorf(m.Pos, "numgen modulus must be at least 1")
				ok = false
				continue
			}
			out.exprs = append(out.exprs, &expr.Numgen{Register: 1, Modulus: m.Mod, Type: unix.NFT_NG_RANDOM})
			val := hostU32(m.Value)
			if isRelational(m.Op) {
				out.exprs = append(out.exprs, &expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4})
				val = binary.BigEndian.AppendUint32(nil, m.Value)
			}
			out.exprs = append(out.exprs, &expr.Cmp{Op: cmpOp(m.Op), Register: 1, Data: val})
			t := fmt.Sprintf("numgen random mod %d", m.Mod)
			if m.Op != OpImplicit {
				t += " " + m.Op.String()
			}
			texts = append(texts, fmt.Sprintf("%s %d", t, m.Value))
		default:
			c.errorf(r.Pos, "unsupported match %T", m)
			ok = false
		}
	}
	return out, strings.Join(texts, " "), ok
}

var limitUnits = map[LimitUnit]expr.LimitTime{
	PerSecond: expr.LimitTimeSecond, PerMinute: expr.LimitTimeMinute, PerHour: expr.LimitTimeHour,
	PerDay: expr.LimitTimeDay, PerWeek: expr.LimitTimeWeek,
}

func limitText(m *Limit) string {
	s := "limit rate "
	if m.Over {
		s += "over "
	}
	s += fmt.Sprintf("%d/%s", m.Rate, m.Unit)
	if m.Burst != 0 {
		s += fmt.Sprintf(" burst %d packets", m.Burst)
	}
	return s
}

func compareText(m *Compare) string {
	s := m.Field.Name
	if m.Mask != nil {
		s += " & " + m.Mask.Text
	}
	if m.Op != OpImplicit {
		s += " " + m.Op.String()
	}
	return s + " " + valueSource(m.Value)
}

func isRelational(op Op) bool { return op == OpLt || op == OpGt || op == OpLte || op == OpGte }

func cmpOp(op Op) expr.CmpOp {
	switch op {
	case OpNeq:
		return expr.CmpOpNeq
	case OpLt:
		return expr.CmpOpLt
	case OpGt:
		return expr.CmpOpGt
	case OpLte:
		return expr.CmpOpLte
	case OpGte:
		return expr.CmpOpGte
	}
	return expr.CmpOpEq
}

// deps adds the implicit protocol dependencies nft adds before a field.
func (c *compiler) deps(ctx *ruleCtx, m *Compare, out *compiledMatches) bool {
	f := m.Field
	switch f.Proto {
	case "ip", "ip6":
		if ctx.net == f.Proto {
			return true
		}
		if ctx.net != "" {
			c.errorf(m.Pos, "%s conflicts with %s in the same rule", f.Name, ctx.net)
			return false
		}
		if ctx.family == FamilyInet {
			v := byte(unix.NFPROTO_IPV4)
			if f.Proto == "ip6" {
				v = unix.NFPROTO_IPV6
			}
			out.exprs = append(out.exprs,
				&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{v}})
		} else {
			et := []byte{0x08, 0x00}
			if f.Proto == "ip6" {
				et = []byte{0x86, 0xdd}
			}
			out.exprs = append(out.exprs,
				&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: et})
		}
		ctx.net = f.Proto
	case "tcp", "udp", "icmp", "icmpv6":
		if ctx.l4 == f.Proto {
			return true
		}
		if ctx.l4 != "" {
			c.errorf(m.Pos, "%s conflicts with %s in the same rule", f.Name, ctx.l4)
			return false
		}
		out.exprs = append(out.exprs,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{l4Numbers[f.Proto]}})
		ctx.l4 = f.Proto
	case "ether", "vlan":
		if !ctx.ll {
			out.exprs = append(out.exprs,
				&expr.Meta{Key: expr.MetaKeyIIFTYPE, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint16(nil, unix.ARPHRD_ETHER)})
			ctx.ll = true
		}
		if f.Proto == "vlan" && !ctx.vlan {
			out.exprs = append(out.exprs,
				&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 12, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x81, 0x00}})
			ctx.vlan = true
		}
	}
	return true
}

// learn records the protocol context an equality match establishes, so that
// "meta l4proto tcp tcp dport 80" gets no second dependency.
func (ctx *ruleCtx) learn(m *Compare) {
	s, ok := m.Value.(*Single)
	if !ok || m.Mask != nil || (m.Op != OpImplicit && m.Op != OpEq) || len(s.V.Bytes) == 0 {
		return
	}
	switch m.Field.Name {
	case "meta l4proto", "ip protocol", "ip6 nexthdr":
		for name, n := range l4Numbers {
			if s.V.Bytes[0] == n && (n != 1 || m.Field.Name != "ip6 nexthdr") {
				ctx.l4 = name
			}
		}
	case "meta protocol", "ether type":
		switch {
		case bytes.Equal(s.V.Bytes, []byte{0x08, 0x00}):
			ctx.net = "ip"
		case bytes.Equal(s.V.Bytes, []byte{0x86, 0xdd}):
			ctx.net = "ip6"
		}
	}
}

func (c *compiler) load(f *Field, length uint32) expr.Any {
	switch f.Kind {
	case KindMeta:
		return &expr.Meta{Key: f.Meta, Register: 1}
	case KindCt:
		return &expr.Ct{Key: f.Ct, Register: 1}
	}
	return &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: f.Base, Offset: f.Offset, Len: length}
}

// datum returns the bytes of d as the kernel compares them, resolving
// interface names of ifindex fields.
func (c *compiler) datum(f *Field, d Datum) ([]byte, bool) {
	if f.Type == TypeIfindex {
		name := strings.Trim(d.Text, "\"")
		idx, err := c.opt.Ifindex(name)
		if err != nil {
			c.errorf(d.Pos, "%s %q: %s", f.Name, name, err.Error())
			return nil, false
		}
		return hostU32(idx), true
	}
	if len(d.Bytes) == 0 {
		c.errorf(d.Pos, "%s: value %s has no encoding", f.Name, d.Text)
		return nil, false
	}
	return d.Bytes, true
}

// bigEndian converts a host-order value to network order for relational
// comparisons, which the kernel does with memcmp.
func bigEndian(f *Field, b []byte) []byte {
	if !f.HostOrder || binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		return b
	}
	r := make([]byte, len(b))
	for i := range b {
		r[i] = b[len(b)-1-i]
	}
	return r
}

func (c *compiler) compileCompare(ctx *ruleCtx, m *Compare, out *compiledMatches) bool {
	f := m.Field
	if f == nil {
		c.errorf(m.Pos, "match without a field")
		return false
	}
	// nft compiles a set of one element as the element itself.
	if s, ok := m.Value.(*Set); ok && len(s.Elems) == 1 {
		one := *m
		one.Value = s.Elems[0]
		m = &one
	}
	if !c.deps(ctx, m, out) {
		return false
	}
	defer ctx.learn(m)

	// Byte-aligned prefixes load only the prefix bytes, as nft does.
	if p, ok := m.Value.(*Prefix); ok && m.Mask == nil && f.Kind == KindPayload && p.Prefix.Bits()%8 == 0 && p.Prefix.Bits() > 0 {
		n := uint32(p.Prefix.Bits() / 8)
		out.exprs = append(out.exprs, c.load(f, n))
		op := expr.CmpOpEq
		if m.Op == OpNeq {
			op = expr.CmpOpNeq
		}
		out.exprs = append(out.exprs, &expr.Cmp{Op: op, Register: 1, Data: p.Prefix.Addr().AsSlice()[:n]})
		return true
	}

	out.exprs = append(out.exprs, c.load(f, f.Len))
	if f.BitMask != nil {
		out.exprs = append(out.exprs, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: f.Len, Mask: f.BitMask, Xor: make([]byte, f.Len)})
	}
	if m.Mask != nil {
		mask, ok := c.datum(f, *m.Mask)
		if !ok {
			return false
		}
		out.exprs = append(out.exprs, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: f.Len, Mask: mask, Xor: make([]byte, f.Len)})
	}
	bitmaskType := f.Type == TypeTCPFlags || f.Type == TypeCtState

	switch v := m.Value.(type) {
	case *Single:
		b, ok := c.datum(f, v.V)
		if !ok {
			return false
		}
		if m.Op == OpImplicit && bitmaskType && m.Mask == nil {
			out.exprs = append(out.exprs,
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: f.Len, Mask: b, Xor: make([]byte, f.Len)},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, f.Len)})
			return true
		}
		if isRelational(m.Op) && f.HostOrder {
			out.exprs = append(out.exprs, &expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: f.Len, Size: f.Len})
			b = bigEndian(f, b)
		}
		out.exprs = append(out.exprs, &expr.Cmp{Op: cmpOp(m.Op), Register: 1, Data: b})
	case *Range:
		lo, ok1 := c.datum(f, v.Lo)
		hi, ok2 := c.datum(f, v.Hi)
		if !ok1 || !ok2 {
			return false
		}
		if f.HostOrder {
			out.exprs = append(out.exprs, &expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: f.Len, Size: f.Len})
			lo, hi = bigEndian(f, lo), bigEndian(f, hi)
		}
		switch m.Op {
		case OpImplicit, OpEq:
			out.exprs = append(out.exprs,
				&expr.Cmp{Op: expr.CmpOpGte, Register: 1, Data: lo},
				&expr.Cmp{Op: expr.CmpOpLte, Register: 1, Data: hi})
		case OpNeq:
			out.exprs = append(out.exprs, &expr.Range{Op: expr.CmpOpNeq, Register: 1, FromData: lo, ToData: hi})
		default:
			c.errorf(m.Pos, "operator %s cannot compare with a range", m.Op)
			return false
		}
	case *Prefix:
		n := int(f.Len)
		mask := net.CIDRMask(v.Prefix.Bits(), n*8)
		out.exprs = append(out.exprs,
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: f.Len, Mask: mask, Xor: make([]byte, n)})
		op := expr.CmpOpEq
		if m.Op == OpNeq {
			op = expr.CmpOpNeq
		} else if m.Op != OpImplicit && m.Op != OpEq {
			c.errorf(m.Pos, "operator %s cannot compare with a prefix", m.Op)
			return false
		}
		out.exprs = append(out.exprs, &expr.Cmp{Op: op, Register: 1, Data: v.Prefix.Addr().AsSlice()})
	case *Set:
		if m.Op != OpImplicit && m.Op != OpEq && m.Op != OpNeq {
			c.errorf(m.Pos, "operator %s cannot compare with a set", m.Op)
			return false
		}
		s, ok := c.set(f, v)
		if !ok {
			return false
		}
		if s.interval && f.HostOrder {
			// Interval sets keep host-order keys big-endian, as nft does.
			out.exprs = append(out.exprs, &expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: f.Len, Size: f.Len})
		}
		out.sets = append(out.sets, s)
		out.exprs = append(out.exprs, &setRef{Lookup: expr.Lookup{SourceRegister: 1, Invert: m.Op == OpNeq}, idx: len(out.sets) - 1})
	default:
		c.errorf(m.Pos, "unsupported value %T", v)
		return false
	}
	return true
}

var setTypes = map[Type]nftables.SetDatatype{
	TypeIPv4Addr: nftables.TypeIPAddr, TypeIPv6Addr: nftables.TypeIP6Addr,
	TypeInetProto: nftables.TypeInetProto, TypePort: nftables.TypeInetService,
	TypeIfname: nftables.TypeIFName, TypeIfindex: nftables.TypeIFIndex,
	TypeMark: nftables.TypeMark, TypePkttype: nftables.TypePktType,
	TypeTCPFlags: nftables.TypeTCPFlag, TypeICMPType: nftables.TypeICMPType,
	TypeICMPv6Type: nftables.TypeICMP6Type, TypeCtState: nftables.TypeCTState,
	TypeEtherAddr: nftables.TypeEtherAddr, TypeEtherType: nftables.TypeEtherType,
	TypeInteger: nftables.TypeInteger,
}

type interval struct{ lo, hi []byte } // inclusive

func (c *compiler) set(f *Field, s *Set) (*anonSet, bool) {
	kt, ok := setTypes[f.Type]
	if !ok || f.Type == TypeVlanID {
		c.errorf(s.Pos, "%s cannot be matched against a set", f.Name)
		return nil, false
	}
	kt.Bytes = f.Len
	as := &anonSet{keyType: kt}
	var ivs []interval
	bigEndianKeys := false
	for _, e := range s.Elems {
		switch e := e.(type) {
		case *Single:
			b, ok := c.datum(f, e.V)
			if !ok {
				return nil, false
			}
			ivs = append(ivs, interval{b, b})
		case *Range:
			lo, ok1 := c.datum(f, e.Lo)
			hi, ok2 := c.datum(f, e.Hi)
			if !ok1 || !ok2 {
				return nil, false
			}
			ivs = append(ivs, interval{lo, hi})
			as.interval = true
			if f.HostOrder {
				bigEndianKeys = true
			}
		case *Prefix:
			lo := e.Prefix.Addr().AsSlice()
			hi := make([]byte, len(lo))
			mask := net.CIDRMask(e.Prefix.Bits(), len(lo)*8)
			for i := range lo {
				hi[i] = lo[i] | ^mask[i]
			}
			ivs = append(ivs, interval{lo, hi})
			as.interval = true
		default:
			c.errorf(s.Pos, "unsupported set element %T", e)
			return nil, false
		}
	}
	if !as.interval {
		for _, iv := range ivs {
			as.elems = append(as.elems, nftables.SetElement{Key: iv.lo})
		}
		return as, true
	}
	if bigEndianKeys {
		// Host-order keys of an interval set are stored big-endian and the
		// lookup converts the register first (see compileCompare).
		for i := range ivs {
			ivs[i] = interval{bigEndian(f, ivs[i].lo), bigEndian(f, ivs[i].hi)}
		}
	}
	// Interval sets: start and end+1 elements, sorted, with the leading
	// "0 end" element nft adds when the first interval starts above zero.
	sort.Slice(ivs, func(i, j int) bool { return bytes.Compare(ivs[i].lo, ivs[j].lo) < 0 })
	for i := 1; i < len(ivs); i++ {
		if bytes.Compare(ivs[i].lo, ivs[i-1].hi) <= 0 {
			c.errorf(s.Pos, "set elements %s overlap", valueSource(s))
			return nil, false
		}
	}
	if len(ivs) > 0 && !isZero(ivs[0].lo) {
		as.elems = append(as.elems, nftables.SetElement{Key: make([]byte, len(ivs[0].lo)), IntervalEnd: true})
	}
	for i, iv := range ivs {
		if len(as.elems) > 0 && as.elems[len(as.elems)-1].IntervalEnd && bytes.Equal(as.elems[len(as.elems)-1].Key, iv.lo) && i > 0 {
			as.elems = as.elems[:len(as.elems)-1]
		}
		as.elems = append(as.elems, nftables.SetElement{Key: iv.lo})
		if end, ok := increment(iv.hi); ok {
			as.elems = append(as.elems, nftables.SetElement{Key: end, IntervalEnd: true})
		}
	}
	return as, true
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// increment returns b+1 as a big-endian number, and false on overflow.
func increment(b []byte) ([]byte, bool) {
	r := bytes.Clone(b)
	for i := len(r) - 1; i >= 0; i-- {
		r[i]++
		if r[i] != 0 {
			return r, true
		}
	}
	return nil, false
}
