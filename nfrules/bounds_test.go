package nfrules

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestParseBounds: files built to take the stack, the memory or the time
// are refused quickly, with a position.
func TestParseBounds(t *testing.T) {
	dir := t.TempDir()
	// 16 files, each including the next one three times: 3^15 reads.
	for i := range 16 {
		body := "prerouting {\n    tcp dport 80 mirror to \"span0\"\n}\n"
		if i < 15 {
			next := fmt.Sprintf("f%d.nft", i+1)
			body = strings.Repeat(fmt.Sprintf("include %q\n", next), 3)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d.nft", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fifo := filepath.Join(dir, "fifo.nft")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "incfifo.nft"), []byte("include \"fifo.nft\"\n"), 0o644)
	nested := func(depth int) string {
		return "prerouting {\n    ip saddr " + strings.Repeat("{", depth) + "198.18.0.1" + strings.Repeat("}", depth) + " mirror to \"span0\"\n}\n"
	}
	os.WriteFile(filepath.Join(dir, "deep.nft"), []byte(nested(1_500_000)), 0o644)
	os.WriteFile(filepath.Join(dir, "ok.nft"), []byte(nested(20)), 0o644)
	var big strings.Builder
	big.WriteString("prerouting {\n    tcp dport {")
	for i := range 300_000 {
		fmt.Fprintf(&big, "%d,", i%65536)
	}
	big.WriteString("1} mirror to \"span0\"\n}\n")
	os.WriteFile(filepath.Join(dir, "bigset.nft"), []byte(big.String()), 0o644)
	for _, tc := range []struct {
		file, want string
	}{
		{"f0.nft", "more than 256 includes in all"},
		{"deep.nft", "sets nested more than 32 deep"},
		{"incfifo.nft", "not a regular file"},
		{"fifo.nft", "not a regular file"},
		{"bigset.nft", "set has more than 262144 elements"},
	} {
		start := time.Now()
		_, err := ParseFile(filepath.Join(dir, tc.file))
		took := time.Since(start)
		if err == nil || !strings.Contains(Describe(err), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.file, err, tc.want)
		}
		if took > 5*time.Second {
			t.Errorf("%s: refused after %v", tc.file, took)
		}
	}
	if _, err := ParseFile(filepath.Join(dir, "ok.nft")); err != nil {
		t.Errorf("sets nested 20 deep: %s", Describe(err))
	}
}
