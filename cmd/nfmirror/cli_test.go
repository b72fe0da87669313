package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.nft")
	if err := os.WriteFile(bad, []byte("prerouting {\n    tcp dport 99999 mirror to \"span0\"\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	example := filepath.Join("..", "..", "nfrules", "testdata", "example.nft")
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // regexp
		stderr string // regexp
	}{
		{"no args", nil, exitUsage, `^$`, `Usage:`},
		{"help", []string{"help"}, exitOK, `(?s)nfmirror check.*nfmirror apply.*mirror to`, `^$`},
		{"unknown command", []string{"mirror"}, exitUsage, `^$`, `unknown command "mirror"`},
		{"version", []string{"version"}, exitOK, `^nfmirror `, `^$`},
		{"check example", []string{"check", example}, exitOK, `(?s)table inet nfmirror.*hook prerouting priority mangle \+ 10.*log prefix "nfm:0" group 6000.*table netdev nfmirror.*hook ingress device "eth0"`, `^$`},
		{"check custom table and groups", []string{"check", "-table", "span", "-nflog-base", "100", example}, exitOK, `(?s)table inet span .*group 100`, `^$`},
		{"check bad file", []string{"check", bad}, exitUsage, `^$`, `bad\.nft:2:15: .*99999.*\n.*tcp dport 99999.*\n +\^`},
		{"check missing file", []string{"check", filepath.Join(dir, "nope.nft")}, exitUsage, `^$`, `nope\.nft`},
		{"check without file", []string{"check"}, exitUsage, `^$`, `want one rules file`},
		{"check bad fwmark", []string{"check", "-fwmark", "0x10/0xffffffff", example}, exitUsage, `^$`, `low 8 bits`},
		{"check help", []string{"check", "-h"}, exitOK, `(?s)Usage: nfmirror check.*-fwmark`, `^$`},
		{"status with nothing running", []string{"status", "-socket", filepath.Join(dir, "none.sock")}, exitError, `^$`, `no nfmirror is running`},
		{"apply bad file", []string{"apply", "-socket", filepath.Join(dir, "a.sock"), bad}, exitUsage, `^$`, `bad\.nft:2:15: `},
		{"apply unknown nflog reader", []string{"apply", "-nflog-reader", "fast", example}, exitUsage, `^$`, `-nflog-reader "fast": want builtin or go-nflog`},
		{"apply unknown nfqueue reader", []string{"apply", "-nfqueue-reader", "fast", example}, exitUsage, `^$`, `-nfqueue-reader "fast": want builtin or go-nfqueue`},
		{"apply help names the readers", []string{"apply", "-h"}, exitOK, `(?s)-nflog-reader.*-nfqueue-reader`, `^$`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit status %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout.String(), stderr.String())
			}
			if !regexp.MustCompile(tc.stdout).MatchString(stdout.String()) {
				t.Errorf("stdout %q does not match %q", stdout.String(), tc.stdout)
			}
			if !regexp.MustCompile(tc.stderr).MatchString(stderr.String()) {
				t.Errorf("stderr %q does not match %q", stderr.String(), tc.stderr)
			}
		})
	}
}

func TestMarkFlag(t *testing.T) {
	for _, tc := range []struct {
		in         string
		mark, mask uint32
		ok         bool
	}{
		{"0x6e666d00", 0x6e666d00, 0xffffff00, true},
		{"0x100/0xff00", 0x100, 0xff00, true},
		{"0x1234ff/0xffff00", 0x123400, 0xffff00, true}, // the destination byte is masked off
		{"0", 0, 0, false},
		{"0x10", 0, 0, false}, // nothing left under the mask
		{"12/0xffffffff", 0, 0, false},
		{"zz", 0, 0, false},
	} {
		var m markFlag
		err := m.Set(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("Set(%q) error %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && (m.mark != tc.mark || m.mask != tc.mask) {
			t.Errorf("Set(%q) = %#x/%#x, want %#x/%#x", tc.in, m.mark, m.mask, tc.mark, tc.mask)
		}
		if tc.ok && !strings.Contains(m.String(), "/") {
			t.Errorf("String() = %q", m.String())
		}
	}
}
