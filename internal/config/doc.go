// Package config is the one place for the identity of an nfmirror instance
// and every default: the names and numbers of the kernel objects it owns
// (nftables tables, fwmark, ip rule priority, routing tables, NFLOG groups
// and NFQUEUE queues) and where it keeps its state, lock and control socket.
//
// Two instances run side by side when their identities differ; the state
// directory's files are named after the table, so instances with their own
// -table never share a state file, lock or socket even in one directory.
package config
