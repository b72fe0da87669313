package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Server answers every connection on its unix socket with the JSON encoding
// of whatever its status function returns at that moment.
type Server struct {
	path   string
	ln     net.Listener
	status func() any
	log    *slog.Logger
	wg     sync.WaitGroup
	slots  chan struct{}
}

const (
	// maxClients bounds the connections served at once.
	maxClients = 32
	// clientDeadline bounds how long one connection may take.
	clientDeadline = 2 * time.Second
)

// Listen creates the socket at path and returns a server that is not yet
// serving. The socket is the caller's alone (mode 0600), or, with group set,
// also its members' (group-owned, mode 0660). A stale socket left by a
// killed instance is replaced; a socket that still answers belongs to a
// running instance and is an error, and so is anything at path that is not
// a socket: Listen never deletes a file it did not make.
func Listen(path, group string, status func() any, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("control socket %s: a %s is in the way, not a socket: remove it or choose another -socket", path, typeName(fi.Mode()))
		}
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: another nfmirror answers on it (stop it first, or give this one its own -socket)", path)
		}
		if err := os.Remove(path); err != nil { // a stale socket from a killed instance
			return nil, fmt.Errorf("remove stale control socket: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create control socket directory: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on control socket %s: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false) // Run removes it, once
	if err := setOwner(path, group); err != nil {
		ln.Close()
		os.Remove(path)
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return &Server{path: path, ln: ln, status: status, log: log, slots: make(chan struct{}, maxClients)}, nil
}

func typeName(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "regular file"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	}
	return m.Type().String()
}

// Run serves status requests until ctx is cancelled, then closes the
// listener, waits for the connections being served (each is bounded by its
// deadline), removes the socket and returns nil.
func (s *Server) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	defer os.Remove(s.path)
	defer s.wg.Wait()
	for {
		select {
		case s.slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		c, err := s.ln.Accept()
		if err != nil {
			<-s.slots
			if ctx.Err() != nil {
				return nil
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept on control socket: %w", err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.slots }()
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(clientDeadline))
			if err := json.NewEncoder(c).Encode(s.status()); err != nil {
				s.log.Debug("write status", "err", err)
			}
		}()
	}
}

// ErrNotRunning means no nfmirror answers on the control socket.
var ErrNotRunning = errors.New("no nfmirror is running")

// Query reads one status document from the instance listening at path and
// decodes it into v.
func Query(path string, v any) error {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("control socket %s: permission denied (it is root's: run as root)", path)
		}
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

// setOwner gives the socket its mode and, with group, its group.
func setOwner(path, group string) error {
	if group == "" {
		return os.Chmod(path, 0o600)
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return fmt.Errorf("socket group: %w", err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return fmt.Errorf("socket group %s: gid %q", group, g.Gid)
	}
	if err := os.Chown(path, -1, gid); err != nil {
		return fmt.Errorf("give it to group %s: %w", group, err)
	}
	return os.Chmod(path, 0o660)
}
