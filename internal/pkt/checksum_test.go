package pkt_test

import (
	"math/rand/v2"
	"testing"

	"github.com/nfmirror/nfmirror/internal/pkt"
	"github.com/nfmirror/nfmirror/internal/pkt/pkttest"
)

// TestSumMatchesNaive compares Sum with a byte-pair-at-a-time reference over
// every length up to 300 bytes at every alignment, random and all-0xff data
// (the sum that folds to 0xffff), and a 64 KiB super-packet.
func TestSumMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 64<<10+8)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	ones := make([]byte, 400)
	for i := range ones {
		ones[i] = 0xff
	}
	zeros := make([]byte, 400)
	for _, tc := range []struct {
		name string
		data []byte
		max  int
	}{
		{"random", random, 300},
		{"ones", ones, 300},
		{"zeros", zeros, 300},
	} {
		for off := range 8 {
			for n := 0; n <= tc.max; n++ {
				b := tc.data[off : off+n]
				if got, want := pkt.Fold(pkt.Sum(0, b)), ^pkttest.NaiveSum(b); got != want {
					t.Fatalf("%s: %d bytes at offset %d: checksum %#04x, want %#04x", tc.name, n, off, got, want)
				}
			}
		}
	}
	for _, n := range []int{1500, 9000, 64 << 10} {
		b := random[3 : 3+n]
		if got, want := pkt.Fold(pkt.Sum(0, b)), ^pkttest.NaiveSum(b); got != want {
			t.Errorf("%d bytes: checksum %#04x, want %#04x", n, got, want)
		}
	}
	// A running sum carried in, as PseudoSum hands it on.
	b := random[:1480]
	if got, want := pkt.Fold(pkt.Sum(0x1_2345_6789, b)), ^pkttest.NaiveSum([]byte{0x00, 0x01, 0x23, 0x45, 0x67, 0x89}, b); got != want {
		t.Errorf("with a carried sum: %#04x, want %#04x", got, want)
	}
}

// BenchmarkSum is the checksum of one MTU-sized segment.
func BenchmarkSum(b *testing.B) {
	buf := make([]byte, 1480)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		pkt.Fold(pkt.Sum(0, buf))
	}
}
