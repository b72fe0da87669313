package service

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfmirror/nfmirror/internal/config"
	"github.com/nfmirror/nfmirror/mirror"
	"github.com/nfmirror/nfmirror/nfrules"
)

func writeRules(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.nft")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name      string
		text      string
		devices   bool
		wantErr   string // substring of nfrules.Describe(err); "" = success
		wantDests []string
	}{
		{"good, devices not checked", "prerouting {\n    tcp dport 80 mirror to \"nosuch0\"\n}\ningress \"lo\" {\n    mirror to \"nosuch1\"\n}\n", false, "", []string{"nosuch0", "nosuch1"}},
		{"missing mirror device", "prerouting {\n    tcp dport 80 mirror to \"nosuch0\"\n}\n", true, ":2:18: mirror to \"nosuch0\": no such interface\n    tcp dport 80 mirror to \"nosuch0\"\n                 ^", nil},
		{"missing block device", "ingress \"nosuch1\" {\n    mirror to \"lo\"\n}\n", true, ":1:1: ingress \"nosuch1\": no such interface", nil},
		{"syntax error", "prerouting {\n    tcp dport 99999 mirror to \"lo\"\n}\n", false, ":2:15: ", nil},
		{"two errors at once", "ingress \"nosuch1\" {\n    mirror to \"nosuch2\"\n}\n", true, "nosuch2", nil},
		{"mirror to lo", "prerouting {\n    tcp dport 80 mirror to \"lo\"\n}\n", true, `:2:18: mirror to "lo": the loopback device cannot be a mirror port`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var devices *Devices
			if tc.devices {
				devices = DevicesOf(config.Default())
			}
			plan, err := Load(writeRules(t, tc.text), nfrules.Options{}, devices)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Load: %s", nfrules.Describe(err))
				}
				if got := destinations(plan); !slices.Equal(got, tc.wantDests) {
					t.Errorf("destinations = %v, want %v", got, tc.wantDests)
				}
				return
			}
			var in *InputError
			if !errors.As(err, &in) {
				t.Fatalf("Load error %v, want an *InputError", err)
			}
			if d := nfrules.Describe(err); !strings.Contains(d, tc.wantErr) {
				t.Errorf("Describe:\n%s\nwant it to contain:\n%s", d, tc.wantErr)
			}
		})
	}
}

// TestLoadRefusesNonRegularFiles: a FIFO (or a directory) as the rules file
// is refused at once instead of blocking the reader for good.
func TestLoadRefusesNonRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "rules.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{fifo, dir} {
		done := make(chan error, 1)
		go func() { _, err := Load(path, nfrules.Options{}, nil); done <- err }()
		select {
		case err := <-done:
			var in *InputError
			if !errors.As(err, &in) || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("Load(%s) = %v, want an input error saying it is not a regular file", path, err)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("Load(%s) blocks", path)
		}
	}
}

func TestStatusTable(t *testing.T) {
	st := Status{
		Rules:       "/etc/nfmirror/rules.nft",
		Started:     time.Now().Add(-time.Minute),
		Reloads:     2,
		Total:       Counts{Matched: 40, Mirrored: 35, LostInKernel: 2, Dropped: mirror.RuleDrops{QueueFull: 1, SendError: 2}},
		SinceReload: Counts{Matched: 12, Mirrored: 11, Dropped: mirror.RuleDrops{QueueFull: 1}},
		RuleStats: []RuleStatus{{ID: 0, Pos: "rules.nft:3:5", Text: `tcp dport 80 mirror to "span0"`,
			Counts: Counts{Matched: 12, Mirrored: 11, Dropped: mirror.RuleDrops{QueueFull: 1}}}},
		Destinations: []DestinationStatus{{
			DestStats: mirror.DestStats{Name: "span0", Packets: 11, Bytes: 990, Errors: 2},
			Kind:      "port",
			Writer: &mirror.WriterStats{
				Devices: []mirror.WriterDevice{{Families: []string{"ipv4"}, Name: "span0", MTU: 1500, Segments: "nfmirror", Carrier: true}},
				IP:      9, Ethernet: 2, Segmented: 1, NoRoute: 2,
			},
		}},
		Channels: []mirror.ChannelStats{{Kind: "nflog", Num: 6000, Dest: "span0", Received: 12, SeqGaps: 3}},
	}
	var b bytes.Buffer
	st.WriteTable(&b)
	out := b.String()
	// Each row carries its own figures, in the order of its header.
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^since start: 40 matched, 35 mirrored, 5 lost \(2 in the kernel, 1 queue full, 2 send errors\)$`),
		regexp.MustCompile(`(?m)^since the last reload: 12 matched, 11 mirrored, 1 lost$`),
		regexp.MustCompile(`(?m)^\s*0\s+12\s+11\s+1\s+0\s+0\s+rules\.nft:3:5\s+tcp dport 80 mirror to "span0"\s*$`),
		regexp.MustCompile(`(?m)^\s*DESTINATION\s+KIND\s+PACKETS\s+BYTES\s+ERRORS\s*$`),
		regexp.MustCompile(`(?m)^\s*span0\s+port\s+11\s+990\s+2\s*$`),
		regexp.MustCompile(`(?m)^span0: ipv4 by device span0 \(mtu 1500, larger copies cut by nfmirror\); 9 IP copies framed, 2 Ethernet frames as seen, 1 segmented here`),
		regexp.MustCompile(`(?m)^\s*nflog 6000\s+span0\s+12\s+3\s+0\s+0\s+0\s*$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("status table lacks a line matching %s:\n%s", want, out)
		}
	}
	var j bytes.Buffer
	if err := st.WriteJSON(&j); err != nil || !strings.Contains(j.String(), `"matched": 12`) {
		t.Errorf("WriteJSON = %v:\n%s", err, j.String())
	}
}
