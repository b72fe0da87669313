// Package service runs one nfmirror instance: it loads and checks a rules
// file, sets up the mirror ports' policy routing, starts the copy pipeline,
// installs the nftables rules, reloads on request, serves status, and undoes
// all of it on shutdown. The CLI only parses flags and calls it.
//
// The lifecycle in one place: Run takes the instance's lock, clears what a
// killed instance with the same identity left behind, and swaps from nothing
// to the first generation; every SIGHUP swaps to a new generation; shutdown
// removes the rules, drains the last generation and undoes the ports. Only
// Run's goroutine touches the nftables connection that owns the tables; the
// control socket serves status from counters and its own short-lived
// connections, so no client can block a reload or the shutdown.
package service
