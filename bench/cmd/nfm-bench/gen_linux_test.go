package main

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestGenerateRate paces datagrams to a loopback socket: the count sent and
// received must match the asked rate over the window (open loop, no root).
func TestGenerateRate(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	tests := []struct {
		rate float64
		size int
		dur  time.Duration
		max  uint64
		want uint64 // packets expected: rate*dur or the cap
	}{
		{rate: 20000, size: 64, dur: 500 * time.Millisecond, max: 1e9, want: 10000},
		{rate: 5000, size: 1400, dur: 400 * time.Millisecond, max: 1e9, want: 2000},
		{rate: 0, size: 64, dur: 2 * time.Second, max: 3000, want: 3000},
	}
	for _, tt := range tests {
		ln, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		ln.SetReadBuffer(8 << 20)
		got := make(chan uint64, 1)
		go func() {
			var n uint64
			buf := make([]byte, 2048)
			for {
				ln.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				k, err := ln.Read(buf)
				if err != nil {
					got <- n
					return
				}
				if k != tt.size-frameOverhead {
					t.Errorf("datagram of %d bytes, want %d", k, tt.size-frameOverhead)
				}
				n++
			}
		}()
		dst := netip.MustParseAddrPort(ln.LocalAddr().String())
		res, err := generate(context.Background(), genConfig{Dst: dst, Size: tt.size, Rate: tt.rate, Duration: tt.dur, Max: tt.max, Batch: 64, SndBuf: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		recv := <-got
		ln.Close()
		lo, hi := float64(tt.want)*0.9, float64(tt.want)*1.02
		if float64(res.Sent) < lo || float64(res.Sent) > hi {
			t.Errorf("rate %g for %s: sent %d, want %d (±10%%)", tt.rate, tt.dur, res.Sent, tt.want)
		}
		if recv < res.Sent*95/100 {
			t.Errorf("rate %g: received %d of %d sent", tt.rate, recv, res.Sent)
		}
	}
}
