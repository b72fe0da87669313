// Package integration holds nfmirror's end-to-end tests: each test builds its
// own throwaway lab of network namespaces (client, router, server, monitor),
// runs the built nfmirror binary in the router with `ip netns exec`, drives
// real traffic (ping, curl, iperf3) and asserts on what a user would observe:
// packets captured on the mirror port against a reference capture, exit
// codes, counters, and the kernel's ruleset, ip rules and routes.
//
// The tests need root; they skip with a reason otherwise, and fail instead
// when NFMIRROR_REQUIRE_ROOT=1 (as make test sets) so CI cannot pass by
// skipping.
package integration
