package nfrules

// ChannelKind says how the kernel hands copies to userspace.
type ChannelKind int

// The copy channels.
const (
	// ChannelNFLOG copies through an NFLOG group ("log group G"): best
	// effort, the kernel drops copies when the reader is slow and production
	// traffic is never held.
	ChannelNFLOG ChannelKind = iota
	// ChannelNFQUEUE copies through an NFQUEUE queue (xt NFQUEUE target with
	// bypass, through nft_compat): every packet waits for a verdict, so no copy
	// is lost while the reader keeps up; with no reader the packet passes
	// (fail-open).
	ChannelNFQUEUE
)

// String names the channel kind.
func (k ChannelKind) String() string {
	if k == ChannelNFQUEUE {
		return "nfqueue"
	}
	return "nflog"
}

// Channel is one NFLOG group or NFQUEUE queue that the compiled rules copy
// packets to, and where userspace must replay them. Rules that share a
// destination, a family, a hook kind, a snaplen and a kind share a channel.
type Channel struct {
	Kind    ChannelKind
	Num     uint16 // NFLOG group or NFQUEUE queue number
	Family  Family
	Hook    Hook   // for netdev channels, HookIngress or HookEgress; for inet, the first hook using it
	Device  string // for netdev channels, the device the block reads
	Dest    string // the mirror interface copies are replayed onto
	Snaplen uint32 // 0 = whole packet
	// RuleIDs lists the rules (Plan.Rules indices) that copy to this channel.
	RuleIDs []int
}

// L2 reports whether copies on this channel are whole Ethernet frames to be
// written byte-exact (netdev blocks) rather than IP packets to be routed.
func (c *Channel) L2() bool { return c.Family == FamilyNetdev }

// PlannedRule is one rule of the source file as compiled, for listings,
// counters and status.
type PlannedRule struct {
	ID       int // index in Plan.Rules; also carried in the NFLOG prefix "nfm:ID"
	Pos      Pos
	Text     string
	Hook     Hook
	Device   string
	Channels []int // indices in Plan.Channels, one per mirror statement
}
