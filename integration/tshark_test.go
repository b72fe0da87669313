package integration

import (
	"bufio"
	"encoding/hex"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// tsharkPacket is one packet of a capture as tshark's dissectors see it.
type tsharkPacket struct {
	frame   int
	stream  int // TCP stream index, -1 for a packet that is not TCP
	src     string
	srcPort int
	tcpLen  int
	syn     bool
	ack     bool
	// TCP analysis: what tshark concludes about the connection.
	retransmission, lostSegment, ackLostSegment, outOfOrder bool
	// Checksum status with validation on: "0" bad, "1" good, "2" unverified
	// (a truncated segment), "" not present.
	tcpChecksum, ipChecksum string
	wireLen, capLen         int
	// truncated: the frame holds less than its IP header says (a snaplen
	// cut it before it went on the wire).
	truncated bool
}

// tsharkFields are the fields tsharkPackets reads, in order.
var tsharkFields = []string{
	"frame.number", "tcp.stream", "ip.src", "ipv6.src", "tcp.srcport", "tcp.len", "tcp.flags.syn", "tcp.flags.ack",
	"tcp.analysis.retransmission", "tcp.analysis.lost_segment", "tcp.analysis.ack_lost_segment", "tcp.analysis.out_of_order",
	"tcp.checksum.status", "ip.checksum.status", "frame.len", "frame.cap_len", "ip.len", "ipv6.plen",
}

// tsharkPackets dissects a pcap file with tshark, TCP and IPv4 checksums
// validated, and returns every packet.
func tsharkPackets(t *testing.T, file string) []tsharkPacket {
	t.Helper()
	args := []string{"-n", "-r", file, "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE",
		"-T", "fields", "-E", "separator=/t", "-E", "occurrence=f"}
	for _, f := range tsharkFields {
		args = append(args, "-e", f)
	}
	out, err := exec.Command("tshark", args...).Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v", file, err)
	}
	var pkts []tsharkPacket
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != len(tsharkFields) {
			continue
		}
		num := func(s string) int {
			n, err := strconv.Atoi(s)
			if err != nil {
				return -1
			}
			return n
		}
		p := tsharkPacket{
			frame: num(f[0]), stream: num(f[1]), src: f[2] + f[3], srcPort: num(f[4]), tcpLen: num(f[5]),
			syn: f[6] == "1", ack: f[7] == "1",
			retransmission: f[8] != "", lostSegment: f[9] != "", ackLostSegment: f[10] != "", outOfOrder: f[11] != "",
			tcpChecksum: f[12], ipChecksum: f[13], wireLen: num(f[14]), capLen: num(f[15]),
		}
		switch {
		case f[16] != "":
			p.truncated = 14+num(f[16]) > p.capLen
		case f[17] != "":
			p.truncated = 14+40+num(f[17]) > p.capLen
		}
		pkts = append(pkts, p)
	}
	return pkts
}

// tcpAnomalies counts tshark's TCP analysis findings in wire segments.
//
// Gaps (a segment not captured, an ACK for data not seen) count once each.
// Data behind the highest sequence seen counts once per wire segment it
// spans: a router's own capture shows a GRO/TSO super-packet as one packet,
// a mirror port the wire segments it became, and tshark calls the same
// late data a retransmission or out-of-order depending on timing.
type tcpAnomalies struct {
	LostSegment, AckLostSegment int
	// Behind counts wire segments tshark flagged as retransmitted or out
	// of order.
	Behind int
}

// wireSegments is how many segments of a 1500-byte link n bytes of TCP
// payload take.
func wireSegments(n int) int {
	const mss = 1448
	return max(1, (n+mss-1)/mss)
}

// anomalies counts the findings in the TCP streams keep selects.
func anomalies(pkts []tsharkPacket, keep func(stream int) bool) tcpAnomalies {
	var a tcpAnomalies
	for _, p := range pkts {
		if p.stream < 0 || !keep(p.stream) {
			continue
		}
		a.LostSegment += b2i(p.lostSegment)
		a.AckLostSegment += b2i(p.ackLostSegment)
		if p.retransmission || p.outOfOrder {
			a.Behind += wireSegments(p.tcpLen)
		}
	}
	return a
}

// within reports whether a shows no more of any finding than ref.
func (a tcpAnomalies) within(ref tcpAnomalies) bool {
	return a.LostSegment <= ref.LostSegment && a.AckLostSegment <= ref.AckLostSegment && a.Behind <= ref.Behind
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// tsharkFollow returns the payload of TCP stream n of a capture as tshark's
// "follow,tcp,raw" reassembles it: what the client (the side that sent the
// first packet) sent, and what the server sent.
func tsharkFollow(t *testing.T, file string, n int) (client, server []byte) {
	t.Helper()
	out, err := exec.Command("tshark", "-n", "-r", file, "-q", "-z", "follow,tcp,raw,"+strconv.Itoa(n)).Output()
	if err != nil {
		t.Fatalf("tshark follow stream %d of %s: %v", n, file, err)
	}
	body := false
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "Node 1:"):
			body = true
			continue
		case strings.HasPrefix(line, "====="):
			body = false
			continue
		case !body || strings.TrimSpace(line) == "":
			continue
		}
		b, err := hex.DecodeString(strings.TrimSpace(line))
		if err != nil {
			t.Fatalf("tshark follow output: %q: %v", line, err)
		}
		if strings.HasPrefix(line, "\t") {
			server = append(server, b...)
		} else {
			client = append(client, b...)
		}
	}
	return client, server
}
