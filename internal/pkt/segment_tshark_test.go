package pkt_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nfmirror/nfmirror/internal/pkt"
	"github.com/nfmirror/nfmirror/internal/pkt/pkttest"
)

// TestSegmentsTsharkAgrees asks an independent dissector (tshark, with
// checksum validation on) whether the segments and fragments are good: every
// IPv4 header and TCP checksum, and the UDP checksum of the reassembled
// datagram.
func TestSegmentsTsharkAgrees(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark not installed")
	}
	tests := []struct {
		v6    bool
		proto byte
		n     int
	}{
		{false, pkt.ProtoTCP, 20000},
		{true, pkt.ProtoTCP, 20000},
		{false, pkt.ProtoUDP, 20000},
		{true, pkt.ProtoUDP, 20000},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("v6=%v/proto%d", tt.v6, tt.proto), func(t *testing.T) {
			var s pkt.Segmenter
			frames, err := s.Split(pkttest.Packet(tt.v6, tt.proto, tt.n), 1500, false)
			if err != nil {
				t.Fatal(err)
			}
			var pkts [][]byte
			for _, f := range frames {
				pkts = append(pkts, append([]byte(nil), f...))
			}
			path := filepath.Join(t.TempDir(), "segs.pcap")
			pkttest.WritePcap(t, path, pkttest.LinkRaw, pkts)
			out, err := exec.Command("tshark", "-r", path, "-n",
				"-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
				"-T", "fields", "-E", "separator=,",
				"-e", "ip.checksum.status", "-e", "tcp.checksum.status", "-e", "udp.checksum.status").Output()
			if err != nil {
				t.Fatalf("tshark: %v: %s", err, out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != len(pkts) {
				t.Fatalf("tshark read %d packets, want %d:\n%s", len(lines), len(pkts), out)
			}
			for i, line := range lines {
				f := strings.Split(line, ",")
				ipOK := tt.v6 || f[0] == "1"
				var l4OK bool
				switch {
				case tt.proto == pkt.ProtoTCP:
					l4OK = f[1] == "1"
				case i == len(lines)-1: // the reassembled datagram
					l4OK = f[2] == "1"
				default:
					l4OK = f[2] == ""
				}
				if !ipOK || !l4OK {
					t.Errorf("packet %d: tshark says ip/tcp/udp checksum status %q (1 = good)", i, line)
				}
			}
		})
	}
}
