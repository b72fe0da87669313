package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

func TestDue(t *testing.T) {
	tests := []struct {
		name    string
		elapsed time.Duration
		rate    float64
		max     uint64
		want    uint64
	}{
		{"start", 0, 100000, 1e9, 0},
		{"one second", time.Second, 100000, 1e9, 100000},
		{"half a millisecond at 400k", 500 * time.Microsecond, 400000, 1e9, 200},
		{"capped", 10 * time.Second, 100000, 5000, 5000},
		{"max rate sends the cap", time.Millisecond, 0, 777, 777},
		{"negative elapsed", -time.Second, 1000, 1e9, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := due(tt.elapsed, tt.rate, tt.max); got != tt.want {
				t.Errorf("due(%s, %g, %d) = %d, want %d", tt.elapsed, tt.rate, tt.max, got, tt.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		in   []float64
		want float64
	}{
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{nan, 5, nan}, 5},
		{[]float64{7}, 7},
	}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %g, want %g", tt.in, got, tt.want)
		}
	}
	if got := median([]float64{nan}); !math.IsNaN(got) {
		t.Errorf("median of no numbers = %g, want NaN", got)
	}
}

func TestParseRecordsErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"not key=value", "kind=udp col=none junk", `field "junk"`},
		{"no column", "kind=udp size=64", "no kind= or col="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseRecords(strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("parseRecords(%q) error = %v, want %q", tt.in, err, tt.want)
			}
		})
	}
}

// TestReport feeds three runs of two columns and checks the medians that
// reach the Markdown tables.
func TestReport(t *testing.T) {
	raw := `# comment
kind=udp col=none size=64 rate=100000 run=1 secs=2 gen_tx=200000 rin_rx=200000 sink_rx=200000 mon_rx=0 mon_tx=0 cpu_busy=50 cpu_total=400 proc_ticks=- hz=100 rss_kb=- nfm_lost=-
kind=udp col=nfm-route size=64 rate=100000 run=1 secs=2 gen_tx=200000 rin_rx=200000 sink_rx=190000 mon_rx=100000 mon_tx=0 cpu_busy=300 cpu_total=400 proc_ticks=100 hz=100 rss_kb=20480 nfm_lost=99
kind=udp col=nfm-route size=64 rate=100000 run=2 secs=2 gen_tx=200000 rin_rx=200000 sink_rx=180000 mon_rx=150000 mon_tx=0 cpu_busy=200 cpu_total=400 proc_ticks=150 hz=100 rss_kb=30720 nfm_lost=0
kind=udp col=nfm-route size=64 rate=100000 run=3 secs=2 gen_tx=200000 rin_rx=200000 sink_rx=170000 mon_rx=190000 mon_tx=3 cpu_busy=100 cpu_total=400 proc_ticks=200 hz=100 rss_kb=10240 nfm_lost=0
kind=udp col=nfm-lossls size=64 rate=100000 run=1 secs=2 gen_tx=200000 rin_rx=200000 sink_rx=200000 mon_rx=80000 mon_tx=0 cpu_busy=1 cpu_total=2 proc_ticks=1 hz=100 rss_kb=1 nfm_lost=0 nfq_queued=80000 nfq_dropped=0
kind=tcp col=none tso=on run=1 bps=8e9 secs=1 sink_rx_bytes=1000 mon_rx_bytes=0 cpu_busy=1 cpu_total=2 proc_ticks=- hz=100 rss_kb=-
kind=tcp col=nfm-route tso=on run=1 bps=2e9 secs=1 sink_rx=10 sink_rx_bytes=100660 mon_rx=100 mon_rx_bytes=96600 cpu_busy=1 cpu_total=2 proc_ticks=50 hz=100 rss_kb=1024
kind=soak col=nfm-route secs=15 rss_series=20480/30720/25600 nfm_lost=7
kind=install col=nfmirror run=1 prefixes=10000 secs=0.0800
kind=install col=nft run=1 prefixes=10000 secs=0.0400
kind=install col=nfmirror run=2 prefixes=10000 secs=0.0900
kind=install col=nft run=2 prefixes=10000 secs=0.0600
`
	recs, err := parseRecords(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	cells := aggregate(recs)
	if len(cells) != 5 {
		t.Fatalf("got %d cells, want 5", len(cells))
	}
	nr := cells[1]
	if nr.col != "nfm-route" || nr.runs != 3 {
		t.Fatalf("cell 1 = %s with %d runs, want nfm-route with 3", nr.col, nr.runs)
	}
	checks := map[string]float64{
		"offered":   100000,
		"forwarded": 90000, // median of 95k, 90k, 85k
		"mirrored":  75000,
		"mirrloss":  25,
		"fwdloss":   10,
		"cpu":       50,
		"pcpu":      75, // 150 ticks / 100 Hz / 2 s
		"rss":       20,
		"nfmlost":   0,
	}
	for k, want := range checks {
		if got := nr.med[k]; math.Abs(got-want) > 1e-9 {
			t.Errorf("median %s = %g, want %g", k, got, want)
		}
	}
	if !math.IsNaN(cells[0].med["mirrloss"]) {
		t.Errorf("no-mirror column has a mirror loss %g, want none", cells[0].med["mirrloss"])
	}
	var buf bytes.Buffer
	if err := writeReport(&buf, cells, recs, machine{CPUModel: "test CPU", NProc: 2}, "quick", "2026-01-02", ""); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"| 100k | nfm-route | 3 | 100000 | 90000 | 75000 | 25.0 | 10.0 | 50 | 75 | 20.0 | 0 |",
		"| 100k | – (100.0k) | 25.0 (90.0k) |",
		"| on | nfm-route | 1 | 2000 | 25 | 90.0 |",
		"| nfm-route | 20.0 | 20.0 | 30.0 | 25.0 | 20.0 30.0 25.0 | 7 |",
		"| nfmirror apply | 2 | 0.085 |\n| nft -f | 2 | 0.050 |\n| ratio | | 1.70 |",
		"the kernel queued 80000 to NFQUEUE; 120000 (60.0 %) found the fail-open queue full and passed uncopied, which nfmirror's status cannot count (it said 0 lost)",
		"nfm-route at 100k: the analyzer transmitted 0 packets", // must not appear: median is 0
		"share these",
		"test CPU",
	} {
		has := strings.Contains(out, want)
		if strings.Contains(want, "transmitted 0") {
			has = !has
		}
		if !has {
			t.Errorf("report lacks (or wrongly has) %q:\n%s", want, out)
		}
	}
}

func TestParseNfmStatus(t *testing.T) {
	doc := `{"rules":[],"destinations":[{"name":"span0","packets":10,"bytes":640,"errors":2}],
"channels":[{"kind":"nflog","num":6000,"received":12,"seq_gaps":5,"enobufs":1,"queue_full":1},{"kind":"nfqueue","received":3,"seq_gaps":0,"queue_full":4}]}`
	got, err := parseNfmStatus(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := nfmTotals{Received: 15, SeqGaps: 5, QueueFull: 5, Sent: 10, SendErrors: 2}
	if got != want {
		t.Errorf("totals = %+v, want %+v", got, want)
	}
	if _, err := parseNfmStatus(strings.NewReader("{")); err == nil {
		t.Error("truncated document: no error")
	}
}

// TestTargets judges each target from records on either side of its bound,
// and a target whose cells are missing as not measured.
func TestTargets(t *testing.T) {
	raw := `kind=udp col=nft-dup size=64 rate=100000 run=1 secs=1 gen_tx=100000 rin_rx=100000 sink_rx=100000 mon_rx=100000 mon_tx=0 cpu_busy=20 cpu_total=100
kind=udp col=nft-dup size=64 rate=200000 run=1 secs=1 gen_tx=200000 rin_rx=200000 sink_rx=200000 mon_rx=200000 mon_tx=0 cpu_busy=40 cpu_total=100
kind=udp col=nft-dup size=64 rate=400000 run=1 secs=1 gen_tx=400000 rin_rx=400000 sink_rx=400000 mon_rx=400000 mon_tx=0 cpu_busy=90 cpu_total=100
kind=udp col=nfm-route size=64 rate=100000 run=1 secs=1 gen_tx=100000 rin_rx=100000 sink_rx=100000 mon_rx=100000 mon_tx=0 cpu_busy=30 cpu_total=100
kind=udp col=nfm-route size=64 rate=200000 run=1 secs=1 gen_tx=200000 rin_rx=200000 sink_rx=200000 mon_rx=199000 mon_tx=0 cpu_busy=50 cpu_total=100
kind=udp col=nfm-route size=64 rate=400000 run=1 secs=1 gen_tx=400000 rin_rx=400000 sink_rx=350000 mon_rx=300000 mon_tx=0 cpu_busy=99 cpu_total=100
kind=udp col=nfm-l2 size=64 rate=100000 run=1 secs=1 gen_tx=100000 rin_rx=100000 sink_rx=100000 mon_rx=100000 mon_tx=0 cpu_busy=31 cpu_total=100
kind=udp col=nfm-l2 size=64 rate=200000 run=1 secs=1 gen_tx=200000 rin_rx=200000 sink_rx=200000 mon_rx=198000 mon_tx=0 cpu_busy=50 cpu_total=100
kind=udp col=nfm-l2 size=64 rate=400000 run=1 secs=1 gen_tx=400000 rin_rx=400000 sink_rx=370000 mon_rx=300000 mon_tx=0 cpu_busy=99 cpu_total=100
kind=udp col=nfm-lossls size=64 rate=100000 run=1 secs=1 gen_tx=100000 rin_rx=100000 sink_rx=100000 mon_rx=100000 mon_tx=0 cpu_busy=40 cpu_total=100
kind=tcp col=none tso=on run=1 bps=10e9 secs=1 sink_rx=10 sink_rx_bytes=100660 mon_rx=0 mon_rx_bytes=0
kind=tcp col=nfm-lossls tso=on run=1 bps=5e9 secs=1 sink_rx=10 sink_rx_bytes=100660 mon_rx=69 mon_rx_bytes=104554
kind=tcp col=nfm-route tso=on run=1 bps=9.5e9 secs=1 sink_rx=10 sink_rx_bytes=100660 mon_rx=69 mon_rx_bytes=99554
kind=soak col=nfm-lossls secs=20 rss_series=30720/40960/41984/41984
`
	recs, err := parseRecords(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	rows := judgeTargets(aggregate(recs), recs)
	want := map[string]struct{ measured, verdict string }{
		"lost at 200 kpps|nfm-route":         {"0.5 %", targetMet},
		"lost at 200 kpps|nfm-l2":            {"1.0 %", targetNotMet},
		"lost at 200 kpps|nfm-l2-v4":         {"–", targetNotMeasured},
		"CPU at 100 kpps|nfm-route":          {"1.50×", targetMet},
		"CPU at 100 kpps|nfm-l2":             {"1.55×", targetNotMet},
		"at 400 kpps offered|nfm-route":      {"0.88×", targetNotMet},
		"at 400 kpps offered|nfm-l2":         {"0.93×", targetMet},
		"bytes mirrored|nfm-lossls":          {"100.0 %", targetMet},
		"bytes mirrored|nfm-route":           {"95.0 %", targetNotMet},
		"throughput|nfm-lossls":              {"0.50×", targetNotMet},
		"throughput|nfm-route":               {"0.95×", targetMet},
		"copies lost at 100 kpps|nfm-lossls": {"0.0 %", targetMet},
		"VmRSS|nfm-lossls":                   {"max 41.0 MiB, growth 1.0 MiB", targetMet},
	}
	for key, w := range want {
		what, col, _ := strings.Cut(key, "|")
		found := false
		for _, r := range rows {
			if r.col == col && strings.Contains(r.what, what) {
				found = true
				if r.measured != w.measured || r.verdict != w.verdict {
					t.Errorf("%s %s: measured %q (%s), want %q (%s)", col, what, r.measured, r.verdict, w.measured, w.verdict)
				}
			}
		}
		if !found {
			t.Errorf("no target row for %s %s", col, what)
		}
	}
}
