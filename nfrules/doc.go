// Package nfrules reads nfmirror rules files and compiles them to nftables.
//
// A rules file is written in nftables syntax: blocks named after nftables
// hooks (prerouting, input, forward, output, postrouting for IPv4 and IPv6;
// ingress "DEV" and egress "DEV" for every frame on a device), each holding
// rules made of nft match expressions followed by one or more
// "mirror to DEST [snaplen N] [lossless]" statements.
//
// The package has three stages, each usable on its own:
//
//   - Parse and ParseFile turn source text into a checked, typed Ruleset.
//     Every problem is reported as an *Error carrying a file:line:col
//     position; several independent problems come back together in an
//     ErrorList.
//   - Compile turns a Ruleset into a Plan: the nftables tables, chains and
//     rules (github.com/google/nftables expressions) that copy matching
//     packets to NFLOG groups or NFQUEUE queues, and the list of copy
//     channels that userspace must serve.
//   - Plan.Install installs the plan atomically in one netlink batch, in
//     tables that nfmirror owns and nothing else; Plan.NFT prints it in
//     nft's own syntax.
//
// Nothing in the parser or compiler needs root or touches the kernel.
package nfrules
