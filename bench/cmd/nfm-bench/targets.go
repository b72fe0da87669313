package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// targetRow is one performance target judged from a run's medians.
type targetRow struct {
	what, col, measured, goal, verdict string
}

// Verdicts of a target.
const (
	targetMet         = "met"
	targetNotMet      = "**not met**"
	targetNotMeasured = "not measured"
)

// The targets, as ratios within one run (the machine is shared, so absolute
// figures move from run to run; ratios of medians much less).
const (
	targetLoss200k   = 0.5  // % of 64-byte copies lost at 200 kpps
	targetCPU100k    = 1.5  // machine CPU at 100 kpps, × nft dup's
	targetFwd400k    = 0.9  // forwarded pps at 400 kpps offered, × with nft dup
	targetTCPBytes   = 99.9 // % of a TSO TCP stream's payload mirrored
	targetTCPSpeed   = 0.9  // TSO TCP throughput, × without a mirror
	targetLosslessMB = 64.0 // MiB of VmRSS at most over the soak
	targetFlatMB     = 1.0  // MiB the second half of the soak may exceed the first by
	lossFreeEpsilon  = 1e-9 // a loss % at or below this is no loss
	tcpFrameHeaders  = 66   // Ethernet, IPv4 and TCP with timestamps
	dupCol           = "nft-dup"
	losslessCol      = "nfm-lossls"
	soakSamplePeriod = 5 // seconds between the soak's RSS samples
)

// nflogCols are the best-effort nfmirror columns the loss and CPU targets
// judge; every nfmirror column is judged for forwarding and TCP.
var (
	nflogCols = []string{"nfm-route", "nfm-l2", "nfm-route-v4", "nfm-l2-v4"}
	nfmCols   = []string{"nfm-route", "nfm-l2", losslessCol, "nfm-route-v4", "nfm-l2-v4"}
)

// findCell returns the cell with the given key fields, if the run has it.
func findCell(cells []cell, kind, col, size, rate, tso string) (cell, bool) {
	k := cell{kind: kind, col: col, size: size, rate: rate, tso: tso}.key()
	for _, c := range cells {
		if c.key() == k {
			return c, true
		}
	}
	return cell{}, false
}

// judge returns the verdict of a measured value against a bound; atMost
// says which side of it passes.
func judge(v, bound float64, atMost bool) string {
	switch {
	case math.IsNaN(v):
		return targetNotMeasured
	case atMost && v <= bound, !atMost && v >= bound:
		return targetMet
	default:
		return targetNotMet
	}
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return f(v, 1) + " %"
}

func times(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return f(v, 2) + "×"
}

// judgeTargets measures every target against the run's cells and soak
// records.
func judgeTargets(cells []cell, recs []record) []targetRow {
	var rows []targetRow
	get := func(kind, col, size, rate, tso, metric string) float64 {
		c, ok := findCell(cells, kind, col, size, rate, tso)
		if !ok {
			return math.NaN()
		}
		v, ok := c.med[metric]
		if !ok {
			return math.NaN()
		}
		return v
	}
	dupLoss := get("udp", dupCol, "64", "200000", "", "mirrloss")
	for _, col := range nflogCols {
		v := get("udp", col, "64", "200000", "", "mirrloss")
		rows = append(rows, targetRow{
			what: fmt.Sprintf("64-byte copies lost at 200 kpps offered (nft dup: %s)", pct(dupLoss)),
			col:  col, measured: pct(v), goal: "≤ " + f(targetLoss200k, 1) + " %", verdict: judge(v, targetLoss200k, true),
		})
	}
	dupCPU := get("udp", dupCol, "64", "100000", "", "cpu")
	for _, col := range nflogCols {
		c := get("udp", col, "64", "100000", "", "cpu")
		v := c / dupCPU
		rows = append(rows, targetRow{
			what: fmt.Sprintf("machine CPU at 100 kpps of 64-byte frames, × nft dup's (%s vs %s)", pct(c), pct(dupCPU)),
			col:  col, measured: times(v), goal: "≤ " + times(targetCPU100k), verdict: judge(v, targetCPU100k, true),
		})
	}
	dupFwd := get("udp", dupCol, "64", "400000", "", "forwarded")
	for _, col := range nfmCols {
		fw := get("udp", col, "64", "400000", "", "forwarded")
		v := fw / dupFwd
		rows = append(rows, targetRow{
			what: fmt.Sprintf("forwarded pps at 400 kpps offered (64-byte), × with nft dup (%s vs %s)", kpps(fw), kpps(dupFwd)),
			col:  col, measured: times(v), goal: "≥ " + times(targetFwd400k), verdict: judge(v, targetFwd400k, false),
		})
	}
	base := get("tcp", "none", "", "", "on", "mbps")
	for _, col := range nfmCols {
		m := get("tcp", col, "", "", "on", "mirrored")
		rows = append(rows, targetRow{
			what: "one TSO TCP stream: payload bytes mirrored",
			col:  col, measured: pct(m), goal: "≥ " + f(targetTCPBytes, 1) + " %", verdict: judge(m, targetTCPBytes, false),
		})
		s := get("tcp", col, "", "", "on", "mbps")
		v := s / base
		rows = append(rows, targetRow{
			what: fmt.Sprintf("one TSO TCP stream: throughput, × without a mirror (%s vs %s Mbit/s)", f(s, 0), f(base, 0)),
			col:  col, measured: times(v), goal: "≥ " + times(targetTCPSpeed), verdict: judge(v, targetTCPSpeed, false),
		})
	}
	loss := get("udp", losslessCol, "64", "100000", "", "mirrloss")
	rows = append(rows, targetRow{what: "copies lost at 100 kpps of 64-byte frames", col: losslessCol, measured: pct(loss), goal: "0 (loss-free)", verdict: judge(loss, lossFreeEpsilon, true)})
	rows = append(rows, soakTarget(recs))
	return rows
}

// soakTarget judges the lossless mirror's memory over the soak: at most
// targetLosslessMB at every sample, and flat: the second half of the samples
// no more than targetFlatMB above the first half's maximum.
func soakTarget(recs []record) targetRow {
	row := targetRow{
		what: "VmRSS over the overload soak: bounded, and flat (second half's max − first half's max)",
		col:  losslessCol, measured: "–",
		goal:    fmt.Sprintf("≤ %s MiB, growth ≤ %s MiB", f(targetLosslessMB, 0), f(targetFlatMB, 0)),
		verdict: targetNotMeasured,
	}
	for _, r := range recs {
		if r.str("kind") != "soak" || r.str("col") != losslessCol {
			continue
		}
		var mib []float64
		for _, v := range strings.Split(r.str("rss_series"), "/") {
			if kb, err := strconv.ParseFloat(v, 64); err == nil {
				mib = append(mib, kb/1024)
			}
		}
		if len(mib) < 2 {
			return row
		}
		half := len(mib) / 2
		peak := slices.Max(mib)
		growth := slices.Max(mib[half:]) - slices.Max(mib[:half])
		row.what = fmt.Sprintf("VmRSS over %s s of overload: bounded, and flat (max of the last %d samples − max of the first %d, every %d s)",
			r.str("secs"), len(mib)-half, half, soakSamplePeriod)
		row.measured = fmt.Sprintf("max %s MiB, growth %s MiB", f(peak, 1), f(growth, 1))
		row.verdict = targetMet
		if peak > targetLosslessMB || growth > targetFlatMB {
			row.verdict = targetNotMet
		}
	}
	return row
}

// writeTargets renders the targets table.
func writeTargets(p func(string, ...any), rows []targetRow) {
	p("## Targets\n\n")
	p("What nfmirror is held to on this machine. Every figure is a median of the runs of a cell, and every comparison is within this one run (ratios move much less than absolute figures on a shared machine). A target whose cells the run did not measure says so.\n\n")
	p("| target | mirror | measured | goal | verdict |\n|---|---|---:|---:|---|\n")
	for _, r := range rows {
		p("| %s | %s | %s | %s | %s |\n", r.what, r.col, r.measured, r.goal, r.verdict)
	}
	p("\n")
}
