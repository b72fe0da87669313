package nfrules

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/nfmirror/nfmirror/internal/nstest"
)

// The oracle: nft itself. For every case the table nfmirror installs
// through netlink must list exactly like the table "nft -f" installs from
// the same rule text, and "nfmirror check" (Plan.NFT) must print what the
// kernel lists back.

type oracleNS struct {
	*nstest.NS
	conn *nftables.Conn
}

func newOracleNS(t *testing.T) *oracleNS {
	if testing.Short() {
		t.Skip("needs root and a network namespace; -short runs unit tests only")
	}
	ns := nstest.New(t, "eth0", "eth1", "span0", "span1")
	c, err := nftables.New(nftables.WithNetNSFd(ns.FD()), nftables.AsLasting())
	if err != nil {
		t.Fatalf("nftables conn: %v", err)
	}
	t.Cleanup(func() { c.CloseLasting() })
	return &oracleNS{NS: ns, conn: c}
}

// ifindex resolves names inside the namespace (ip netns exec mounts its sysfs).
func (o *oracleNS) ifindex(t *testing.T) func(string) (uint32, error) {
	cache := map[string]uint32{}
	return func(name string) (uint32, error) {
		if n, ok := cache[name]; ok {
			return n, nil
		}
		out, errOut, err := o.Run("", "cat", "/sys/class/net/"+name+"/ifindex")
		if err != nil {
			return 0, fmt.Errorf("ifindex of %s: %w: %s", name, err, errOut)
		}
		n, err := strconv.ParseUint(strings.TrimSpace(out), 10, 32)
		cache[name] = uint32(n)
		return uint32(n), err
	}
}

// list returns "nft list table FAMILY NAME" for every family, "" for a
// missing table.
func (o *oracleNS) list(t *testing.T, name string) string {
	t.Helper()
	var b strings.Builder
	for _, fam := range []string{"inet", "netdev"} {
		out, errOut, err := o.Run("", "nft", "list", "table", fam, name)
		if err == nil {
			b.WriteString(out)
		} else if !strings.Contains(errOut, "No such file or directory") {
			t.Errorf("nft list table %s %s: %v: %s", fam, name, err, errOut)
		}
	}
	return b.String()
}

// dropTables deletes nfmirror's tables installed by nft -f.
func (o *oracleNS) dropTables(name string) {
	for _, fam := range []string{"inet", "netdev"} {
		o.Run("", "nft", "delete", "table", fam, name)
	}
}

// ownerFlag is what nft 1.0.6 prints for a table with the owner flag, which
// nft -f cannot create: "table inet nfmirror { # progname nfrules.test", a
// "flags owner" line and an empty line.
var ownerFlag = regexp.MustCompile(` # progname \S+\n\tflags owner\n\n`)

// counters zeroes the counters in a listing: the links of the namespace send
// IPv6 neighbour discovery on their own, which rules may count.
var counters = regexp.MustCompile(`counter packets \d+ bytes \d+`)

func zeroCounters(s string) string { return counters.ReplaceAllString(s, "counter packets 0 bytes 0") }

// ruleset lists the namespace's ruleset with counter values zeroed: the
// veths' own IPv6 chatter moves them (the port guard counts what it drops).
func (o *oracleNS) ruleset(t *testing.T) string {
	t.Helper()
	return zeroCounters(o.MustRun(t, "nft", "list", "ruleset"))
}

// listingText normalizes a listing or Plan.NFT for comparison: comment
// lines and blank lines go, counters lose their values ("counter" is what
// Plan.NFT prints), the owner flag goes, and runs of blanks become one
// (nft 1.0.6 prints an xt target as an empty string between two blanks).
func listingText(s string) string {
	s = ownerFlag.ReplaceAllString(s, "\n")
	s = counters.ReplaceAllString(s, "counter")
	var out []string
	for _, line := range strings.Split(s, "\n") {
		trim := strings.TrimSpace(line)
		if trim == "" || strings.HasPrefix(trim, "#") {
			continue
		}
		indent := line[:len(line)-len(strings.TrimLeft(line, "\t"))]
		out = append(out, indent+strings.Join(strings.Fields(trim), " "))
	}
	return strings.Join(out, "\n") + "\n"
}

var ruleID = regexp.MustCompile(`comment "nfm:(\d+)"$`)

// rulesByID maps the rule lines of a normalized listing to their rule IDs.
func rulesByID(listing string) map[int]string {
	out := map[int]string{}
	for _, line := range strings.Split(listing, "\n") {
		if m := ruleID.FindStringSubmatch(line); m != nil {
			id, _ := strconv.Atoi(m[1])
			out[id] = strings.TrimSpace(line)
		}
	}
	return out
}

// oracleCase is one rule: its matches in nft syntax, which nfmirror and nft
// both read, at one hook.
type oracleCase struct {
	field string // the field the case is about ("" for a hand-written case)
	form  string // the form of match
	hook  Hook
	text  string // the matches
}

// oracleResult is what one batch of cases found.
type oracleResult struct {
	failures []string
	cases    int
}

// runOracle installs cases through nfmirror and through nft, in one table
// each, and compares the listings rule by rule, and Plan.NFT with the
// kernel's listing of nfmirror's table.
func runOracle(t *testing.T, o *oracleNS, cases []oracleCase) oracleResult {
	t.Helper()
	var res oracleResult
	devices := map[Hook]string{HookIngress: `"eth0"`, HookEgress: `"eth1"`}
	// Cases nfmirror refuses fail on their own.
	var ok []oracleCase
	for _, c := range cases {
		dev := ""
		if d := devices[c.hook]; d != "" {
			dev = " " + d
		}
		if _, err := Parse("case.nft", []byte(fmt.Sprintf("%s%s {\n\t%s mirror to span0\n}\n", c.hook, dev, c.text))); err != nil {
			res.failures = append(res.failures, fmt.Sprintf("nfmirror refuses %s [%s]: %v", c.text, c.hook, err))
			continue
		}
		ok = append(ok, c)
	}
	cases = ok
	var src strings.Builder
	var order []oracleCase // cases in the order the parser numbers rules
	for h := HookPrerouting; h <= HookEgress; h++ {
		var rules []oracleCase
		for _, c := range cases {
			if c.hook == h {
				rules = append(rules, c)
			}
		}
		if len(rules) == 0 {
			continue
		}
		fmt.Fprintf(&src, "%s %s {\n", h, devices[h])
		for _, c := range rules {
			fmt.Fprintf(&src, "\t%s mirror to span0\n", c.text)
			order = append(order, c)
		}
		src.WriteString("}\n")
	}
	rs, err := Parse("oracle.nft", []byte(src.String()))
	if err != nil {
		t.Fatalf("Parse: %s", Describe(err))
	}
	p, err := Compile(rs, Options{Ifindex: o.ifindex(t)})
	if err != nil {
		t.Fatalf("Compile: %s", Describe(err))
	}
	if len(p.Rules) != len(order) {
		t.Fatalf("compiled %d rules for %d cases", len(p.Rules), len(order))
	}
	if err := p.Install(o.conn); err != nil {
		t.Fatalf("Install: %v", err)
	}
	ours := listingText(o.list(t, "nfmirror"))
	if err := Uninstall(o.conn, "nfmirror"); err != nil {
		t.Fatalf("Uninstall: %v", err)
	}
	// nft reads the same text for each rule's matches.
	text := p.nft(func(id int) (string, bool) { return order[id].text, true })
	if _, errOut, err := o.Run(text, "nft", "-f", "-"); err != nil {
		// Find the cases nft refuses and run the others again.
		bad := nftRefused(errOut, text, p)
		for id := range bad {
			res.failures = append(res.failures, fmt.Sprintf("nft refuses %s [%s]: %s", order[id].text, order[id].hook, strings.TrimSpace(bad[id])))
		}
		if len(bad) == 0 {
			t.Fatalf("nft -f: %v: %s", err, errOut)
		}
		var keep []oracleCase
		for id, c := range order {
			if _, refused := bad[id]; !refused {
				keep = append(keep, c)
			}
		}
		o.dropTables("nfmirror")
		sub := runOracle(t, o, keep)
		res.failures = append(res.failures, sub.failures...)
		res.cases = sub.cases
		return res
	}
	theirs := listingText(o.list(t, "nfmirror"))
	o.dropTables("nfmirror")
	check := listingText(p.NFT())

	ourRules, theirRules, checkRules := rulesByID(ours), rulesByID(theirs), rulesByID(check)
	for id, c := range order {
		o, th, ck := ourRules[id], theirRules[id], checkRules[id]
		switch {
		case o == "":
			res.failures = append(res.failures, fmt.Sprintf("%s [%s]: rule %d missing from nfmirror's listing", c.text, c.hook, id))
		case o != th:
			res.failures = append(res.failures, fmt.Sprintf("%s [%s]:\n\tnfmirror installs: %s\n\tnft -f installs:   %s", c.text, c.hook, o, th))
		case ck != o:
			res.failures = append(res.failures, fmt.Sprintf("%s [%s]:\n\tcheck prints: %s\n\tkernel lists: %s", c.text, c.hook, ck, o))
		}
	}
	// Everything else (chains, guards) lists alike too.
	if stripRules(ours) != stripRules(theirs) || stripRules(ours) != stripRules(check) {
		res.failures = append(res.failures, fmt.Sprintf("tables differ outside the rules:\nnfmirror:\n%s\nnft -f:\n%s\ncheck:\n%s", stripRules(ours), stripRules(theirs), stripRules(check)))
	}
	res.cases = len(order)
	return res
}

// nftRefused maps the rule IDs nft -f refused to its messages.
func nftRefused(errOut, text string, p *Plan) map[int]string {
	lines := strings.Split(text, "\n")
	bad := map[int]string{}
	re := regexp.MustCompile(`(?m)^/dev/stdin:(\d+):\d+-\d+: (Error: .*)$`)
	for _, m := range re.FindAllStringSubmatch(errOut, -1) {
		n, _ := strconv.Atoi(m[1])
		if n < 1 || n > len(lines) {
			continue
		}
		if id := ruleID.FindStringSubmatch(strings.TrimSpace(lines[n-1])); id != nil {
			k, _ := strconv.Atoi(id[1])
			if _, seen := bad[k]; !seen {
				bad[k] = m[2]
			}
		}
	}
	return bad
}

// stripRules removes the source rules (those with an nfm comment) from a
// normalized listing.
func stripRules(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if !ruleID.MatchString(line) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// TestOracle generates, from the field table, every field in every form it
// admits at every hook that has it, and checks each against nft.
func TestOracle(t *testing.T) {
	o := newOracleNS(t)
	start := time.Now()
	cases := generateCases()
	cases = append(cases, handCases()...)
	if f := os.Getenv("ORACLE_FILTER"); f != "" {
		var keep []oracleCase
		for _, c := range cases {
			if strings.Contains(c.text, f) {
				keep = append(keep, c)
			}
		}
		cases = keep
	}
	var failures []string
	total := 0
	const batch = 4000
	for i := 0; i < len(cases); i += batch {
		res := runOracle(t, o, cases[i:min(i+batch, len(cases))])
		failures = append(failures, res.failures...)
		total += res.cases
	}
	fields, forms := map[string]bool{}, map[string]bool{}
	for _, c := range cases {
		if c.field != "" {
			fields[c.field] = true
		}
		forms[c.form] = true
	}
	var formList []string
	for f := range forms {
		formList = append(formList, f)
	}
	sort.Strings(formList)
	t.Logf("oracle coverage: %d fields of %d in the table, %d forms (%s), %d cases (%d generated, %d hand-written), %d checked against nft in %s",
		len(fields), len(FieldList), len(forms), strings.Join(formList, " "), len(cases), len(cases)-len(handCases()), len(handCases()), total, time.Since(start).Round(time.Millisecond))
	if len(cases) < 500 {
		t.Errorf("only %d cases", len(cases))
	}
	for _, f := range failures {
		t.Error(f)
	}
}
