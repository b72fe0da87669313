package nfrules

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.golden from the current output")

// fakeIfindex resolves names without a kernel so golden files do not depend
// on the machine: lo is 1, everything else is an error.
func fakeIfindex(name string) (uint32, error) {
	if name == "lo" {
		return 1, nil
	}
	return 0, errNoSuchIf
}

// TestNFTGolden compiles every good test file and compares Plan.NFT() with
// testdata/golden/NAME.golden (regenerate with go test ./nfrules -update).
func TestNFTGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/good/*.nft")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".nft")
		t.Run(name, func(t *testing.T) {
			rs, err := ParseFile(f)
			if err != nil {
				t.Fatalf("ParseFile: %s", Describe(err))
			}
			p, err := Compile(rs, Options{Ifindex: fakeIfindex})
			if err != nil {
				t.Fatalf("Compile: %s", Describe(err))
			}
			got := p.NFT()
			golden := filepath.Join("testdata", "golden", name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden file (run with -update to create it): %v", err)
			}
			if got != string(want) {
				t.Errorf("NFT() differs from %s (run with -update if the change is intended)\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

// TestNFTLayout checks the parts of the printed ruleset users and the status
// command rely on, on a parsed file.
func TestNFTLayout(t *testing.T) {
	src := `prerouting {
    tcp dport 443 mirror to span0 snaplen 128
    udp dport 53 mirror to span1 lossless
    ip saddr 198.18.0.0/15 mirror to span0 mirror to span1 lossless
}
`
	rs, err := Parse("t.nft", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %s", Describe(err))
	}
	p, err := Compile(rs, Options{})
	if err != nil {
		t.Fatalf("Compile: %s", Describe(err))
	}
	out := p.NFT()
	for _, w := range []string{
		"\t\t# t.nft:2:5\n\t\ttcp dport 443 counter log prefix \"nfm:0\" group 6000 snaplen 128 comment \"nfm:0\"\n",
		"\tchain prerouting_lossless1 {\n\t\ttype filter hook prerouting priority -139; policy accept;\n",
		"\tchain prerouting_lossless2 {\n\t\ttype filter hook prerouting priority -138; policy accept;\n",
		// rules 1 and 2 share one queue: same destination, family and snaplen.
		"# t.nft:3:5\n\t\t# installed: xt target NFQUEUE --queue-num 6000 --queue-bypass",
		"# t.nft:4:5\n\t\t# installed: xt target NFQUEUE --queue-num 6000 --queue-bypass",
		// rule 2 counts in the base chain; its lossless copy does not count again.
		// rules 0 and 2 copy to span0 through one group, whatever their snaplens.
		"ip saddr 198.18.0.0/15 counter log prefix \"nfm:2\" group 6000 comment \"nfm:2\"\n",
		"\t\tip saddr 198.18.0.0/15 comment \"nfm:2\"\n",
		"\t\tudp dport 53 counter comment \"nfm:1\"\n",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("NFT() lacks %q:\n%s", w, out)
		}
	}
	if len(p.Channels) != 2 {
		t.Errorf("got %d channels, want 2: %+v", len(p.Channels), p.Channels)
	}
}
