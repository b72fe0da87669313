package service

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := Load(writeRules(t, tc.text), nfrules.Options{}, tc.devices)
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

func TestStatusTable(t *testing.T) {
	st := Status{
		Rules:   "/etc/nfmirror/rules.nft",
		Started: time.Now().Add(-time.Minute),
		RuleStats: []RuleStatus{{ID: 0, Pos: "rules.nft:3:5", Text: `tcp dport 80 mirror to "span0"`, Matched: 12, Mirrored: 11,
			Dropped: mirror.RuleDrops{QueueFull: 1}}},
		Destinations: []mirror.DestStats{{Name: "span0", Packets: 11, Bytes: 990}},
		Channels:     []mirror.ChannelStats{{Kind: "nflog", Num: 6000, Hook: "prerouting", Received: 12, SeqGaps: 3}},
	}
	var b bytes.Buffer
	st.WriteTable(&b)
	out := b.String()
	for _, want := range []string{"RULE", "MATCHED", `tcp dport 80 mirror to "span0"`, "rules.nft:3:5", "span0", "990", "nflog 6000", "LOST IN KERNEL"} {
		if !strings.Contains(out, want) {
			t.Errorf("status table lacks %q:\n%s", want, out)
		}
	}
	var j bytes.Buffer
	if err := st.WriteJSON(&j); err != nil || !strings.Contains(j.String(), `"matched": 12`) {
		t.Errorf("WriteJSON = %v:\n%s", err, j.String())
	}
}
