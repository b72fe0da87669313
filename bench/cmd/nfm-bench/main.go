// Command nfm-bench is the Go half of `make bench` (bench/run.sh): an
// open-loop UDP packet generator and the report writer.
//
//	nfm-bench gen -dst 198.18.2.2:9 -size 64 -rate 100000 -duration 5s
//	nfm-bench report -raw raw.txt -mode quick -out bench/RESULTS.md
//	nfmirror status -json | nfm-bench nfmstat
//	nfm-bench bigrules -n 10000 > big.nft
//
// gen runs in the generator's namespace (the script starts it with
// `ip netns exec`); it prints one JSON object with what it sent. report reads
// the per-cell counter deltas run.sh recorded, takes medians over the runs
// and writes the Markdown results. nfmstat sums an `nfmirror status -json`
// document into "received seq_gaps queue_full sent send_errors". bigrules
// writes a rules file with n prefixes in sets, for the install-time figure.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: nfm-bench gen|report|nfmstat|bigrules [flags]")
		return 2
	}
	var err error
	switch args[0] {
	case "gen":
		err = runGen(ctx, args[1:], stdout)
	case "report":
		err = runReport(args[1:], stdout)
	case "nfmstat":
		err = runNfmStat(os.Stdin, stdout)
	case "bigrules":
		err = runBigRules(args[1:], stdout)
	default:
		fmt.Fprintf(stderr, "nfm-bench: unknown command %q\n", args[0])
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "nfm-bench %s: %v\n", args[0], err)
		return 1
	}
	return 0
}
