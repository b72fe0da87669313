// Package encap builds the tunnel packets that carry nfmirror's copies to a
// remote collector: VXLAN (RFC 7348), Ethernet over GRE (protocol 0x6558,
// what Linux gretap sends) and ERSPAN types II and III over GRE, in an outer
// IPv4 or IPv6 header. It is pure Go: it builds bytes and opens nothing.
//
// Every copy travels as the Ethernet frame a local mirror port would carry
// (frames from netdev hooks as seen; IP copies behind the Ethernet header
// nfmirror builds for them). An Encapsulator turns one such frame into one
// or more outer IP packets, each given as a header it built and a slice of
// the frame (never copied), ready for a scatter-gather write.
//
// Size policy. A copy plus its encapsulation may exceed the path MTU:
//   - VXLAN and GRE: the outer packet is fragmented to the MTU by the
//     encapsulator (IPv4 with DF clear; IPv6 with a fragment header, as a
//     source may), so the collector's stack reassembles the whole frame.
//   - ERSPAN II and III: the inner frame is truncated to fit and the T bit
//     set, as switches do; the collector sees the frame's beginning.
//
// Both are reported per packet (Result), so a caller can count them.
//
// The decoder (Decode) reads these packets back; tests use it, and tshark,
// to check every field.
package encap
