package encap

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfmirror/nfmirror/internal/pkt/pkttest"
)

// TestTsharkDecodes hands tshark (an independent dissector) one capture per
// format and checks what it reads: the VXLAN VNI and port with the outer
// UDP checksum verified, GRE's protocol 0x6558, the ERSPAN II session, VLAN,
// COS and T bit, the ERSPAN III direction, hardware id and timestamp, the
// outer fragments reassembled, and in every case the inner TCP packet with
// its addresses, ports and a valid checksum.
func TestTsharkDecodes(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark not installed")
	}
	when := time.Unix(1700000000, 500_000_000)
	ip4 := tcpIP("198.18.50.1", "198.18.60.2", 40000, 443, 200)
	ip6 := tcpIP("2001:db8:50::1", "2001:db8:60::2", 40001, 80, 200)
	bigIP := tcpIP("198.18.50.1", "198.18.60.2", 40002, 443, 1460)
	lead4, lead6 := ethHeader(macB, macA, 0x0800, 0), ethHeader(macB, macA, 0x86dd, 0)
	tagged := append(ethHeader(macB, macA, 0x0800, 6<<13|300), ip4...)
	fields := []string{"ip.src", "ipv6.src", "tcp.srcport", "tcp.checksum.status", "vxlan.vni", "udp.dstport", "udp.checksum.status",
		"gre.proto", "erspan.version", "erspan.spanid", "erspan.vlan", "erspan.cos", "erspan.truncated", "erspan.direction", "erspan.hw", "erspan.timestamp"}
	tests := []struct {
		name  string
		cfg   Config
		lead  []byte
		frame []byte
		meta  Meta
		mtu   int
		want  map[string]string // field -> value tshark must print for the last packet
	}{
		{
			name: "vxlan v4", cfg: Config{Format: VXLAN, Src: src4, Dst: dst4, VNI: 42}, lead: lead4, frame: ip4, mtu: 1500,
			want: map[string]string{"ip.src": "198.18.1.1,198.18.50.1", "tcp.srcport": "40000", "tcp.checksum.status": "1", "vxlan.vni": "42", "udp.dstport": "4789"},
		},
		{
			name: "vxlan v6, checksum verified", cfg: Config{Format: VXLAN, Src: src6, Dst: dst6, VNI: 7, Port: 4790}, lead: lead6, frame: ip6, mtu: 1500,
			want: map[string]string{"ipv6.src": "2001:db8:1::1,2001:db8:50::1", "tcp.srcport": "40001", "tcp.checksum.status": "1", "vxlan.vni": "7", "udp.dstport": "4790", "udp.checksum.status": "1"},
		},
		{
			name: "vxlan v4 fragmented", cfg: Config{Format: VXLAN, Src: src4, Dst: dst4, VNI: 42}, lead: lead4, frame: bigIP, mtu: 1500,
			want: map[string]string{"tcp.srcport": "40002", "tcp.checksum.status": "1", "vxlan.vni": "42"},
		},
		{
			name: "vxlan v6 fragmented, checksum verified", cfg: Config{Format: VXLAN, Src: src6, Dst: dst6, VNI: 9}, lead: lead4, frame: bigIP, mtu: 1280,
			want: map[string]string{"tcp.srcport": "40002", "tcp.checksum.status": "1", "vxlan.vni": "9", "udp.checksum.status": "1"},
		},
		{
			name: "gre v4", cfg: Config{Format: GRE, Src: src4, Dst: dst4}, lead: lead4, frame: ip4, mtu: 1500,
			want: map[string]string{"gre.proto": "0x6558", "ip.src": "198.18.1.1,198.18.50.1", "tcp.checksum.status": "1"},
		},
		{
			name: "gre v6 fragmented", cfg: Config{Format: GRE, Src: src6, Dst: dst6}, lead: lead4, frame: bigIP, mtu: 1280,
			want: map[string]string{"gre.proto": "0x6558", "tcp.srcport": "40002", "tcp.checksum.status": "1"},
		},
		{
			name: "erspan II, tagged", cfg: Config{Format: ERSPAN2, Src: src4, Dst: dst4, Session: 7}, frame: tagged, mtu: 1500,
			want: map[string]string{"gre.proto": "0x88be", "erspan.version": "1", "erspan.spanid": "7", "erspan.vlan": "300", "erspan.cos": "6", "erspan.truncated": "0", "tcp.srcport": "40000", "tcp.checksum.status": "1"},
		},
		{
			name: "erspan II, truncated to fit", cfg: Config{Format: ERSPAN2, Src: src6, Dst: dst6, Session: 1000}, lead: lead4, frame: bigIP, mtu: 1280,
			want: map[string]string{"erspan.spanid": "1000", "erspan.truncated": "1", "tcp.srcport": "40002"},
		},
		{
			name: "erspan III, ingress", cfg: Config{Format: ERSPAN3, Src: src4, Dst: dst4, Session: 12, HardwareID: 5}, lead: lead6, frame: ip6, meta: Meta{Time: when}, mtu: 1500,
			want: map[string]string{"gre.proto": "0x22eb", "erspan.version": "2", "erspan.spanid": "12", "erspan.direction": "0", "erspan.hw": "5",
				"erspan.timestamp": "519447432", "tcp.srcport": "40001", "tcp.checksum.status": "1"},
		},
		{
			name: "erspan III, egress", cfg: Config{Format: ERSPAN3, Src: src6, Dst: dst6, Session: 12, HardwareID: 5}, lead: lead4, frame: ip4, meta: Meta{Egress: true}, mtu: 1500,
			want: map[string]string{"erspan.version": "2", "erspan.direction": "1", "tcp.srcport": "40000", "tcp.checksum.status": "1"},
		},
	}
	if want := uint32(when.UnixNano() / 100000); want != 519447432 {
		t.Fatalf("the test's timestamp is %d", want)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustNew(t, tt.cfg)
			pkts, _, err := e.Encap(tt.lead, tt.frame, tt.meta, tt.mtu)
			if err != nil {
				t.Fatal(err)
			}
			var raw [][]byte
			for _, p := range pkts {
				raw = append(raw, join(p))
			}
			path := filepath.Join(t.TempDir(), "encap.pcap")
			pkttest.WritePcap(t, path, pkttest.LinkRaw, raw)
			args := []string{"-r", path, "-n", "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
				"-d", "udp.port==4790,vxlan", "-T", "fields", "-E", "separator=|"}
			for _, f := range fields {
				args = append(args, "-e", f)
			}
			var stderr strings.Builder
			cmd := exec.Command("tshark", args...)
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("tshark: %v: %s", err, stderr.String())
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != len(raw) {
				t.Fatalf("tshark read %d packets, want %d:\n%s", len(lines), len(raw), out)
			}
			got := strings.Split(lines[len(lines)-1], "|")
			for i, f := range fields {
				if w, ok := tt.want[f]; ok && got[i] != w {
					t.Errorf("%s = %q, want %q (tshark: %s)", f, got[i], w, lines[len(lines)-1])
				}
			}
		})
	}
}
