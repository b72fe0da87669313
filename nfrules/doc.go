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
//     nft's own syntax, decoded from the compiled expressions the way "nft
//     list" prints what the kernel holds.
//
// Every field a rule can match is one row of the table in fields.go (Fields,
// FieldList): where the field lives, its Datatype (byte order, symbolic
// names, nft's print format), the forms of match it takes and the hooks that
// have it. The parser, the type checks, the encoding of values and set
// elements, the compiler and the decoder all read that table, and compile
// to what nft 1.0.6 compiles from the same text.
//
// Nothing in the parser or compiler needs root or touches the kernel.
package nfrules
