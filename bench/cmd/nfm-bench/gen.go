package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"time"
)

// Ethernet header, FCS, IPv4 header and UDP header: a frame of size S
// (RFC 2544 counting, FCS included) carries S-46 bytes of UDP payload.
const frameOverhead = 14 + 4 + 20 + 8

// genConfig is what one generator run sends.
type genConfig struct {
	Dst      netip.AddrPort
	Size     int           // Ethernet frame size with FCS, RFC 2544 style (64 = minimum)
	Rate     float64       // packets per second; 0 = as fast as possible
	Duration time.Duration // how long to send
	Max      uint64        // hard cap on packets, whatever the rate
	Batch    int           // packets per sendmmsg call at most
	SndBuf   int           // SO_SNDBUFFORCE bytes
}

// genResult is what gen prints as JSON.
type genResult struct {
	Sent    uint64  `json:"sent"`    // datagrams the kernel accepted
	Errors  uint64  `json:"errors"`  // datagrams refused (ENOBUFS, EAGAIN, ...)
	Seconds float64 `json:"seconds"` // wall time from first to last send
	PPS     float64 `json:"pps"`     // Sent / Seconds
	Target  float64 `json:"target"`  // the rate asked for (0 = max)
}

func runGen(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	dst := fs.String("dst", "198.18.2.2:9", "destination `addr:port` (IPv4)")
	size := fs.Int("size", 64, "Ethernet frame size in bytes, FCS included (64..1518)")
	rate := fs.Float64("rate", 100000, "packets per second; 0 = as fast as possible")
	dur := fs.Duration("duration", 5*time.Second, "how long to send (at most 60s)")
	max := fs.Uint64("max", 50_000_000, "never send more than this many packets")
	batch := fs.Int("batch", 64, "packets per sendmmsg call at most")
	sndbuf := fs.Int("sndbuf", 64<<20, "socket send buffer in bytes (SO_SNDBUFFORCE)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ap, err := netip.ParseAddrPort(*dst)
	if err != nil {
		return fmt.Errorf("parse -dst: %w", err)
	}
	cfg := genConfig{Dst: ap, Size: *size, Rate: *rate, Duration: *dur, Max: *max, Batch: *batch, SndBuf: *sndbuf}
	if err := cfg.validate(); err != nil {
		return err
	}
	res, err := generate(ctx, cfg)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(res)
}

func (c genConfig) validate() error {
	switch {
	case !c.Dst.Addr().Is4():
		return errors.New("-dst must be an IPv4 address and port")
	case c.Size < 64 || c.Size > 1518:
		return fmt.Errorf("-size %d: want 64..1518", c.Size)
	case c.Rate < 0 || c.Rate > 50e6:
		return fmt.Errorf("-rate %g: want 0..50e6", c.Rate)
	case c.Duration <= 0 || c.Duration > time.Minute:
		return fmt.Errorf("-duration %s: want (0, 60s]", c.Duration)
	case c.Batch < 1 || c.Batch > 1024:
		return fmt.Errorf("-batch %d: want 1..1024", c.Batch)
	case c.Max == 0:
		return errors.New("-max must be positive")
	}
	return nil
}

// due is how many packets an open-loop sender at rate pps should have sent
// elapsed after its start, capped at max; rate 0 means no pacing (max).
func due(elapsed time.Duration, rate float64, max uint64) uint64 {
	if rate == 0 || elapsed < 0 {
		if rate == 0 {
			return max
		}
		return 0
	}
	n := elapsed.Seconds() * rate
	if n >= float64(max) {
		return max
	}
	return uint64(n)
}
