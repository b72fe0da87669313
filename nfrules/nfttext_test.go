package nfrules

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// typedText renders a parsed match from its typed parts only (field name,
// mask, operator, Datum.Text), the way a listing would.
func typedText(m Match) string {
	switch m := m.(type) {
	case *Compare:
		s := m.Field.Name
		if m.Mask != nil {
			s += " and " + m.Mask.Text
		}
		if m.Op != OpImplicit {
			s += " " + m.Op.String()
		}
		return s + " " + valueSource(m.Value)
	case *Limit:
		s := "limit rate "
		if m.Over {
			s += "over "
		}
		s += fmt.Sprintf("%d/%s", m.Rate, m.Unit)
		if m.Burst > 0 {
			s += fmt.Sprintf(" burst %d packets", m.Burst)
		}
		return s
	case *Sample:
		s := fmt.Sprintf("numgen random mod %d", m.Mod)
		if m.Op != OpImplicit {
			s += " " + m.Op.String()
		}
		return s + fmt.Sprintf(" %d", m.Value)
	}
	return ""
}

// TestDatumTextAcceptedByNft feeds every rule of the good files, rebuilt
// from the typed AST alone, to "nft -c" in a throwaway network namespace:
// nft must accept every Datum.Text back.
func TestDatumTextAcceptedByNft(t *testing.T) {
	requireRoot := os.Getenv("NFMIRROR_REQUIRE_ROOT") == "1"
	nft, err := exec.LookPath("nft")
	if err != nil || os.Geteuid() != 0 {
		if requireRoot {
			t.Fatalf("needs root and nft (NFMIRROR_REQUIRE_ROOT=1): euid %d, nft: %v", os.Geteuid(), err)
		}
		t.Skip("needs root and nft: checks Datum.Text with nft -c in a new network namespace")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("needs unshare(1)")
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "good", "*.nft"))
	chains := map[Hook][]string{}
	n := 0
	for _, f := range files {
		rs, err := ParseFile(f)
		if err != nil {
			t.Fatal(Describe(err))
		}
		for _, b := range rs.Blocks {
			for _, r := range b.Rules {
				parts := make([]string, 0, len(r.Matches))
				for _, m := range r.Matches {
					parts = append(parts, typedText(m))
				}
				chains[b.Hook] = append(chains[b.Hook], fmt.Sprintf("%s counter comment %q", strings.Join(parts, " "), r.Pos))
				n++
			}
		}
	}
	var script bytes.Buffer
	for _, fam := range []Family{FamilyInet, FamilyNetdev} {
		fmt.Fprintf(&script, "table %s nfmtextcheck {\n", fam)
		for h := HookPrerouting; h <= HookEgress; h++ {
			if h.Family() != fam || len(chains[h]) == 0 {
				continue
			}
			dev := ""
			if fam == FamilyNetdev {
				dev = ` device "lo"`
			}
			fmt.Fprintf(&script, "\tchain %s {\n\t\ttype filter hook %s%s priority 0;\n", h, h, dev)
			for _, r := range chains[h] {
				fmt.Fprintf(&script, "\t\t%s\n", r)
			}
			script.WriteString("\t}\n")
		}
		script.WriteString("}\n")
	}
	cmd := exec.Command(unshare, "--net", nft, "-c", "-f", "-")
	cmd.Stdin = bytes.NewReader(script.Bytes())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("nft -c rejected the typed text: %v\n%s\nscript:\n%s", err, out, script.String())
	}
	if n < 20 {
		t.Errorf("checked only %d rules", n)
	}
	t.Logf("nft accepted %d rules rebuilt from the typed AST", n)
}
