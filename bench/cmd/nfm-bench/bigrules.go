package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/netip"
)

// runBigRules writes a rules file with n distinct /30 prefixes of
// 198.18.0.0/15 in two sets (source and destination halves), the
// install-time benchmark's input.
func runBigRules(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bigrules", flag.ContinueOnError)
	n := fs.Int("n", 10000, "number of prefixes (at most 32768)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 2 || *n > 1<<15 {
		return fmt.Errorf("-n %d: want 2 to 32768", *n)
	}
	w := bufio.NewWriter(stdout)
	set := func(name string, from, to int) {
		fmt.Fprintf(w, "define %s = {", name)
		for i := from; i < to; i++ {
			a := netip.AddrFrom4([4]byte{198, 18 + byte(i>>14), byte(i >> 6), byte(i << 2)})
			sep := ","
			if i == from {
				sep = ""
			}
			fmt.Fprintf(w, "%s\n    %s/30", sep, a)
		}
		fmt.Fprint(w, "\n}\n")
	}
	set("src", 0, *n/2)
	set("dst", *n/2, *n)
	fmt.Fprint(w, `forward {
    ip saddr $src mirror to "span0"
    ip daddr $dst tcp dport { 80, 443 } mirror to "span0"
}
`)
	return w.Flush()
}
