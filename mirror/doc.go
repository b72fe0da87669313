// Package mirror receives packet copies from the kernel (NFLOG groups and
// NFQUEUE queues) and replays them onto mirror interfaces: IP copies through
// fwmark policy routing with a raw socket, or written at layer 2 with
// AF_PACKET; Ethernet frames from netdev hooks byte-exact with AF_PACKET. It
// counts every copy received, replayed and lost.
package mirror
