package nfrules

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that Parse never panics or hangs, and that every error it
// reports points at a real line of the input.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"good", "bad"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*.nft"))
		for _, name := range files {
			src, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(src)
		}
	}
	for _, seed := range []string{
		"",
		"prerouting {",
		"}}}}{{{{",
		"define a = { $a }",
		"define a = {\n1,\n2\n}\nprerouting { tcp dport $a mirror to s }",
		"prerouting { tcp dport 1-2-3 mirror to s }",
		"ingress $x { mirror to $x }",
		"prerouting { ip saddr ::/0 mirror to s }",
		"prerouting { mark & ( 1 | 2 mirror to s }",
		"prerouting { ct state , mirror to s }",
		"prerouting { \"\n mirror to s }",
		"\xff",
		"prerouting { tcp dport { { 1 } } mirror to s }\r\n",
		"define a = { 1, 2 }\ndefine b = { $a, $a }\ndefine c = { $b, $b, $b, $b }\nprerouting { tcp dport $c mirror to s }",
	} {
		f.Add([]byte(seed))
	}
	// Includes resolve in an empty directory, made once: a directory per
	// input cost most of the fuzzer's time.
	name := filepath.Join(f.TempDir(), "fuzz.nft")
	f.Fuzz(func(t *testing.T, src []byte) {
		rs, err := Parse(name, src)
		if err == nil {
			if rs == nil || len(rs.Blocks) == 0 {
				t.Fatal("nil error without rules")
			}
			return
		}
		var list ErrorList
		if !errors.As(err, &list) || len(list) == 0 || len(list) > maxErrors {
			t.Fatalf("error %v (%T) is not a non-empty ErrorList of at most %d", err, err, maxErrors)
		}
		lines := bytes.Count(src, []byte("\n")) + 1
		for _, e := range list {
			if e.Pos.File != name {
				t.Fatalf("error outside the input: %v", e)
			}
			if e.Pos.Line < 1 || e.Pos.Line > lines || e.Pos.Col < 1 {
				t.Fatalf("error at %d:%d outside the input's %d lines: %v", e.Pos.Line, e.Pos.Col, lines, e)
			}
		}
		_ = Describe(err)
	})
}
