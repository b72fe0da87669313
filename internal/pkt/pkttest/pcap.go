package pkttest

import (
	"os"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// Link types of the capture files WritePcap writes.
const (
	LinkEthernet = layers.LinkTypeEthernet
	LinkRaw      = layers.LinkTypeRaw // IPv4 or IPv6 packets, no link header
)

// WritePcap writes packets to a pcap file at path with the given link type,
// one second apart, for a dissector (tshark) to read.
func WritePcap(t testing.TB, path string, link layers.LinkType, packets [][]byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(262144, link); err != nil {
		t.Fatal(err)
	}
	for i, p := range packets {
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(int64(i+1), 0), CaptureLength: len(p), Length: len(p)}
		if err := w.WritePacket(ci, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
