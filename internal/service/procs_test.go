package service

import (
	"log/slog"
	"runtime"
	"testing"

	"github.com/nfmirror/nfmirror/nfrules"
)

func TestProcsFor(t *testing.T) {
	tests := []struct {
		dests, cpus, want int
	}{
		{0, 4, 1},
		{1, 1, 1},
		{1, 2, 1},
		{1, 16, 1},
		{2, 2, 2},
		{3, 2, 2},
		{3, 16, 3},
	}
	for _, tc := range tests {
		if got := procsFor(tc.dests, tc.cpus); got != tc.want {
			t.Errorf("procsFor(%d, %d) = %d, want %d", tc.dests, tc.cpus, got, tc.want)
		}
	}
}

// TestMatchProcs checks what the runtime reports after a plan starts: one
// thread per destination, within the CPUs at start, and an operator's
// GOMAXPROCS left alone.
func TestMatchProcs(t *testing.T) {
	restore := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(restore) })
	dir := t.TempDir()
	tests := []struct {
		name string
		env  string
		text string
		want int
	}{
		{"one port", "", "prerouting {\n    mirror to \"span0\"\n}\n", 1},
		{"port and file", "", "prerouting {\n    mirror to \"span0\"\n}\npostrouting {\n    mirror to file \"" + dir + "/x.pcapng\"\n}\n", min(2, startProcs)},
		{"operator's value", "3", "prerouting {\n    mirror to \"span0\"\n}\n", restore},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runtime.GOMAXPROCS(restore)
			if tc.env != "" {
				t.Setenv("GOMAXPROCS", tc.env)
			}
			plan, err := Load(writeRules(t, tc.text), nfrules.Options{}, nil)
			if err != nil {
				t.Fatalf("Load: %s", nfrules.Describe(err))
			}
			s := &server{cur: &generation{plan: plan}, log: slog.New(slog.DiscardHandler)}
			s.matchProcs()
			if got := runtime.GOMAXPROCS(0); got != tc.want {
				t.Errorf("GOMAXPROCS after matchProcs = %d, want %d", got, tc.want)
			}
		})
	}
}
