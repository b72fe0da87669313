package mirror

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
	// (nfrules.PlannedRule.ID), or -1 when unknown.
	RuleID int
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
