package service

import (
	"os"
	"runtime"
)

// startProcs is GOMAXPROCS as the runtime chose it at start: the CPUs the
// process may use (affinity and cgroup quota). matchProcs never goes above it.
var startProcs = runtime.GOMAXPROCS(0)

// procsFor is how many threads may run Go code at once for a plan with
// dests destinations, on a host that gives the process cpus of them: one
// per destination, at least one, at most cpus. A destination's writer is
// where a copy's user-space cycles go and the readers hand it their copies;
// with no more threads than writers, the hand-off is mostly a run-queue
// push on the running thread instead of a wake-up of an idle one (the bench
// measures what that saves, see bench/README.md). A thread blocked in a
// system call still lets another run Go code, so a writer in sendmmsg does
// not stall the readers.
func procsFor(dests, cpus int) int {
	return max(1, min(dests, cpus))
}

// matchProcs sets GOMAXPROCS to procsFor the running plan. An operator's
// GOMAXPROCS wins, and without a running plan the start value stays.
func (s *server) matchProcs() {
	if os.Getenv("GOMAXPROCS") != "" || s.cur == nil {
		return
	}
	n := procsFor(len(s.cur.plan.Destinations()), startProcs)
	if runtime.GOMAXPROCS(n) != n {
		s.log.Debug("threads for Go code matched to the destinations", "gomaxprocs", n)
	}
}
