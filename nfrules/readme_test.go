package nfrules

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeRulesLanguage keeps the README's table of matches true to the
// field table: every field is listed in the row of its header, and every
// example in the table parses.
func TestReadmeRulesLanguage(t *testing.T) {
	src, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(src)
	start := strings.Index(text, "## The rules language\n")
	if start < 0 {
		t.Fatal("README has no rules language section")
	}
	section := text[start:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	rows := map[string]string{}
	for _, line := range strings.Split(section, "\n") {
		if m := regexp.MustCompile("^\\| `?([a-z0-9]+)`? \\|").FindStringSubmatch(line); m != nil && m[1] != "header" {
			rows[m[1]] = line
		}
	}
	for _, f := range FieldList {
		first, rest, _ := strings.Cut(f.Name, " ")
		row, ok := rows[first]
		if !ok {
			t.Errorf("README has no row for %s (field %s)", first, f.Name)
			continue
		}
		cells := strings.Split(row, " | ")
		if len(cells) < 3 || !strings.Contains(cells[1], "`"+rest+"`") {
			t.Errorf("README's %s row does not list %s", first, rest)
		}
	}
	examples := 0
	backticked := regexp.MustCompile("`([^`]+)`")
	for first, row := range rows {
		cells := strings.Split(strings.ReplaceAll(row, `\|`, "|"), " | ")
		if len(cells) < 3 {
			continue
		}
		hook := "forward"
		switch first {
		case "ether", "vlan", "arp":
			hook = `ingress "eth0"`
		}
		for _, m := range backticked.FindAllStringSubmatch(cells[2], -1) {
			examples++
			rule := fmt.Sprintf("%s {\n\t%s mirror to span0\n}\n", hook, m[1])
			if _, err := Parse("README.md", []byte(rule)); err != nil {
				t.Errorf("README example %q: %s", m[1], Describe(err))
			}
		}
	}
	if examples < 20 {
		t.Errorf("only %d examples in the README's table", examples)
	}
}
