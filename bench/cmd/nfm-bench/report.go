package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// record is one measured cell run: the key=value fields of one line that
// run.sh wrote. Counters are deltas over the run's window.
type record map[string]string

func (r record) str(k string) string { return r[k] }

// num returns field k as a number, NaN when it is missing or "-".
func (r record) num(k string) float64 {
	v, ok := r[k]
	if !ok || v == "-" || v == "" {
		return math.NaN()
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return math.NaN()
	}
	return f
}

// parseRecords reads key=value lines; blank lines and # comments are skipped.
func parseRecords(r io.Reader) ([]record, error) {
	var out []record
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		rec := record{}
		for _, f := range strings.Fields(text) {
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				return nil, fmt.Errorf("line %d: field %q is not key=value", line, f)
			}
			rec[k] = v
		}
		if rec["kind"] == "" || rec["col"] == "" {
			return nil, fmt.Errorf("line %d: no kind= or col=", line)
		}
		out = append(out, rec)
	}
	return out, sc.Err()
}

// median of the non-NaN values; NaN when there are none.
func median(xs []float64) float64 {
	var v []float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// ratio is 100*a/b, NaN when b is zero or either is NaN.
func ratio(a, b float64) float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return math.NaN()
	}
	return 100 * a / b
}

// udpMetrics derives the per-run figures of a UDP cell.
func udpMetrics(r record) map[string]float64 {
	secs := r.num("secs")
	m := map[string]float64{
		"offered":   r.num("gen_tx") / secs,
		"forwarded": r.num("sink_rx") / secs,
		"mirrored":  r.num("mon_rx") / secs,
		"fwdloss":   100 - ratio(r.num("sink_rx"), r.num("gen_tx")),
		"mirrloss":  math.NaN(),
		"cpu":       ratio(r.num("cpu_busy"), r.num("cpu_total")),
		"pcpu":      ratio(r.num("proc_ticks")/r.num("hz"), secs),
		"rss":       r.num("rss_kb") / 1024,
		"nfmlost":   r.num("nfm_lost"),
		"answers":   r.num("mon_tx"),
		// Packets that reached the router but never entered the NFQUEUE
		// queue (a full fail-open queue lets them pass uncopied).
		"nfqmissed": r.num("rin_rx") - r.num("nfq_queued"),
		"nfqqueued": r.num("nfq_queued"),
		"rin":       r.num("rin_rx"),
	}
	if r.str("col") != "none" {
		m["mirrloss"] = 100 - ratio(r.num("mon_rx"), r.num("rin_rx"))
	}
	return m
}

// tcpMetrics derives the per-run figures of a TCP bulk cell. mirrored is
// the share of payload bytes: each side's bytes less tcpFrameHeaders per
// frame, since the sink receives super-packets (one set of headers per 64
// KiB) where a mirror port may carry wire-sized frames (one per 1448 bytes).
// Records without frame counts fall back to the bytes.
func tcpMetrics(r record) map[string]float64 {
	payload := func(bytes, frames string) float64 {
		if n := r.num(frames); !math.IsNaN(n) {
			return r.num(bytes) - tcpFrameHeaders*n
		}
		return r.num(bytes)
	}
	return map[string]float64{
		"mbps":     r.num("bps") / 1e6,
		"mirrored": ratio(payload("mon_rx_bytes", "mon_rx"), payload("sink_rx_bytes", "sink_rx")),
		"cpu":      ratio(r.num("cpu_busy"), r.num("cpu_total")),
		"pcpu":     ratio(r.num("proc_ticks")/r.num("hz"), r.num("secs")),
		"rss":      r.num("rss_kb") / 1024,
		"nfmlost":  r.num("nfm_lost"),
	}
}

// cell is the medians of one (kind, column, size, rate | tso) group.
type cell struct {
	kind, col, size, rate, tso string
	runs                       int
	med                        map[string]float64
}

func (c cell) key() string { return strings.Join([]string{c.kind, c.col, c.size, c.rate, c.tso}, "|") }

// aggregate groups records into cells in order of first appearance and
// takes the median of every metric over the runs of a cell.
func aggregate(recs []record) []cell {
	var cells []cell
	idx := map[string]int{}
	vals := map[string]map[string][]float64{}
	for _, r := range recs {
		if k := r.str("kind"); k != "udp" && k != "tcp" {
			continue // soak and install records have sections of their own
		}
		c := cell{kind: r.str("kind"), col: r.str("col"), size: r.str("size"), rate: r.str("rate"), tso: r.str("tso")}
		k := c.key()
		if _, ok := idx[k]; !ok {
			idx[k] = len(cells)
			cells = append(cells, c)
			vals[k] = map[string][]float64{}
		}
		cells[idx[k]].runs++
		var m map[string]float64
		if c.kind == "tcp" {
			m = tcpMetrics(r)
		} else {
			m = udpMetrics(r)
		}
		for name, v := range m {
			vals[k][name] = append(vals[k][name], v)
		}
	}
	for i := range cells {
		cells[i].med = map[string]float64{}
		for name, v := range vals[cells[i].key()] {
			cells[i].med[name] = median(v)
		}
	}
	return cells
}

// f formats v with prec decimals, "–" for NaN.
func f(v float64, prec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// kpps formats packets per second in thousands.
func kpps(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return f(v/1000, 1) + "k"
}

func rateLabel(r string) string {
	if r == "0" {
		return "max"
	}
	if n, err := strconv.Atoi(r); err == nil && n%1000 == 0 {
		return strconv.Itoa(n/1000) + "k"
	}
	return r
}

// machine is what RESULTS.md says about the host.
type machine struct {
	CPUModel  string
	NProc     int
	MemTotal  string
	Kernel    string
	LoadStart string
	LoadEnd   string
}

func readMachine(loadStart string) machine {
	m := machine{NProc: runtime.NumCPU(), LoadStart: loadStart, Kernel: "?", CPUModel: "?", MemTotal: "?"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				m.MemTotal = f(kb/1024/1024, 1) + " GiB"
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadEnd = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return m
}

// colNames describes the columns run.sh measures, by their short name.
var colNames = map[string]string{
	"none":         "no mirror",
	"nft-dup":      "nft netdev `dup to \"span0\"` (ingress of eth0)",
	"tc-mirred":    "tc clsact ingress of eth0, `action mirred egress mirror dev span0` (matchall, or `u32 match u32 0 0` where the kernel lacks cls_matchall)",
	"daemonlog":    "daemonlogger `-i eth0 -o span0`",
	"netsniff":     "netsniff-ng `--in eth0 --out span0 --silent`",
	"nfm-route":    "nfmirror NFLOG, IP copies: `prerouting { iifname \"eth0\" mirror to \"span0\" }`",
	"nfm-l2":       "nfmirror NFLOG, L2: `ingress \"eth0\" { mirror to \"span0\" }`",
	"nfm-lossls":   "nfmirror lossless (NFQUEUE): `prerouting { iifname \"eth0\" mirror to \"span0\" lossless }`",
	"nfm-route-v4": "`nfm-route` on an IPv4-only router (IPv6 off in its namespace)",
	"nfm-l2-v4":    "`nfm-l2` on an IPv4-only router (IPv6 off in its namespace)",
}

// writeReport renders the Markdown results: the cells, then the soak and
// install records found in recs.
func writeReport(w io.Writer, cells []cell, recs []record, m machine, mode, date, notes string) error {
	bw := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(bw, format, a...) }
	p("# nfmirror mirror benchmark — results\n\n")
	p("Written by `bench/run.sh` (`make bench`, mode **%s**) on %s. Do not edit by hand: rerun `make bench` (or `make bench BENCHFLAGS=--quick`).\n\n", mode, date)
	p("## Machine\n\n")
	p("| | |\n|---|---|\n")
	p("| CPU | %s |\n| cores (nproc) | %d |\n| memory | %s |\n| kernel | %s |\n", m.CPUModel, m.NProc, m.MemTotal, m.Kernel)
	p("| load average (1/5/15 min) at start | %s |\n| load average at end | %s |\n\n", m.LoadStart, m.LoadEnd)
	p("**Noise**: the bench's generator, router and analyzer share these %d cores with the mirror under test, and other jobs may share them too (the load averages say how busy the machine was). Absolute figures, and ratios near a bound, move from run to run; compare columns within one run.\n\n", m.NProc)
	if notes != "" {
		p("%s\n\n", notes)
	}
	p("## Topology and method\n\n")
	p("```\ngen (c0) ── eth0  router  eth1 ── s0 (sink)\n                   span0 ── mon0 (analyzer, promiscuous, answers nothing)\n```\n\n")
	p("All namespaces on one host, veth pairs, 198.18.0.0/15. The router forwards and runs the mirror under test. `nfm-bench gen` is an open-loop UDP generator (sendmmsg batches of ≤64 paced by the clock, 64 MiB send buffer) to a port the sink drops in its input hook. Counting uses kernel interface counters only (`/sys/class/net/*/statistics`): offered = c0 tx, forwarded = s0 rx, mirrored = mon0 rx. Frame sizes count Ethernet header and FCS (RFC 2544: a 64-byte frame carries 18 bytes of UDP payload).\n\n")
	p("- **mirror loss %%** = 1 − mirrored / packets received by the router's eth0 (what reached the mirror point).\n")
	p("- **fwd loss %%** = 1 − forwarded / offered: what the mirror costs production traffic (plus what the shared veth backlog drops anyway, see the no-mirror row).\n")
	p("- **CPU %%** = whole machine busy time during the window (/proc/stat, 100 %% = all cores); **mirror CPU %%** = the mirror process (/proc/PID/stat, 100 %% = one core; – for in-kernel mirrors, whose cost shows in CPU %% only); **RSS** = VmRSS of the mirror process at the end of the cell.\n")
	p("- **nfmirror says lost** = copies `nfmirror status` counts as lost in the window (NFLOG sequence gaps, full queue to the sender, send errors).\n")
	p("- Each figure is the median over the runs of a cell (runs column).\n\n")

	var udp, tcp []cell
	for _, c := range cells {
		if c.kind == "tcp" {
			tcp = append(tcp, c)
		} else {
			udp = append(udp, c)
		}
	}
	var cols []string
	for _, c := range cells {
		if !slices.Contains(cols, c.col) {
			cols = append(cols, c.col)
		}
	}
	p("Columns:\n\n")
	for _, c := range cols {
		name := colNames[c]
		if name == "" {
			name = c
		}
		p("- `%s`: %s\n", c, name)
	}
	p("\n")

	writeTargets(p, judgeTargets(cells, recs))

	var sizes []string
	for _, c := range udp {
		if !slices.Contains(sizes, c.size) {
			sizes = append(sizes, c.size)
		}
	}
	for _, size := range sizes {
		var rates, scols []string
		byKey := map[string]cell{}
		for _, c := range udp {
			if c.size != size {
				continue
			}
			if !slices.Contains(rates, c.rate) {
				rates = append(rates, c.rate)
			}
			if !slices.Contains(scols, c.col) {
				scols = append(scols, c.col)
			}
			byKey[c.col+"|"+c.rate] = c
		}
		p("## UDP, %s-byte frames\n\n", size)
		p("Mirror loss %% (forwarded pps in brackets):\n\n| rate |")
		for _, c := range scols {
			p(" %s |", c)
		}
		p("\n|---|")
		for range scols {
			p("---:|")
		}
		p("\n")
		for _, r := range rates {
			p("| %s |", rateLabel(r))
			for _, col := range scols {
				c, ok := byKey[col+"|"+r]
				switch {
				case !ok:
					p(" |")
				case col == "none":
					p(" – (%s) |", kpps(c.med["forwarded"]))
				default:
					p(" %s (%s) |", f(c.med["mirrloss"], 1), kpps(c.med["forwarded"]))
				}
			}
			p("\n")
		}
		p("\n| rate | mirror | runs | offered pps | forwarded pps | mirrored pps | mirror loss %% | fwd loss %% | CPU %% | mirror CPU %% | RSS MiB | nfmirror says lost |\n")
		p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, r := range rates {
			for _, col := range scols {
				c, ok := byKey[col+"|"+r]
				if !ok {
					continue
				}
				mm := c.med
				p("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", rateLabel(r), col, c.runs,
					f(mm["offered"], 0), f(mm["forwarded"], 0), f(mm["mirrored"], 0), f(mm["mirrloss"], 1), f(mm["fwdloss"], 1),
					f(mm["cpu"], 0), f(mm["pcpu"], 0), f(mm["rss"], 1), f(mm["nfmlost"], 0))
			}
		}
		var extra []string
		for _, r := range rates {
			for _, col := range scols {
				c := byKey[col+"|"+r]
				if v := c.med["nfqmissed"]; !math.IsNaN(v) && v > 0 {
					extra = append(extra, fmt.Sprintf("%s at %s: of %s packets the router received in the window the kernel queued %s to NFQUEUE; %s (%s %%) found the fail-open queue full and passed uncopied, which nfmirror's status cannot count (it said %s lost)",
						col, rateLabel(r), f(c.med["rin"], 0), f(c.med["nfqqueued"], 0), f(v, 0), f(ratio(v, c.med["rin"]), 1), f(c.med["nfmlost"], 0)))
				}
				if v := c.med["answers"]; !math.IsNaN(v) && v > 0 {
					extra = append(extra, fmt.Sprintf("%s at %s: the analyzer transmitted %s packets (it should answer nothing)", col, rateLabel(r), f(v, 0)))
				}
			}
		}
		if len(extra) > 0 {
			p("\nNotes (medians): %s.\n", strings.Join(extra, "; "))
		}
		p("\n")
	}

	if len(tcp) > 0 {
		base := map[string]float64{}
		for _, c := range tcp {
			if c.col == "none" {
				base[c.tso] = c.med["mbps"]
			}
		}
		p("## TCP bulk stream (iperf3 -n, one stream gen → sink)\n\n")
		p("TSO toggled with `ethtool -K c0 tso on|off` on the generator's veth. **mirrored %%** is the share of payload bytes mirrored: analyzer rx_bytes / sink rx_bytes, each less %d bytes (Ethernet, IPv4, TCP with timestamps) per frame it counted, since the sink receives GRO/TSO super-packets where a mirror port may carry wire-sized frames. `daemonlog` and `netsniff` also copy the ACKs (payload 0).\n\n", tcpFrameHeaders)
		p("| TSO | mirror | runs | Mbit/s | vs no mirror %% | mirrored %% | CPU %% | mirror CPU %% | RSS MiB | nfmirror says lost |\n")
		p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, c := range tcp {
			p("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", c.tso, c.col, c.runs, f(c.med["mbps"], 0),
				f(ratio(c.med["mbps"], base[c.tso]), 0), f(c.med["mirrored"], 1), f(c.med["cpu"], 0), f(c.med["pcpu"], 0), f(c.med["rss"], 1), f(c.med["nfmlost"], 0))
		}
		p("\n")
	}
	writeSoak(p, recs)
	writeInstall(p, recs)
	p("Raw per-run counters: `bench/results-raw.txt` (one line per run, key=value).\n")
	return bw.Flush()
}

// writeSoak renders the memory of each mirror under a long overload.
func writeSoak(p func(string, ...any), recs []record) {
	first := true
	for _, r := range recs {
		if r.str("kind") != "soak" {
			continue
		}
		if first {
			p("## Memory under overload\n\n")
			p("%s s of 64-byte UDP as fast as the generator sends plus one TCP stream, at once; the mirror's VmRSS sampled every 5 s.\n\n", r.str("secs"))
			p("| mirror | RSS MiB at 5 s | min | max | at the end | samples (MiB) | nfmirror says lost |\n|---|---:|---:|---:|---:|---|---:|\n")
			first = false
		}
		var mib []float64
		for _, v := range strings.Split(r.str("rss_series"), "/") {
			if kb, err := strconv.ParseFloat(v, 64); err == nil {
				mib = append(mib, kb/1024)
			}
		}
		if len(mib) == 0 {
			p("| %s | – | – | – | – | – | %s |\n", r.str("col"), f(r.num("nfm_lost"), 0))
			continue
		}
		var ss []string
		for _, v := range mib {
			ss = append(ss, f(v, 1))
		}
		p("| %s | %s | %s | %s | %s | %s | %s |\n", r.str("col"), f(mib[0], 1), f(slices.Min(mib), 1), f(slices.Max(mib), 1),
			f(mib[len(mib)-1], 1), strings.Join(ss, " "), f(r.num("nfm_lost"), 0))
	}
	if !first {
		p("\n")
	}
}

// writeInstall renders how long installing a large rules file took.
func writeInstall(p func(string, ...any), recs []record) {
	secs := map[string][]float64{}
	n := ""
	for _, r := range recs {
		if r.str("kind") == "install" {
			secs[r.str("col")] = append(secs[r.str("col")], r.num("secs"))
			n = r.str("prefixes")
		}
	}
	if len(secs) == 0 {
		return
	}
	nfm, nft := median(secs["nfmirror"]), median(secs["nft"])
	p("## Installing %s prefixes\n\n", n)
	p("A rules file with %s prefixes in two sets (`nfm-bench bigrules`). **nfmirror** = `nfmirror apply` from start until it logs `mirroring` (parse, compile, one netlink batch, routing, readers bound); **nft** = `nft -f` of the ruleset `nfmirror check` prints for the same file. Fresh namespace each run; medians.\n\n", n)
	p("| | runs | seconds |\n|---|---:|---:|\n")
	p("| nfmirror apply | %d | %s |\n| nft -f | %d | %s |\n| ratio | | %s |\n\n", len(secs["nfmirror"]), f(nfm, 3), len(secs["nft"]), f(nft, 3), f(nfm/nft, 2))
}

func runReport(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	raw := fs.String("raw", "", "per-run records written by run.sh (required)")
	out := fs.String("out", "", "Markdown file to write (default stdout)")
	mode := fs.String("mode", "full", "run mode named in the report")
	load := fs.String("load-start", "?", "load average when the run started")
	notes := fs.String("notes", "", "extra Markdown paragraph (e.g. columns skipped)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *raw == "" {
		return errors.New("-raw is required")
	}
	rf, err := os.Open(*raw)
	if err != nil {
		return fmt.Errorf("open raw records: %w", err)
	}
	defer rf.Close()
	recs, err := parseRecords(rf)
	if err != nil {
		return fmt.Errorf("read %s: %w", *raw, err)
	}
	if len(recs) == 0 {
		return fmt.Errorf("read %s: no records", *raw)
	}
	w := stdout
	if *out != "" {
		of, err := os.Create(*out)
		if err != nil {
			return fmt.Errorf("create report: %w", err)
		}
		defer of.Close()
		w = of
	}
	date := time.Now().UTC().Format("2006-01-02 15:04 MST")
	return writeReport(w, aggregate(recs), recs, readMachine(*load), *mode, date, *notes)
}
