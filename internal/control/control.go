// Package control is the local control socket of a running nfmirror: a unix
// socket on which the daemon answers status requests with one JSON document,
// and the client that `nfmirror status` uses to read it.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// DefaultSocket is where `nfmirror apply` listens and `nfmirror status` asks.
const DefaultSocket = "/run/nfmirror/nfmirror.sock"

// Server answers every connection on its unix socket with the JSON encoding
// of whatever its status function returns at that moment.
type Server struct {
	path   string
	ln     net.Listener
	status func() any
	log    *slog.Logger
	wg     sync.WaitGroup
}

// Listen creates the socket at path (its directory too) and returns a server
// that is not yet serving. A stale socket left by a killed instance is
// replaced; a socket that still answers belongs to a running instance and is
// an error.
func Listen(path string, status func() any, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create control socket directory: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: another nfmirror is running (stop it first, or pass --socket)", path)
	}
	_ = os.Remove(path) // a stale socket from a killed instance
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod control socket %s: %w", path, err)
	}
	return &Server{path: path, ln: ln, status: status, log: log}, nil
}

// Run serves status requests until ctx is cancelled, then closes the
// listener, removes the socket and returns nil.
func (s *Server) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	defer os.Remove(s.path)
	for {
		c, err := s.ln.Accept()
		if err != nil {
			s.wg.Wait()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept on control socket: %w", err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if err := json.NewEncoder(c).Encode(s.status()); err != nil {
				s.log.Debug("write status", "err", err)
			}
		}()
	}
}

// Close stops listening and removes the socket; Run returns soon after.
func (s *Server) Close() error {
	err := s.ln.Close()
	_ = os.Remove(s.path)
	return err
}

// ErrNotRunning means no nfmirror answers on the control socket.
var ErrNotRunning = errors.New("no nfmirror is running")

// Query reads one status document from the instance listening at path and
// decodes it into v.
func Query(path string, v any) error {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return fmt.Errorf("%w (no answer on %s: %w)", ErrNotRunning, path, err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	data, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("read status from %s: %w", path, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode status from %s: %w", path, err)
	}
	return nil
}
