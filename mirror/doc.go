// Package mirror receives packet copies from the kernel (NFLOG groups and
// NFQUEUE queues) and writes them onto mirror ports, and counts every copy
// received, written and lost.
//
// A Pipeline reads each channel in a goroutine of its own and queues copies
// per destination without ever waiting for a slow writer (a full queue is a
// counted drop; lossless channels wait a little). A Writer per destination
// writes every copy, IP packet or Ethernet frame, with AF_PACKET onto the
// device the destination's policy route names, as a frame the wire would
// carry: an Ethernet header built for IP copies, partial checksums
// completed, super-packets cut to the MTU unless a NIC segments them. The
// host's netfilter (inet hooks, conntrack, NAT) never sees the copies.
package mirror
