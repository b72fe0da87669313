package mirror

import (
	"bytes"
	"context"
	"encoding/binary"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfmirror/nfmirror/internal/nstest"
	"github.com/nfmirror/nfmirror/internal/pkt"
	"github.com/nfmirror/nfmirror/internal/pkt/pkttest"
)

// TestSegmentKernelSuperPackets takes real TSO super-packets, as the kernel
// hands them to taps before segmentation (with partial checksums), from an
// iperf3 flow between two namespaces, and checks that splitting them for a
// 1500-byte port gives MTU-sized segments with good checksums carrying the
// same bytes.
func TestSegmentKernelSuperPackets(t *testing.T) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Skip("iperf3 not installed")
	}
	a, b := nstest.New(t), nstest.New(t)
	a.IP(t, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b.Name)
	a.IP(t, "addr", "add", "198.18.2.1/24", "dev", "va")
	b.IP(t, "addr", "add", "198.18.2.2/24", "dev", "vb")
	a.IP(t, "link", "set", "va", "up")
	b.IP(t, "link", "set", "vb", "up")
	fd := captureSocket(t, a, "va")
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", b.Name, "iperf3", "-s", "-1", "-B", "198.18.2.2")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Wait()
	time.Sleep(300 * time.Millisecond)
	if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", a.Name, "iperf3", "-c", "198.18.2.2", "-n", "2M").CombinedOutput(); err != nil {
		t.Fatalf("iperf3 client: %v: %s", err, out)
	}

	var s pkt.Segmenter
	buf := make([]byte, 70000)
	supers, partial := 0, 0
	for range 5000 {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			break
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || ll.Pkttype != unix.PACKET_OUTGOING || n <= 1514 || binary.BigEndian.Uint16(buf[12:]) != 0x0800 {
			continue
		}
		supers++
		pk := append([]byte(nil), buf[14:n]...)
		frames, err := s.Split(pk, 1500, false)
		if err != nil {
			t.Fatalf("split a %d-byte super-packet: %v", len(pk), err)
		}
		ihl := int(pk[0]&0xf) * 4
		thl := int(pk[ihl+12]>>4) * 4
		if pkttest.NaiveSum(pkttest.Pseudo(pk, pkt.ProtoTCP, len(pk)-ihl), pk[ihl:]) != 0xffff {
			partial++
		}
		var stream []byte
		for i, f := range frames {
			p := f
			if len(p) > 1500 || pkttest.NaiveSum(p[:ihl]) != 0xffff || pkttest.NaiveSum(pkttest.Pseudo(p, pkt.ProtoTCP, len(p)-ihl), p[ihl:]) != 0xffff {
				t.Fatalf("super-packet %d, segment %d: %d bytes or bad checksum", supers, i, len(p))
			}
			stream = append(stream, p[ihl+thl:]...)
		}
		if !bytes.Equal(stream, pk[ihl+thl:]) {
			t.Fatalf("super-packet %d: segments carry other bytes", supers)
		}
	}
	if supers == 0 {
		t.Fatal("no TSO super-packet seen on the veth: nothing was tested")
	}
	t.Logf("%d kernel super-packets (%d with a partial checksum) split and verified", supers, partial)
}
