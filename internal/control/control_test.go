package control

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestQueryRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "nfm.sock")
	n := 0
	srv, err := Listen(path, func() any { n++; return map[string]int{"calls": n} }, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()

	for want := 1; want <= 2; want++ {
		var got map[string]int
		if err := Query(path, &got); err != nil {
			t.Fatal(err)
		}
		if got["calls"] != want {
			t.Fatalf("status calls = %d, want %d", got["calls"], want)
		}
	}
	if _, err := Listen(path, func() any { return nil }, nil); err == nil {
		t.Fatal("second Listen on a live socket succeeded, want an error")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	var v any
	if err := Query(path, &v); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Query after shutdown = %v, want ErrNotRunning", err)
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nfm.sock")
	srv, err := Listen(path, func() any { return 1 }, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Simulate a kill -9: the listener dies, the file stays.
	srv.ln.(interface{ SetUnlinkOnClose(bool) }).SetUnlinkOnClose(false)
	srv.ln.Close()
	srv2, err := Listen(path, func() any { return 2 }, nil)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	srv2.Close()
}
