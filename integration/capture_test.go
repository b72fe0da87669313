package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"
)

// capture is a tcpdump writing every frame of one interface to a pcap file.
type capture struct {
	l    *lab
	cmd  *exec.Cmd
	file string
	errb *bytes.Buffer
}

// capture starts tcpdump on dev in namespace ns. dir is "" for both
// directions, or "in"/"out". filter is a pcap filter expression or "".
func (l *lab) capture(ns, dev, dir, filter string) *capture {
	l.t.Helper()
	c := &capture{l: l, file: filepath.Join(l.dir, ns+"-"+dev+"-"+dir+".pcap"), errb: &bytes.Buffer{}}
	args := []string{"tcpdump", "-i", dev, "-nn", "-s", "0", "-B", "131072", "--immediate-mode", "-U", "-w", c.file}
	if dir != "" {
		args = append(args, "-Q", dir)
	}
	if filter != "" {
		args = append(args, filter)
	}
	c.cmd = l.start(ns, nil, c.errb, args...)
	// tcpdump prints "listening on" once its socket is bound.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(c.stderr(), "listening on") {
			return c
		}
		time.Sleep(20 * time.Millisecond)
	}
	l.t.Fatalf("tcpdump on %s did not start: %s", dev, c.stderr())
	return nil
}

func (c *capture) stderr() string {
	w := c.cmd.Stderr.(*lockedWriter)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.String()
}

var droppedRe = regexp.MustCompile(`(?m)^(\d+) packets dropped by kernel`)

// frames stops the capture after a moment of quiet and returns every frame.
func (c *capture) frames() [][]byte {
	c.l.t.Helper()
	time.Sleep(500 * time.Millisecond)
	c.cmd.Process.Signal(syscall.SIGTERM) // not SIGINT: a background shell job ignores it
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
	if m := droppedRe.FindStringSubmatch(c.stderr()); m != nil && m[1] != "0" {
		c.l.t.Fatalf("tcpdump lost packets, the capture cannot be trusted: %s", c.stderr())
	}
	f, err := os.Open(c.file)
	if err != nil {
		c.l.t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		c.l.t.Fatalf("read %s: %v", c.file, err)
	}
	var out [][]byte
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return out
		}
		if err != nil {
			c.l.t.Fatalf("read %s: %v", c.file, err)
		}
		out = append(out, append([]byte(nil), data...))
	}
}

func decodeJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decode JSON: %v\n%s", err, s)
	}
	return v
}
