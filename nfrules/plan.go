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
// packets to, and where userspace must replay them.
//
// Every best-effort rule that copies to a destination shares one NFLOG group,
// whatever its hook, family or snaplen: one group is one ordered queue in the
// kernel, so the copies reach the destination in the order the kernel made
// them (a snaplen is per rule: nft's "log snaplen"). Lossless rules share one
// NFQUEUE queue per destination and snaplen, because a queue's copy range is
// set once for the queue.
type Channel struct {
	Kind ChannelKind
	Num  uint16 // NFLOG group or NFQUEUE queue number
	Dest string // the mirror destination copies are written to
	// Snaplen is the copy range of an NFQUEUE queue (0 = whole packet).
	// NFLOG groups copy whole packets up to each rule's own snaplen, so it
	// is 0 for them.
	Snaplen uint32
	// Shared is true when a mirror statement to Dest says "shared": the
	// destination carries the host's own traffic too.
	Shared bool
	// Netdev is true when rules of netdev blocks copy to this channel: some
	// of its copies are whole Ethernet frames, told apart per copy by the
	// family the kernel reports.
	Netdev bool
	// RuleIDs lists the rules (Plan.Rules indices) that copy to this channel.
	RuleIDs []int
}

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

// Shared reports whether the destination dest is shared with the host's own
// traffic: a mirror statement to it says "shared".
func (p *Plan) Shared(dest string) bool {
	for _, c := range p.Channels {
		if c.Dest == dest && c.Shared {
			return true
		}
	}
	return false
}
