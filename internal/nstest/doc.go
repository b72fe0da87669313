// Package nstest creates throwaway network namespaces for tests that need
// root: a uniquely named namespace ("nfm-" + random hex) with loopback up and
// a few links, an fd to hand to namespace-aware constructors
// (nftables.WithNetNSFd, netlink.NewHandleAt, go-nflog's Config.NetNS), a
// netlink handle bound to that fd, and helpers to run commands inside it with
// "ip netns exec" or "ip -n". Everything is removed by t.Cleanup, even when
// the test fails.
//
// The test process itself never enters the namespace. Run suites that use it
// under "flock /tmp/nfmirror-netns.lock go test ..." so that two namespace
// suites never run at once.
package nstest
