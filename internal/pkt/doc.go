// Package pkt is nfmirror's packet arithmetic, pure and allocation-free:
// IPv4 and IPv6 layouts, one's complement checksums (and completing the
// partial ones the kernel leaves for the device), cutting a GRO/TSO
// super-packet into MTU-sized TCP segments or IP fragments, the
// virtio_net_hdr of a GSO write, and the Ethernet header of an IP copy.
// Package mirror writes what it computes; pkttest builds packets for tests.
package pkt
