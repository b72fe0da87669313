package nfrules

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// parseOne parses a one-rule prerouting file (or the given hook) and returns
// its first match.
func parseRuleIn(t *testing.T, hook, rule string) *Rule {
	t.Helper()
	src := fmt.Sprintf("%s {\n\t%s\n}\n", hook, rule)
	rs, err := Parse("t.nft", []byte(src))
	if err != nil {
		t.Fatalf("Parse(%q):\n%s", rule, Describe(err))
	}
	if len(rs.Blocks) != 1 || len(rs.Blocks[0].Rules) != 1 {
		t.Fatalf("Parse(%q): want 1 block with 1 rule, got %+v", rule, rs.Blocks)
	}
	return rs.Blocks[0].Rules[0]
}

func host32(n uint32) []byte { return binary.NativeEndian.AppendUint32(nil, n) }

func padIfname(s string) []byte {
	b := make([]byte, 16)
	copy(b, s)
	return b
}

// valueString renders a typed value as "text=hex" pieces for comparison.
func valueString(v Value) string {
	d := func(d Datum) string { return fmt.Sprintf("%s=%x", d.Text, d.Bytes) }
	switch v := v.(type) {
	case *Single:
		return d(v.V)
	case *Range:
		return d(v.Lo) + "-" + d(v.Hi)
	case *Prefix:
		return fmt.Sprintf("prefix %s/%d=%x", v.V.Text, v.Len, v.V.Bytes)
	case *Concat:
		var parts []string
		for _, e := range v.Parts {
			parts = append(parts, valueString(e))
		}
		return strings.Join(parts, " . ")
	case *Set:
		var parts []string
		for _, e := range v.Elems {
			parts = append(parts, valueString(e))
		}
		return "{" + strings.Join(parts, " ") + "}"
	}
	return fmt.Sprintf("%T", v)
}

func TestParseCompare(t *testing.T) {
	tests := []struct {
		rule  string
		field string
		op    Op
		mask  string // hex mask^xor of the bitwise operation, or ""
		want  string // valueString of the value
	}{
		{`tcp dport 80`, "tcp dport", OpImplicit, "", "80=0050"},
		{`tcp dport http`, "tcp dport", OpImplicit, "", "80=0050"},
		{`tcp dport == 0x1f90`, "tcp dport", OpEq, "", "8080=1f90"},
		{`udp sport != 53`, "udp sport", OpNeq, "", "53=0035"},
		{`udp dport >= 1024`, "udp dport", OpGte, "", "1024=0400"},
		{`tcp sport < 1024`, "tcp sport", OpLt, "", "1024=0400"},
		{`tcp dport 1024-65535`, "tcp dport", OpImplicit, "", "1024=0400-65535=ffff"},
		{`tcp dport 1024 - 2048`, "tcp dport", OpImplicit, "", "1024=0400-2048=0800"},
		{`tcp dport ssh-http`, "tcp dport", OpImplicit, "", "22=0016-80=0050"},
		{`tcp dport { 22, 80-89, https }`, "tcp dport", OpImplicit, "", "{22=0016 80=0050-89=0059 443=01bb}"},
		{`tcp dport != { 22, 23 }`, "tcp dport", OpNeq, "", "{22=0016 23=0017}"},
		{`ip saddr 198.18.0.1`, "ip saddr", OpImplicit, "", "198.18.0.1=c6120001"},
		{`ip daddr 198.18.0.0/15`, "ip daddr", OpImplicit, "", "prefix 198.18.0.0/15=c6120000"},
		{`ip saddr 198.18.0.1-198.18.0.9`, "ip saddr", OpImplicit, "", "198.18.0.1=c6120001-198.18.0.9=c6120009"},
		{`ip saddr { 198.18.0.1, 198.19.0.0/16 }`, "ip saddr", OpImplicit, "", "{198.18.0.1=c6120001 prefix 198.19.0.0/16=c6130000}"},
		{`ip6 daddr 2001:DB8::1`, "ip6 daddr", OpImplicit, "", "2001:db8::1=20010db8000000000000000000000001"},
		{`ip6 saddr 2001:db8::/32`, "ip6 saddr", OpImplicit, "", "prefix 2001:db8::/32=20010db8000000000000000000000000"},
		{`ip protocol tcp`, "ip protocol", OpImplicit, "", "tcp=06"},
		{`ip6 nexthdr icmpv6`, "ip6 nexthdr", OpImplicit, "", "ipv6-icmp=3a"},
		{`meta l4proto ipv6-icmp`, "meta l4proto", OpImplicit, "", "ipv6-icmp=3a"},
		{`l4proto 17`, "meta l4proto", OpImplicit, "", "udp=11"},
		{`meta l4proto { tcp, udp }`, "meta l4proto", OpImplicit, "", "{tcp=06 udp=11}"},
		{`iifname "eth0"`, "meta iifname", OpImplicit, "", `"eth0"=` + fmt.Sprintf("%x", padIfname("eth0"))},
		{`meta iifname eth0`, "meta iifname", OpImplicit, "", `"eth0"=` + fmt.Sprintf("%x", padIfname("eth0"))},
		{`oifname != "veth*"`, "meta oifname", OpNeq, "", `prefix "veth*"/32=` + fmt.Sprintf("%x", padIfname("veth"))},
		{`iifname { "eth*", "lo" }`, "meta iifname", OpImplicit, "", `{prefix "eth*"/24=` + fmt.Sprintf("%x", padIfname("eth")) + ` "lo"=` + fmt.Sprintf("%x", padIfname("lo")) + "}"},
		{`iif "lo"`, "meta iif", OpImplicit, "", `"lo"=6c6f`},
		{`meta oif lo`, "meta oif", OpImplicit, "", `"lo"=6c6f`},
		{`mark 0x100`, "meta mark", OpImplicit, "", "0x100=" + fmt.Sprintf("%x", host32(0x100))},
		{`meta mark 42`, "meta mark", OpImplicit, "", "42=" + fmt.Sprintf("%x", host32(42))},
		{`mark and 0xff00 == 0x100`, "meta mark", OpEq, fmt.Sprintf("%x^00000000", host32(0xff00)), "0x100=" + fmt.Sprintf("%x", host32(0x100))},
		{`meta mark & 0xff00 != 0`, "meta mark", OpNeq, fmt.Sprintf("%x^00000000", host32(0xff00)), "0=" + fmt.Sprintf("%x", host32(0))},
		{`ct mark and 0xff == 1`, "ct mark", OpEq, fmt.Sprintf("%x^00000000", host32(0xff)), "1=" + fmt.Sprintf("%x", host32(1))},
		{`ct state established,related`, "ct state", OpImplicit, "", "established,related=" + fmt.Sprintf("%x", host32(6))},
		{`ct state new`, "ct state", OpImplicit, "", "new=" + fmt.Sprintf("%x", host32(8))},
		{`ct state { new, untracked }`, "ct state", OpImplicit, "", "{new=" + fmt.Sprintf("%x", host32(8)) + " untracked=" + fmt.Sprintf("%x", host32(64)) + "}"},
		{`tcp flags syn,ack`, "tcp flags", OpImplicit, "", "syn,ack=12"},
		{`tcp flags & (syn|ack) == syn`, "tcp flags", OpEq, "12^00", "syn=02"},
		{`tcp flags syn / syn,ack`, "tcp flags", OpEq, "12^00", "syn=02"},
		{`tcp flags != syn / syn,ack`, "tcp flags", OpNeq, "12^00", "syn=02"},
		{`tcp flags & syn|ack == ack`, "tcp flags", OpEq, "02^10", "ack=10"}, // (flags & syn) | ack, as nft reads it
		{`tcp flags { syn, syn|ack }`, "tcp flags", OpImplicit, "", "{syn=02 syn|ack=12}"},
		{`tcp flags == syn|ack`, "tcp flags", OpEq, "", "syn|ack=12"},
		{`meta mark | 0x10 == 0x11`, "meta mark", OpEq, fmt.Sprintf("%x^%x", host32(0xffffffef), host32(0x10)), "0x11=" + fmt.Sprintf("%x", host32(0x11))},
		{`ip saddr & 255.255.0.0 == 198.18.0.0`, "ip saddr", OpEq, "ffff0000^00000000", "198.18.0.0=c6120000"},
		{`ip dscp ef`, "ip dscp", OpImplicit, "", "ef=b8"},
		{`ip dscp { cs1, 0x0a-0x0c }`, "ip dscp", OpImplicit, "", "{cs1=20 af11=28-af12=30}"},
		{`ip6 dscp cs1`, "ip6 dscp", OpImplicit, "", "cs1=0200"},
		{`ip6 flowlabel 1234`, "ip6 flowlabel", OpImplicit, "", "1234=0004d2"},
		{`ip ttl < 5`, "ip ttl", OpLt, "", "5=05"},
		{`ip frag-off & 0x1fff != 0`, "ip frag-off", OpNeq, "1fff^0000", "0=0000"},
		{`ct status dnat`, "ct status", OpImplicit, "", "dnat=" + fmt.Sprintf("%x", host32(0x20))},
		{`ct direction reply`, "ct direction", OpImplicit, "", "reply=01"},
		{`meta nfproto ipv6`, "meta nfproto", OpImplicit, "", "ipv6=0a"},
		{`meta iiftype loopback`, "meta iiftype", OpImplicit, "", "loopback=" + fmt.Sprintf("%x", binary.NativeEndian.AppendUint16(nil, 772))},
		{`meta length > 1000`, "meta length", OpGt, "", "1000=" + fmt.Sprintf("%x", host32(1000))},
		{`th dport { 53, 123 }`, "th dport", OpImplicit, "", "{53=0035 123=007b}"},
		{`icmp code port-unreachable`, "icmp code", OpImplicit, "", "port-unreachable=03"},
		{`ct original ip saddr 198.18.0.1`, "ct original ip saddr", OpImplicit, "", "198.18.0.1=c6120001"},
		{`tcp flags == fin`, "tcp flags", OpEq, "", "fin=01"},
		{`meta pkttype unicast`, "meta pkttype", OpImplicit, "", "host=00"},
		{`pkttype broadcast`, "meta pkttype", OpImplicit, "", "broadcast=01"},
		{`icmp type echo-request`, "icmp type", OpImplicit, "", "echo-request=08"},
		{`icmp type { 0, 8 }`, "icmp type", OpImplicit, "", "{echo-reply=00 echo-request=08}"},
		{`icmpv6 type nd-neighbor-solicit`, "icmpv6 type", OpImplicit, "", "nd-neighbor-solicit=87"},
		{`icmpv6 type mld-listener-reduction`, "icmpv6 type", OpImplicit, "", "mld-listener-done=84"},
		{`ether saddr 02:00:00:00:00:0A`, "ether saddr", OpImplicit, "", "02:00:00:00:00:0a=02000000000a"},
		{`ether type arp`, "ether type", OpImplicit, "", "arp=0806"},
		{`ether type vlan`, "ether type", OpImplicit, "", "8021q=8100"},
		{`ether type 0x88cc`, "ether type", OpImplicit, "", "0x88cc=88cc"},
		{`meta protocol ip6`, "meta protocol", OpImplicit, "", "ip6=86dd"},
		{`vlan id 100`, "vlan id", OpImplicit, "", "100=0064"},
		{`vlan id 10-20`, "vlan id", OpImplicit, "", "10=000a-20=0014"},
		{`vlan id { 10, 20 }`, "vlan id", OpImplicit, "", "{10=000a 20=0014}"},
		{`arp operation reply`, "arp operation", OpImplicit, "", "reply=0002"},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			hook := "prerouting"
			if strings.HasPrefix(tt.rule, "vlan") || strings.HasPrefix(tt.rule, "ether") || strings.HasPrefix(tt.rule, "arp") {
				hook = `ingress "eth0"`
			}
			if strings.Contains(tt.rule, "oif") {
				hook = "forward"
			}
			r := parseRuleIn(t, hook, tt.rule+" mirror to span0")
			if len(r.Matches) != 1 {
				t.Fatalf("got %d matches, want 1", len(r.Matches))
			}
			c, ok := r.Matches[0].(*Compare)
			if !ok {
				t.Fatalf("match is %T, want *Compare", r.Matches[0])
			}
			if c.Field().Name != tt.field || c.Op != tt.op {
				t.Errorf("field %q op %q, want %q %q", c.Field().Name, c.Op, tt.field, tt.op)
			}
			if c.Field() != Fields[tt.field] || len(c.Fields) != 1 {
				t.Errorf("Fields is not [Fields[%q]]", tt.field)
			}
			mask := ""
			if c.Bits != nil {
				mask = fmt.Sprintf("%x^%x", c.Bits.Mask, c.Bits.Xor)
			}
			if mask != tt.mask {
				t.Errorf("mask %q, want %q", mask, tt.mask)
			}
			if got := valueString(c.Value); got != tt.want {
				t.Errorf("value %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseDatumByteOrder(t *testing.T) {
	r := parseRuleIn(t, "prerouting", "meta mark 0x01020304 mirror to span0")
	got := r.Matches[0].(*Compare).Value.(*Single).V.Bytes
	if want := binary.NativeEndian.AppendUint32(nil, 0x01020304); !bytes.Equal(got, want) {
		t.Errorf("meta mark bytes %x, want host order %x", got, want)
	}
	r = parseRuleIn(t, "prerouting", "tcp dport 0x0102 mirror to span0")
	if got := r.Matches[0].(*Compare).Value.(*Single).V.Bytes; !bytes.Equal(got, []byte{1, 2}) {
		t.Errorf("tcp dport bytes %x, want big-endian 0102", got)
	}
}

func TestParseLimitSampleMirror(t *testing.T) {
	tests := []struct {
		rule    string
		match   Match
		mirrors []Mirror
	}{
		{"limit rate 10/second mirror to span0", &Limit{Rate: 10, Unit: PerSecond}, []Mirror{{Dest: "span0"}}},
		{"limit rate over 5/minute burst 20 packets mirror to span0", &Limit{Over: true, Rate: 5, Unit: PerMinute, Burst: 20}, []Mirror{{Dest: "span0"}}},
		{"limit rate 1/week mirror to span0", &Limit{Rate: 1, Unit: PerWeek}, []Mirror{{Dest: "span0"}}},
		{"numgen random mod 100 < 5 mirror to span0", &Sample{Mod: 100, Op: OpLt, Value: 5}, []Mirror{{Dest: "span0"}}},
		{"numgen random mod 4 0 mirror to span0", &Sample{Mod: 4, Op: OpImplicit, Value: 0}, []Mirror{{Dest: "span0"}}},
		{`numgen random mod 2 == 1 mirror to "a" snaplen 64 lossless mirror to b lossless snaplen 1`, &Sample{Mod: 2, Op: OpEq, Value: 1},
			[]Mirror{{Dest: "a", Snaplen: 64, Lossless: true}, {Dest: "b", Snaplen: 1, Lossless: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			r := parseRuleIn(t, "input", tt.rule)
			if len(r.Matches) != 1 {
				t.Fatalf("got %d matches, want 1", len(r.Matches))
			}
			switch m := r.Matches[0].(type) {
			case *Limit:
				m.Pos = Pos{}
			case *Sample:
				m.Pos = Pos{}
			}
			if !reflect.DeepEqual(r.Matches[0], tt.match) {
				t.Errorf("match %+v, want %+v", r.Matches[0], tt.match)
			}
			var got []Mirror
			for _, m := range r.Mirrors {
				c := *m
				c.Pos = Pos{}
				got = append(got, c)
			}
			if !reflect.DeepEqual(got, tt.mirrors) {
				t.Errorf("mirrors %+v, want %+v", got, tt.mirrors)
			}
		})
	}
}

func TestParseExample(t *testing.T) {
	rs, err := ParseFile(filepath.Join("testdata", "example.nft"))
	if err != nil {
		t.Fatal(Describe(err))
	}
	type ruleSummary struct {
		Hook   Hook
		Device string
		Line   int
		Text   string
	}
	var got []ruleSummary
	for _, b := range rs.Blocks {
		for _, r := range b.Rules {
			got = append(got, ruleSummary{b.Hook, b.Device, r.Pos.Line, r.Text})
		}
	}
	want := []ruleSummary{
		{HookPrerouting, "", 5, `iifname "eth0" tcp dport { 8080, 8443 } mirror to "span0"`},
		{HookPrerouting, "", 6, `meta l4proto ipv6-icmp mirror to "span0"`},
		{HookPostrouting, "", 9, `oifname "eth0" tcp sport { 8080, 8443 } mirror to "span0" snaplen 128`},
		{HookIngress, "eth0", 12, `ether type arp mirror to "span0"`},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rules:\n got %+v\nwant %+v", got, want)
	}
	snap := rs.Blocks[1].Rules[0].Mirrors[0]
	if snap.Dest != "span0" || snap.Snaplen != 128 || snap.Lossless {
		t.Errorf("postrouting mirror %+v, want span0 snaplen 128", snap)
	}
}

func TestParseGood(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "good", "*.nft"))
	if len(files) < 3 {
		t.Fatalf("found %d good files, want at least 3", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			rs, err := ParseFile(f)
			if err != nil {
				t.Fatal(Describe(err))
			}
			n := 0
			for _, b := range rs.Blocks {
				n += len(b.Rules)
				for _, r := range b.Rules {
					if r.Text == "" || strings.Contains(r.Text, "$") || strings.Contains(r.Text, "\n") {
						t.Errorf("%s: bad rule text %q", r.Pos, r.Text)
					}
				}
			}
			if n == 0 {
				t.Errorf("no rules")
			}
		})
	}
}

var errorMarker = regexp.MustCompile(`# ERROR "((?:[^"\\]|\\.)*)"`)

// TestParseBad parses every testdata/bad file and requires exactly the
// errors marked with # ERROR "regexp" on their lines.
func TestParseBad(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "bad", "*.nft"))
	if len(files) == 0 {
		t.Fatal("no bad files")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			want := map[int]*regexp.Regexp{}
			for i, line := range strings.Split(string(src), "\n") {
				if m := errorMarker.FindStringSubmatch(line); m != nil {
					re, err := regexp.Compile(strings.ReplaceAll(m[1], `\"`, `"`))
					if err != nil {
						t.Fatalf("line %d: bad marker: %v", i+1, err)
					}
					want[i+1] = re
				}
			}
			_, err = parse(f, src, 1000)
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("Parse returned %v, want an ErrorList", err)
			}
			for _, e := range list {
				if e.Pos.File != f {
					t.Errorf("error in another file: %v", e)
					continue
				}
				re, ok := want[e.Pos.Line]
				if !ok {
					t.Errorf("unexpected error: %v", e)
					continue
				}
				if !re.MatchString(e.Msg) {
					t.Errorf("line %d: error %q does not match %q", e.Pos.Line, e.Msg, re)
				}
				if e.Source == "" {
					t.Errorf("line %d: error has no source line", e.Pos.Line)
				}
				delete(want, e.Pos.Line)
			}
			for line, re := range want {
				t.Errorf("line %d: missing error %q", line, re)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // "line:col: message regexp", in order
	}{
		{"empty", "", []string{`1:1: no rules: nothing to mirror`}},
		{"comments only", "# nothing\n\n", []string{`1:1: no rules`}},
		{"NUL", "prerouting {\n  mirror\x00 to span0\n}\n", []string{`2:9: NUL byte: this is not a text rules file`}},
		{"invalid UTF-8", "prerouting {\xff\xfe\n\x00\x00\n", []string{`1:13: invalid UTF-8`}},
		{"unterminated string", "prerouting {\n  mirror to \"span0\n}\n", []string{`2:13: unterminated string`}},
		{"unclosed block", "prerouting {\n  mirror to span0\n", []string{`1:1: prerouting block is not closed`}},
		{"stray close", "}\nprerouting { mirror to span0 }\n", []string{`1:1: unexpected '}'`}},
		{"byte order mark", "\xef\xbb\xbfprerouting { mirror to span0 }", nil},
		{"byte order mark then error", "\xef\xbb\xbfprerouting { mirror to span0 } x", []string{`1:32: unknown hook or keyword "x"`}},
		{"one line", "prerouting { tcp dport 80 mirror to span0; udp dport 53 mirror to span1 }", nil},
		{"range on one side", "prerouting { tcp dport 5- mirror to span0 }", []string{`1:27: .*not "mirror"`}},
		{"long variable chain", "define a = 1\ndefine b = $a\ndefine c = { $b, $a }\nprerouting { tcp dport $c mirror to span0 }", nil},
		{"redefined", "define a = 1\ndefine a = 2\nprerouting { mirror to span0 }", []string{`2:8: variable a redefined \(first defined at t.nft:1:8\)`}},
		{"multiple errors", "prerouting {\n tcp dport 99999 mirror to s\n udp dport 1 mirror to s\n tcp sport x mirror to s\n}\n",
			[]string{`2:12: .*out of range`, `4:12: .*not "x"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.nft", []byte(tt.src))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error:\n%s", Describe(err))
				}
				return
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error %v, want ErrorList", err)
			}
			if len(list) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%s", len(list), len(tt.want), err)
			}
			for i, e := range list {
				got := fmt.Sprintf("%d:%d: %s", e.Pos.Line, e.Pos.Col, e.Msg)
				if !regexp.MustCompile(tt.want[i]).MatchString(got) {
					t.Errorf("error %d: %q does not match %q", i, got, tt.want[i])
				}
			}
		})
	}
}

func TestErrorListLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString("prerouting {\n")
	for i := 0; i < 50; i++ {
		b.WriteString("  tcp dport 70000 mirror to span0; udp dport 70000 mirror to span0\n")
	}
	b.WriteString("}\n")
	_, err := Parse("t.nft", []byte(b.String()))
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error %v, want ErrorList", err)
	}
	if len(list) != maxErrors {
		t.Errorf("got %d errors, want %d", len(list), maxErrors)
	}
	for i, e := range list {
		if e.Pos.Line != i+2 {
			t.Errorf("error %d at line %d, want line %d (sorted, one per line)", i, e.Pos.Line, i+2)
		}
	}
	if got := strings.Count(list.Error(), "\n") + 1; got != maxErrors {
		t.Errorf("Error() has %d lines, want %d", got, maxErrors)
	}
	if (ErrorList{}).Err() != nil {
		t.Error("empty ErrorList.Err() is not nil")
	}
}

func TestDescribe(t *testing.T) {
	src := "prerouting {\n\ttcp dport 70000 mirror to span0\n}\n"
	_, err := Parse("rules.nft", []byte(src))
	got := Describe(err)
	want := "rules.nft:2:12: tcp dport port 70000 out of range: at most 65535\n" +
		"\ttcp dport 70000 mirror to span0\n" +
		"\t          ^"
	if got != want {
		t.Errorf("Describe:\n%s\nwant:\n%s", got, want)
	}
	plain := errors.New("plain")
	if Describe(plain) != "plain" {
		t.Errorf("Describe(plain error) = %q", Describe(plain))
	}
	if Describe(fmt.Errorf("wrapped: %w", err)) != want {
		t.Errorf("Describe does not unwrap")
	}
}

func TestParseFileLimits(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.nft")
	if err := os.WriteFile(big, bytes.Repeat([]byte("#\n"), MaxFileSize/2+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseFile(big); err == nil || !strings.Contains(err.Error(), "file too large") {
		t.Errorf("ParseFile(big) = %v, want file too large", err)
	}
	if _, err := ParseFile(filepath.Join(dir, "missing.nft")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ParseFile(missing) = %v, want ErrNotExist", err)
	}
	// Includes nested deeper than the limit.
	for i := 0; i < maxIncludeDepth+2; i++ {
		body := fmt.Sprintf("include \"f%d.nft\"\n", i+1)
		if i == maxIncludeDepth+1 {
			body = "prerouting { mirror to span0 }\n"
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d.nft", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ParseFile(filepath.Join(dir, "f0.nft")); err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Errorf("deep includes: %v, want nested error", err)
	}
	_ = netip.Addr{}
}

// TestParseVariableBlowup defines each variable as two copies of the one
// before: without bounds the last would hold 2^40 values.
func TestParseVariableBlowup(t *testing.T) {
	var b strings.Builder
	b.WriteString("define v0 = { 1, 2 }\n")
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "define v%d = { $v%d, $v%d }\n", i, i-1, i-1)
	}
	b.WriteString("prerouting { tcp dport $v40 mirror to span0 }\n")
	_, err := Parse("t.nft", []byte(b.String()))
	var list ErrorList
	if !errors.As(err, &list) || len(list) == 0 {
		t.Fatalf("error %v, want an ErrorList", err)
	}
	if e := list[0]; e.Pos.Line != 17 || !strings.Contains(e.Msg, "value of v16 is too large") {
		t.Errorf("first error %v, want line 17: value of v16 is too large", e)
	}
}

func TestParseIncludeErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("main.nft", "include \"sub/a.nft\"\nprerouting { tcp dport $p mirror to span0 }\n")
	write("sub/a.nft", "include \"b.nft\"\ndefine p = { 22, 80 }\n")
	write("sub/b.nft", "# b\ninput {\n  tcp dport 99999 mirror to span0\n}\n")
	_, err := ParseFile(filepath.Join(dir, "main.nft"))
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 1 {
		t.Fatalf("error %v, want one error", err)
	}
	e := list[0]
	if e.Pos.File != filepath.Join(dir, "sub", "b.nft") || e.Pos.Line != 3 || e.Pos.Col != 13 {
		t.Errorf("error at %s, want sub/b.nft:3:13", e.Pos)
	}
	if e.Source != "  tcp dport 99999 mirror to span0" {
		t.Errorf("source line %q, want the line of b.nft", e.Source)
	}

	// Fixed, the include chain's variable reaches the main file.
	write("sub/b.nft", "# b\n")
	rs, err := ParseFile(filepath.Join(dir, "main.nft"))
	if err != nil {
		t.Fatal(Describe(err))
	}
	if got := rs.Blocks[0].Rules[0].Text; got != "tcp dport { 22, 80 } mirror to span0" {
		t.Errorf("rule text %q", got)
	}

	// A fifo must not block the parser.
	write("fifo.nft", "include \"/dev/stdin\"\nprerouting { mirror to span0 }\n")
	if _, err := ParseFile(filepath.Join(dir, "fifo.nft")); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("include of /dev/stdin: %v, want not a regular file", err)
	}
}
