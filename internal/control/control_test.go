package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestQueryRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "nfm.sock")
	n := 0
	srv, err := Listen(path, "", func() any { n++; return map[string]int{"calls": n} }, nil)
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
	if _, err := Listen(path, "", func() any { return nil }, nil); err == nil {
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
	srv, err := Listen(path, "", func() any { return 1 }, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Simulate a kill -9: the listener dies, the file stays.
	srv.ln.Close()
	srv2, err := Listen(path, "", func() any { return 2 }, nil)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	srv2.ln.Close()
}

// TestListenNeverDeletesForeignFiles: a regular file, a directory or a
// symbolic link at the socket path is an error, and stays.
func TestListenNeverDeletesForeignFiles(t *testing.T) {
	dir := t.TempDir()
	for name, make := range map[string]func(string) error{
		"file":    func(p string) error { return os.WriteFile(p, []byte("precious"), 0o644) },
		"dir":     func(p string) error { return os.Mkdir(p, 0o755) },
		"symlink": func(p string) error { return os.Symlink("/etc/hostname", p) },
	} {
		path := filepath.Join(dir, name)
		if err := make(path); err != nil {
			t.Fatal(err)
		}
		if _, err := Listen(path, "", func() any { return 1 }, nil); err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Errorf("%s in the way: Listen = %v, want an error saying it is not a socket", name, err)
		}
		if _, err := os.Lstat(path); err != nil {
			t.Errorf("%s in the way was removed: %v", name, err)
		}
	}
}

// TestClientsCannotWedgeTheServer: 500 connections that never read and 64
// concurrent clients: every client gets its document, and the server stops
// promptly afterwards.
func TestClientsCannotWedgeTheServer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nfm.sock")
	srv, err := Listen(path, "", func() any { return map[string]string{"state": "ok"} }, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var idle []net.Conn
	for range 500 {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatalf("idle connection: %v", err)
		}
		idle = append(idle, c)
	}
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	start := time.Now()
	for range 64 {
		wg.Go(func() {
			var v map[string]string
			if err := Query(path, &v); err != nil || v["state"] != "ok" {
				errs <- fmt.Errorf("query: %v %v", v, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("64 concurrent clients beside 500 idle connections served in %v", time.Since(start).Round(time.Millisecond))
	cancel()
	select {
	case <-done:
	case <-time.After(clientDeadline + 3*time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
