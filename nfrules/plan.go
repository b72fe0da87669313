package nfrules

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

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

// DestKind says what a mirror destination is.
type DestKind int

// The kinds of destinations.
const (
	// DestPort is a local mirror port: copies are written onto it as
	// frames.
	DestPort DestKind = iota
	// DestVXLAN is a remote collector reached over VXLAN (RFC 7348).
	DestVXLAN
	// DestGRE is a remote collector reached over Ethernet-over-GRE (0x6558).
	DestGRE
	// DestERSPAN is a remote collector reached over ERSPAN type II or III.
	DestERSPAN
	// DestFile is a pcapng capture file.
	DestFile
)

// Destination is where a mirror statement's copies go.
type Destination struct {
	Kind DestKind
	// Port is the device of a DestPort.
	Port string
	// Addr is a collector's address (IPv4 or IPv6).
	Addr netip.Addr
	// VNI is a VXLAN collector's network identifier; UDPPort its UDP
	// port (0: 4789).
	VNI     uint32
	UDPPort uint16
	// Session is an ERSPAN collector's session id; Version is 2 (type II)
	// or 3 (type III).
	Session uint16
	Version int
	// Path is a capture file; RotateBytes and RotateEvery start a new file
	// past that size or age (0: never); Keep bounds the files kept (0: all).
	Path        string
	RotateBytes int64
	RotateEvery time.Duration
	Keep        int
}

// Key is the destination's canonical text, as status and metrics name it:
// the device of a port, and for others the nft-style words that made it,
// defaults left out ("vxlan 198.18.2.9 vni 42", "file \"/var/lib/x.pcapng\"").
// Two statements with the same key share one destination.
func (d Destination) Key() string {
	switch d.Kind {
	case DestVXLAN:
		s := fmt.Sprintf("vxlan %s vni %d", d.Addr, d.VNI)
		if d.UDPPort != 0 && d.UDPPort != 4789 {
			s += fmt.Sprintf(" port %d", d.UDPPort)
		}
		return s
	case DestGRE:
		return "gre " + d.Addr.String()
	case DestERSPAN:
		s := fmt.Sprintf("erspan %s session %d", d.Addr, d.Session)
		if d.Version == 3 {
			s += " version 3"
		}
		return s
	case DestFile:
		return "file " + strconv.Quote(d.Path)
	}
	return d.Port
}

// Local reports whether the destination is a local mirror port.
func (d Destination) Local() bool { return d.Kind == DestPort }

// Destinations lists the plan's destinations in first-use order: local
// port i (counting ports only) gets fwmark MARK|i and routing table TABLE+i.
func (p *Plan) Destinations() []Destination { return p.dests }

// Destination returns the destination whose Key is key.
func (p *Plan) Destination(key string) (Destination, bool) {
	for _, d := range p.dests {
		if d.Key() == key {
			return d, true
		}
	}
	return Destination{}, false
}
