package integration

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"
	"testing"
)

// TestTCPBulkStreamMirrored sends a bounded iperf3 TCP stream (TSO/GSO on,
// so the router sees ~64 KB super-packets) and checks that the byte stream
// reassembled from the mirror port equals the one reassembled from the
// router's input interface: every payload byte mirrored, in MTU-sized frames.
func TestTCPBulkStreamMirrored(t *testing.T) {
	// NFLOG (best effort) and NFQUEUE (lossless, which takes super-packets
	// whole too: NFQA_CFG_F_GSO).
	for _, mode := range []string{"", " lossless"} {
		name := "nflog"
		if mode != "" {
			name = "lossless"
		}
		t.Run(name, func(t *testing.T) { testTCPBulkStream(t, mode) })
	}
}

func testTCPBulkStream(t *testing.T, mode string) {
	l := newLab(t)
	m := l.apply("prerouting {\n    iifname \"eth0\" tcp dport 5201 mirror to \"span0\"" + mode + "\n}\n")
	l.start(l.server, nil, nil, "iperf3", "-s", "-1", "-B", "198.18.2.2")
	l.listening(l.server, 5201)
	ref := l.capture(l.router, "eth0", "in", "tcp dst port 5201")
	mon := l.mirrorCapture("")
	out, err := l.try(l.client, "timeout", "30", "iperf3", "-c", "198.18.2.2", "-n", "4M", "-l", "64K")
	if err != nil {
		t.Fatalf("iperf3: %v\n%s", err, out)
	}
	m.settle()
	span := l.txPackets(l.router, "span0")
	monRx := l.rxPackets(l.monitor, "mon0")
	refFrames, monFrames := ref.frames(), mon.frames()
	want := streams(ipPackets(refFrames, nil))
	got := streams(ipPackets(monFrames, nil))
	big := ""
	for k, s := range got {
		if s.end > got[big].end {
			big = k
		}
	}
	diag := fmt.Sprintf("span0 sent %d frames, mon0 received %d, the monitor's capture holds %d; iperf3: %s", span, monRx, len(monFrames), out)
	// The mirror carries the whole data stream: no hole, at least the first
	// MiB (iperf3 -n counts bytes written; the server may reset the
	// connection before the last of them crossed the router).
	if g := got[big]; len(g.data) != g.end || g.end < 1<<20 {
		t.Fatalf("mirrored stream %s: %d bytes contiguous of %d seen, want all of at least 1 MiB\n%s", big, len(g.data), g.end, diag)
	}
	// Every packet the kernel rule matched was mirrored.
	for _, r := range m.status().RuleStats {
		if r.Matched != r.Mirrored || r.Matched == 0 {
			t.Errorf("rule %s: matched %d packets, mirrored %d", r.Text, r.Matched, r.Mirrored)
		}
	}
	// The same bytes as on the router's input. tcpdump on a veth now and
	// then misses a super-packet without counting a drop; then the reference
	// has a hole and only its part before the hole can be compared.
	rs, g := want[big], got[big]
	switch {
	case len(rs.data) == rs.end && string(rs.data) != string(g.data):
		t.Errorf("mirrored stream %s: %d bytes, reference %d bytes; equal prefix %d\n%s", big, len(g.data), len(rs.data), commonPrefix(g.data, rs.data), diag)
	case commonPrefix(g.data, rs.data) != len(rs.data):
		t.Errorf("mirrored stream %s differs from the reference within its first %d bytes\n%s", big, len(rs.data), diag)
	case len(rs.data) != rs.end:
		t.Logf("the reference capture has a hole after %d of %d bytes: compared that much", len(rs.data), rs.end)
	}
	maxLen, superPackets := 0, 0
	for _, n := range mon.lens {
		maxLen = max(maxLen, n)
	}
	for _, f := range refFrames {
		if len(f) > 1514 {
			superPackets++
		}
	}
	if maxLen > 1514 {
		t.Errorf("the mirror port carried a %d-byte frame: super-packets must be segmented to the MTU", maxLen)
	}
	validChecksums(t, ipPackets(monFrames, nil))
	t.Logf("%d reference frames (%d super-packets), %d mirrored frames, stream %d bytes", len(refFrames), superPackets, len(monFrames), len(got[big].data))
	m.stop()
}

// streams reassembles the TCP payload of each connection direction, keyed
// "src:port>dst:port", by sequence number; retransmissions overlap harmlessly.
// tcpStream is one reassembled direction of a connection: data up to the
// first hole, and end, the offset just past the highest byte seen.
type tcpStream struct {
	data []byte
	end  int
}

func streams(pkts []l3) map[string]tcpStream {
	type seg struct {
		seq  uint32
		data []byte
	}
	segs := map[string][]seg{}
	isn := map[string]uint32{}
	for _, p := range pkts {
		if p.proto != 6 || len(p.l4) < 20 {
			continue
		}
		h := p.l4
		off := int(h[12]>>4) * 4
		if off > len(h) {
			continue
		}
		k := p.src.String() + ":" + itoa(int(binary.BigEndian.Uint16(h[0:]))) + ">" + p.dst.String() + ":" + itoa(int(binary.BigEndian.Uint16(h[2:])))
		seq := binary.BigEndian.Uint32(h[4:])
		if h[13]&0x02 != 0 { // SYN
			isn[k] = seq + 1
			continue
		}
		if len(h) > off {
			segs[k] = append(segs[k], seg{seq, h[off:]})
		}
	}
	out := map[string]tcpStream{}
	for k, ss := range segs {
		base, ok := isn[k]
		if !ok {
			continue
		}
		sort.Slice(ss, func(i, j int) bool { return ss[i].seq-base < ss[j].seq-base })
		var b []byte
		end := 0
		for _, s := range ss {
			end = max(end, int(s.seq-base)+len(s.data))
		}
		for _, s := range ss {
			start := int(s.seq - base)
			if start > len(b) {
				break // a hole
			}
			if end := start + len(s.data); end > len(b) {
				b = append(b, s.data[len(b)-start:]...)
			}
		}
		out[k] = tcpStream{data: b, end: end}
	}
	return out
}

func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

func itoa(i int) string { return strconv.Itoa(i) }
