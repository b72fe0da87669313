package integration

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/gopacket/pcapgo"
)

// capture is a tcpdump writing every frame of one interface to a pcap file.
type capture struct {
	l    *lab
	cmd  *exec.Cmd
	file string
	errb *bytes.Buffer
	// lens holds each frame's length on the wire, once frames returned
	// (more than the frame's data when the snaplen cut it).
	lens []int
}

// mirrorSnaplen is the snaplen of captures on the mirror port: larger than
// any wire-sized frame, small enough that tcpdump's ring (TPACKET_V3 blocks
// sized for the snaplen, retired every millisecond in immediate mode) holds
// tens of thousands of frames. A larger frame is still seen: its wire
// length is recorded.
const mirrorSnaplen = 2048

// capture starts tcpdump on dev in namespace ns, whole frames. dir is "" for
// both directions, or "in"/"out". filter is a pcap filter expression or "".
func (l *lab) capture(ns, dev, dir, filter string) *capture {
	return l.captureSnap(ns, dev, dir, filter, 0)
}

// mirrorCapture captures what arrives at the monitor's mirror port.
func (l *lab) mirrorCapture(filter string) *capture {
	return l.captureSnap(l.monitor, "mon0", "in", filter, mirrorSnaplen)
}

// captureSnap is capture with a snaplen (0: whole frames).
func (l *lab) captureSnap(ns, dev, dir, filter string, snap int) *capture {
	l.t.Helper()
	c := &capture{l: l, file: filepath.Join(l.dir, ns+"-"+dev+"-"+dir+".pcap"), errb: &bytes.Buffer{}}
	args := []string{"tcpdump", "-i", dev, "-nn", "-s", strconv.Itoa(snap), "-B", "131072", "--immediate-mode", "-U", "-w", c.file}
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
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return out
		}
		if err != nil {
			c.l.t.Fatalf("read %s: %v", c.file, err)
		}
		out = append(out, append([]byte(nil), data...))
		c.lens = append(c.lens, ci.Length)
	}
}
