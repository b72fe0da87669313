package mirror

import (
	"time"

	"github.com/nfmirror/nfmirror/internal/nfnl"
)

// Packet is one copy on its way from a source to a sink.
//
// Sources own the memory behind Data: a sink must not keep Data after Send
// returns (copy it if it must).
type Packet struct {
	// Data is the copy: for an IP channel, the IP packet from its network
	// header on (IPv4 or IPv6, told apart by the version nibble); for an L2
	// channel, the whole Ethernet frame including its MAC header.
	Data []byte
	// OrigLen is the packet's length on the wire when the kernel truncated the
	// copy to a snaplen; 0 when Data is the whole packet.
	OrigLen int
	// L2 is true when Data is a whole Ethernet frame (a netdev channel)
	// rather than an IP packet.
	L2 bool
	// RuleID is the index of the rule that selected the packet
	// (Rule.ID), or -1 when unknown.
	RuleID int
	// Time is when the kernel saw the packet, when it says
	// (NFULA_TIMESTAMP, NFQA_TIMESTAMP: the kernel stamps copies from
	// netdev hooks, prerouting, input and forward), else when the reader
	// received the copy (output and postrouting copies: at most the
	// reader's batch timeout later). Zero when unknown.
	Time time.Time
	// Hook is where the kernel took the copy; HookUnknown when the
	// source does not say.
	Hook Hook
	// Dev is the interface index of the device the copy was taken on: at
	// netdev hooks and at prerouting, input and forward the device it came
	// in by, at output and postrouting the device it leaves by; 0 when
	// unknown.
	Dev int
}

// Hook names where the kernel took a copy.
type Hook uint8

// The hooks a copy can be taken at.
const (
	HookUnknown Hook = iota
	HookPrerouting
	HookInput
	HookForward
	HookOutput
	HookPostrouting
	// HookIngress and HookEgress are the netdev hooks of one device.
	HookIngress
	HookEgress
)

var hookNames = [...]string{"unknown", "prerouting", "input", "forward", "output", "postrouting", "ingress", "egress"}

// String returns the hook's name as the rules language spells it.
func (h Hook) String() string {
	if int(h) < len(hookNames) {
		return hookNames[h]
	}
	return "unknown"
}

// Netdev reports whether h is a netdev hook (ingress or egress of a device).
func (h Hook) Netdev() bool { return h == HookIngress || h == HookEgress }

// Egress reports whether a copy taken at h was on its way out of the host:
// output, postrouting and netdev egress. Prerouting, input, forward and
// netdev ingress see packets that came in (forward: a packet passing
// through, counted as received, as a switch counts a port's ingress).
func (h Hook) Egress() bool { return h == HookOutput || h == HookPostrouting || h == HookEgress }

// hookFromKernel maps the hook number of an NFLOG or NFQUEUE message to a
// Hook: netdev hooks for the netdev family, inet hooks for the others.
func hookFromKernel(family, hook uint8) Hook {
	if family == nfnl.NfprotoNetdev {
		switch hook {
		case nfnl.NfNetdevIngress:
			return HookIngress
		case nfnl.NfNetdevEgress:
			return HookEgress
		}
		return HookUnknown
	}
	if hook <= 4 { // NF_INET_PRE_ROUTING .. NF_INET_POST_ROUTING
		return HookPrerouting + Hook(hook)
	}
	return HookUnknown
}

// devFor picks the device a copy was taken on from the input and output
// interface indexes the kernel reports: the input device for copies that
// came in, the output device for copies on their way out.
func devFor(h Hook, in, out uint32) int {
	if h.Egress() {
		return int(out)
	}
	return int(in)
}

// Sink replays copies onto one mirror interface.
type Sink interface {
	// Send replays one copy. It must not block for long: a sink that cannot
	// send now returns an error, which the pipeline counts as a drop.
	Send(p *Packet) error
	// Close releases the sink's sockets.
	Close() error
}

// BatchSink is a Sink that replays several copies at once (one sendmmsg for
// many), which the pipeline prefers when a sink offers it.
type BatchSink interface {
	Sink
	// SendBatch replays pkts in order and sets errs[i] to the result of
	// pkts[i] (nil when sent); len(errs) == len(pkts). Like Send it must not
	// block for long, and must not keep the packets' Data after it returns.
	SendBatch(pkts []*Packet, errs []error)
}
