package mirror

// ChannelKind says how the kernel hands a channel's copies over.
type ChannelKind int

// The channel kinds.
const (
	// NFLOG is an NFLOG group: best effort, the kernel drops copies rather
	// than hold traffic.
	NFLOG ChannelKind = iota
	// NFQUEUE is an NFQUEUE queue: every packet waits for a verdict, so no
	// copy is lost while the reader keeps up (fail-open past that).
	NFQUEUE
)

// String names the kind as status shows it.
func (k ChannelKind) String() string {
	if k == NFQUEUE {
		return "nfqueue"
	}
	return "nflog"
}

// Channel is one kernel source of copies the pipeline reads, and the
// destination its copies go to. The service builds them from the compiled
// rules.
type Channel struct {
	Kind ChannelKind
	// Num is the NFLOG group or NFQUEUE queue number.
	Num uint16
	// Dest names the destination (a key of Config.Sinks).
	Dest string
	// Snaplen is the copy range of an NFQUEUE queue (0: whole packets);
	// NFLOG groups copy whole packets, each rule cutting its own.
	Snaplen uint32
	// Netdev is set when some copies may be whole Ethernet frames (from
	// netdev hooks); each copy says which it is.
	Netdev bool
	// RuleIDs lists the rules (Rule.ID) that copy to this channel.
	RuleIDs []int
}

// Rule is what the pipeline knows of a rule: for its counters, and the
// source its copies are filed under in capture files.
type Rule struct {
	ID   int
	Text string
	Hook Hook
	// Device is the device of a netdev hook.
	Device string
}

// source is where the rule takes its copies: its hook, and its device for
// netdev hooks.
func (r Rule) source() Source {
	s := Source{Hook: r.Hook}
	if r.Hook.Netdev() {
		s.Dev = r.Device
	}
	return s
}

// HookNamed returns the Hook of a hook name as nftables spells it
// ("prerouting", "ingress", ...), HookUnknown for another.
func HookNamed(name string) Hook {
	for i, n := range hookNames {
		if n == name && i > 0 {
			return Hook(i)
		}
	}
	return HookUnknown
}
