// Command nfmirror gives Linux a real mirror (SPAN) port, chosen with
// nftables syntax. See `nfmirror help` and README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// version is stamped by the Makefile with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
