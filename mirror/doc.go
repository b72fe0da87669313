// Package mirror receives packet copies from the kernel (NFLOG groups and
// NFQUEUE queues) and writes them out — onto mirror ports, to remote
// collectors, into capture files — and counts every copy received, written
// and lost.
//
// A Pipeline reads each channel in a goroutine of its own and queues copies
// per destination without ever waiting for a slow writer (a full queue is a
// counted drop; lossless channels wait a little). Each copy carries where
// and when the kernel took it (Packet.Hook, Dev, Time). Three sinks take
// them:
//
//   - A Writer per local mirror port writes every copy, IP packet or
//     Ethernet frame, with AF_PACKET onto the device the destination's
//     policy route names, as a frame the wire would carry: an Ethernet
//     header built for IP copies, partial checksums completed, super-packets
//     cut to the MTU unless a NIC segments them.
//   - A Collector per remote collector wraps the same frames in VXLAN, GRE
//     or ERSPAN (internal/encap) and writes the outer packets with AF_PACKET
//     on the device of the kernel's route to the collector, to the next
//     hop's MAC from the kernel's neighbour table.
//   - A File per capture destination writes pcapng files, rotated by size
//     or time, with an interface block per source and nfmirror's own drop
//     counts in interface statistics blocks.
//
// Writers and collectors bypass the host's netfilter (inet hooks,
// conntrack, NAT never see the copies) and mark their packets so that
// nfmirror's loop guard never copies them again.
package mirror
