package service

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// The capabilities nfmirror needs (linux/capability.h), and nothing else:
// nftables, NFLOG/NFQUEUE, ip rules and routes, link flags and socket marks
// need CAP_NET_ADMIN; AF_PACKET sockets need CAP_NET_RAW.
const (
	capNetAdmin = 12
	capNetRaw   = 13
)

// checkCapabilities says which of the capabilities nfmirror needs the
// process lacks, before it changes anything.
func checkCapabilities() error {
	eff, err := effectiveCapabilities()
	if err != nil {
		return nil // cannot tell: let the first operation say
	}
	var missing []string
	for _, c := range []struct {
		bit  uint
		name string
	}{{capNetAdmin, "CAP_NET_ADMIN"}, {capNetRaw, "CAP_NET_RAW"}} {
		if eff&(1<<c.bit) == 0 {
			missing = append(missing, c.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("nfmirror needs the capabilities CAP_NET_ADMIN and CAP_NET_RAW; this process lacks %s (run it as root, or give it both, e.g. AmbientCapabilities= in its systemd unit)", strings.Join(missing, " and "))
	}
	return nil
}

// effectiveCapabilities reads the process's effective capability set.
func effectiveCapabilities() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, fmt.Errorf("no CapEff in /proc/self/status")
}
