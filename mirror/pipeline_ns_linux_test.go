package mirror

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"

	"github.com/nfmirror/nfmirror/internal/nstest"
)

// These tests need root and create network namespaces: run them under
// "flock /tmp/nfmirror-netns.lock go test ./mirror".
//
// Lab: namespace A (va, 198.18.0.1/24) -- veth -- namespace R (vr,
// 198.18.0.2/24). A pings R; R holds the rules and the pipeline.

type lab struct {
	a, r *nstest.NS
}

func newLab(t testing.TB) *lab {
	t.Helper()
	a := nstest.New(t)
	r := nstest.New(t)
	a.MustRun(t, "ip", "link", "add", "va", "type", "veth", "peer", "name", "vr", "netns", r.Name)
	a.MustRun(t, "ip", "addr", "add", "198.18.0.1/24", "dev", "va")
	a.MustRun(t, "ip", "link", "set", "va", "up")
	r.MustRun(t, "ip", "addr", "add", "198.18.0.2/24", "dev", "vr")
	r.MustRun(t, "ip", "link", "set", "vr", "up")
	return &lab{a: a, r: r}
}

// nft loads a ruleset into R with nft -f.
func (l *lab) nft(t testing.TB, ruleset string) {
	t.Helper()
	if _, errOut, err := l.r.Run(ruleset, "nft", "-f", "-"); err != nil {
		t.Fatalf("nft -f in %s: %v: %s", l.r.Name, err, errOut)
	}
}

// addNFQUEUE installs, through nft_compat, an inet prerouting rule sending
// ICMP echo requests to the xt NFQUEUE target with --queue-bypass: nft's own
// "queue" statement is not in this kernel.
func (l *lab) addNFQUEUE(t *testing.T, num uint16) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(l.r.FD()))
	if err != nil {
		t.Fatal(err)
	}
	tbl := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "nfqtest"})
	ch := c.AddChain(&nftables.Chain{
		Name: "pre", Table: tbl, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityFilter,
	})
	info := make([]byte, 8)
	binary.NativeEndian.PutUint16(info[0:], num)
	binary.NativeEndian.PutUint16(info[2:], 1)
	binary.NativeEndian.PutUint16(info[4:], 1) // NFQ_FLAG_BYPASS
	u := xt.Unknown(info)
	c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{1}}, // ICMP
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{8}}, // echo request
		&expr.Target{Name: "NFQUEUE", Rev: 3, Info: &u},
	}})
	if err := c.Flush(); err != nil {
		t.Fatalf("install NFQUEUE rule: %v", err)
	}
}

// ping sends count echo requests of size bytes of data from A to R and
// returns how many replies came back.
func (l *lab) ping(t *testing.T, count int, interval string, size int) int {
	t.Helper()
	out, _, _ := l.a.Run("", "ping", "-n", "-q", "-c", fmt.Sprint(count), "-i", interval, "-s", fmt.Sprint(size), "-W", "1", "-w", "10", "198.18.0.2")
	var sent, recv int
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "packets transmitted") {
			fmt.Sscanf(line, "%d packets transmitted, %d received", &sent, &recv)
		}
	}
	if sent != count {
		t.Fatalf("ping sent %d, want %d: %s", sent, count, out)
	}
	return recv
}

// capture runs tcpdump on R's vr until stop is called and returns the
// frames it saw, in order.
func (l *lab) capture(t *testing.T, filter string) (stop func() [][]byte) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "cap.pcap")
	cmd := exec.Command("ip", "netns", "exec", l.r.Name, "tcpdump", "-i", "vr", "-n", "-U", "--immediate-mode", "-B", "8192", "-w", file, filter)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start tcpdump: %v", err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				close(ready)
				break
			}
		}
		for sc.Scan() {
		}
	}()
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("tcpdump did not start")
	}
	done := false
	t.Cleanup(func() {
		if !done {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return func() [][]byte {
		time.Sleep(1500 * time.Millisecond) // tcpdump's ring holds back the last packets
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		done = true
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("read capture: %v", err)
		}
		return readPcap(t, b)
	}
}

// readPcap returns the frames of a little-endian microsecond pcap file.
func readPcap(t *testing.T, b []byte) [][]byte {
	t.Helper()
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 {
		t.Fatalf("not a little-endian pcap file (%d bytes)", len(b))
	}
	var frames [][]byte
	for b = b[24:]; len(b) >= 16; {
		n := int(binary.LittleEndian.Uint32(b[8:12]))
		if 16+n > len(b) {
			t.Fatal("truncated pcap record")
		}
		frames = append(frames, b[16:16+n])
		b = b[16+n:]
	}
	return frames
}

// startPipeline runs a pipeline in R and waits until its sources are bound.
func startPipeline(t testing.TB, l *lab, cfg Config) (p *Pipeline, stop func() error) {
	t.Helper()
	cfg.NetNS = l.r.FD()
	p, err := NewPipeline(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	select {
	case <-p.Ready():
	case err := <-errc:
		cancel()
		t.Fatalf("pipeline: %v", err)
	case <-time.After(5 * time.Second):
		cancel()
		t.Fatal("pipeline not ready within 5s")
	}
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-errc:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("pipeline did not stop within 5s of cancel")
			return nil
		}
	}
	t.Cleanup(func() { _ = stop() })
	return p, stop
}

const labRuleset = `
table inet mtest {
	chain pre {
		type filter hook prerouting priority 0;
		ip saddr 198.18.0.1 icmp type echo-request log group 11 prefix "nfm:0"
	}
}
table netdev mtest {
	chain in {
		type filter hook ingress device "vr" priority 0;
		icmp type echo-request log group 12 prefix "nfm:1"
	}
	chain out {
		type filter hook egress device "vr" priority 0;
		icmp type echo-reply log group 13 prefix "nfm:2"
	}
}
`

func labChannels() ([]Channel, []Rule) {
	chans := []Channel{
		{Kind: NFLOG, Num: 11, Dest: "m0", RuleIDs: []int{0}},
		{Kind: NFLOG, Num: 12, Netdev: true, Dest: "m0", RuleIDs: []int{1}},
		{Kind: NFLOG, Num: 13, Netdev: true, Dest: "m0", RuleIDs: []int{2}},
		{Kind: NFQUEUE, Num: 14, Dest: "m0", RuleIDs: []int{3}},
	}
	var rules []Rule
	for i := range 4 {
		rules = append(rules, Rule{ID: i})
	}
	return chans, rules
}

func byRule(pkts []Packet) map[int][][]byte {
	m := make(map[int][][]byte)
	for _, p := range pkts {
		m[p.RuleID] = append(m[p.RuleID], p.Data)
	}
	return m
}

func TestPipelineNetns(t *testing.T) {
	for _, reader := range []struct {
		name string
		r    NFLOGReader
		q    NFQUEUEReader
	}{{"go-nflog+go-nfqueue", ReaderGoNFLOG, QueueReaderGoNFQueue}, {"builtin", ReaderBuiltin, QueueReaderBuiltin}} {
		t.Run(reader.name, func(t *testing.T) {
			l := newLab(t)
			l.nft(t, labRuleset)
			l.addNFQUEUE(t, 14)
			chans, rules := labChannels()
			sink := &recordSink{}
			p, stop := startPipeline(t, l, Config{
				Channels: chans, Rules: rules, Sinks: map[string]Sink{"m0": sink}, InetReader: reader.r, QueueReader: reader.q,
			})
			endCapture := l.capture(t, "icmp")
			start := time.Now()
			const count, size = 20, 100
			if got := l.ping(t, count, "0.01", size); got != count {
				t.Fatalf("%d of %d pings answered: the pipeline must not hold traffic", got, count)
			}
			frames := endCapture()
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			// Every copy says where and when the kernel took it.
			vr, err := l.r.Handle(t).LinkByName("vr")
			if err != nil {
				t.Fatal(err)
			}
			wantHook := []Hook{HookPrerouting, HookIngress, HookEgress, HookPrerouting}
			for _, pkt := range sink.packets() {
				if pkt.RuleID < 0 || pkt.Hook != wantHook[pkt.RuleID] || pkt.Dev != vr.Attrs().Index ||
					pkt.Time.Before(start.Add(-time.Second)) || pkt.Time.After(time.Now()) {
					t.Errorf("rule %d copy: hook %v dev %d time %v, want %v on %d (vr) within the test", pkt.RuleID, pkt.Hook, pkt.Dev, pkt.Time, wantHook[max(pkt.RuleID, 0)], vr.Attrs().Index)
					break
				}
			}
			var requests, replies [][]byte
			for _, f := range frames {
				if len(f) > 34 && f[34] == 8 {
					requests = append(requests, f)
				} else if len(f) > 34 && f[34] == 0 {
					replies = append(replies, f)
				}
			}
			if len(requests) != count || len(replies) != count {
				t.Fatalf("capture holds %d requests and %d replies, want %d each", len(requests), len(replies), count)
			}
			got := byRule(sink.packets())
			check := func(rule int, what string, want [][]byte) {
				t.Helper()
				if len(got[rule]) != len(want) {
					t.Errorf("rule %d (%s): %d copies, want %d", rule, what, len(got[rule]), len(want))
					return
				}
				for i := range want {
					if !bytes.Equal(got[rule][i], want[i]) {
						t.Errorf("rule %d (%s) copy %d differs from the wire:\n got %x\nwant %x", rule, what, i, got[rule][i], want[i])
						return
					}
				}
			}
			var reqIP [][]byte
			for _, f := range requests {
				reqIP = append(reqIP, f[14:])
			}
			check(0, "inet prerouting nflog", reqIP)
			check(1, "netdev ingress nflog frames", requests)
			check(2, "netdev egress nflog frames", replies)
			check(3, "inet prerouting nfqueue", reqIP)
			s := p.Counters().Snapshot()
			for _, r := range s.Rules {
				if r.ID >= 0 && (r.Received != count || r.Mirrored != count) {
					t.Errorf("rule %d counters %+v, want %d received and mirrored", r.ID, r, count)
				}
			}
			for _, c := range s.Channels {
				if c.Received != count || c.SeqGaps != 0 || c.QueueFull != 0 || c.ParseErrors != 0 {
					t.Errorf("channel %s %d counters %+v", c.Kind, c.Num, c)
				}
			}
			if d := s.Destinations[0]; d.Packets != 4*count {
				t.Errorf("destination %+v, want %d packets", d, 4*count)
			}
		})
	}
}

// TestPipelineNetnsOneGroupKeepsOrder: copies of every hook, inet and
// netdev, with different snaplens, through one NFLOG group (as the compiler
// plans for one destination) reach the sink in the order the kernel made
// them: for each ping, the request at ingress (a frame), at prerouting (an
// IP packet, cut to 64 bytes), then the reply at postrouting and at egress.
func TestPipelineNetnsOneGroupKeepsOrder(t *testing.T) {
	l := newLab(t)
	l.nft(t, `
table inet mtest {
	chain pre {
		type filter hook prerouting priority 0;
		icmp type echo-request log group 31 snaplen 64 prefix "nfm:1"
	}
	chain post {
		type filter hook postrouting priority 0;
		icmp type echo-reply log group 31 prefix "nfm:2"
	}
}
table netdev mtest {
	chain in {
		type filter hook ingress device "vr" priority 0;
		icmp type echo-request log group 31 prefix "nfm:0"
	}
	chain out {
		type filter hook egress device "vr" priority 0;
		icmp type echo-reply log group 31 prefix "nfm:3"
	}
}
`)
	chans := []Channel{{Kind: NFLOG, Num: 31, Netdev: true, Dest: "m0", RuleIDs: []int{0, 1, 2, 3}}}
	rules := []Rule{{ID: 0}, {ID: 1}, {ID: 2}, {ID: 3}}
	sink := &recordSink{}
	_, stop := startPipeline(t, l, Config{Channels: chans, Rules: rules, Sinks: map[string]Sink{"m0": sink}})
	const count, size = 30, 200
	if got := l.ping(t, count, "0.01", size); got != count {
		t.Fatalf("%d of %d pings answered", got, count)
	}
	waitFor(t, func() bool { return len(sink.packets()) == 4*count })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	type want struct {
		rule, n int
		l2      bool
	}
	cycle := []want{{0, 14 + 28 + size, true}, {1, 64, false}, {2, 28 + size, false}, {3, 14 + 28 + size, true}}
	for i, p := range sink.packets() {
		w := cycle[i%4]
		if p.RuleID != w.rule || len(p.Data) != w.n || p.L2 != w.l2 {
			t.Fatalf("copy %d: rule %d, %d bytes, L2 %v; want rule %d, %d bytes, L2 %v (the kernel's order)", i, p.RuleID, len(p.Data), p.L2, w.rule, w.n, w.l2)
		}
	}
}

// TestPipelineNetnsStalledSink checks that a sink that stops sending makes
// the queue fill and drops counted, while the reader keeps reading every
// copy the kernel makes.
func TestPipelineNetnsStalledSink(t *testing.T) {
	l := newLab(t)
	l.nft(t, labRuleset)
	chans, rules := labChannels()
	chans = chans[:1]
	const queueLen, count = 8, 200
	sink := &recordSink{block: make(chan struct{}), entered: make(chan struct{}, 1)}
	t.Cleanup(func() { close(sink.block) }) // runs after the pipeline's stop: Send returns then
	p, stop := startPipeline(t, l, Config{Channels: chans, Rules: rules[:1], Sinks: map[string]Sink{"m0": sink}, QueueLen: queueLen, InetReader: ReaderBuiltin})
	if got := l.ping(t, count, "0.002", 56); got != count {
		t.Fatalf("%d of %d pings answered", got, count)
	}
	waitFor(t, func() bool { return p.Counters().Snapshot().Channels[0].Received == count })
	s := p.Counters().Snapshot()
	r := s.Rules[0]
	if r.Received != count || r.Dropped.QueueFull != count-queueLen || r.Mirrored != 0 {
		t.Errorf("rule counters %+v, want %d received, %d dropped for a full queue", r, count, count-queueLen)
	}
	if c := s.Channels[0]; c.SeqGaps != 0 || c.QueueFull != count-queueLen {
		t.Errorf("channel counters %+v", c)
	}
	go func() { time.Sleep(100 * time.Millisecond); sink.block <- struct{}{} }() // let the one Send in progress return
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestPipelineNetnsFailOpen checks that lossless channels never hold
// traffic: with no consumer bound to the queue, packets pass.
func TestPipelineNetnsFailOpen(t *testing.T) {
	l := newLab(t)
	l.addNFQUEUE(t, 14)
	if got := l.ping(t, 10, "0.01", 56); got != 10 {
		t.Fatalf("%d of 10 pings answered through an NFQUEUE rule with no consumer", got)
	}
}

// TestPipelineNetnsNoLeaks checks that Run leaves no goroutine and no file
// descriptor behind, for every source kind.
func TestPipelineNetnsNoLeaks(t *testing.T) {
	l := newLab(t)
	l.nft(t, labRuleset)
	l.addNFQUEUE(t, 14)
	chans, rules := labChannels()
	// Warm up: one round opens whatever the runtime and libraries keep.
	for round := range 3 {
		before := runtime.NumGoroutine()
		fdsBefore := countFDs(t)
		sink := &recordSink{}
		reader, qreader := ReaderGoNFLOG, QueueReaderGoNFQueue
		if round%2 == 1 {
			reader, qreader = ReaderBuiltin, QueueReaderBuiltin
		}
		_, stop := startPipeline(t, l, Config{Channels: chans, Rules: rules, Sinks: map[string]Sink{"m0": sink}, InetReader: reader, QueueReader: qreader})
		l.ping(t, 5, "0.01", 56)
		if err := stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if round == 0 {
			continue
		}
		waitFor(t, func() bool { return runtime.NumGoroutine() <= before && countFDs(t) <= fdsBefore })
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// BenchmarkPipelineNetnsReaderCost measures the process CPU each NFLOG
// reader spends per copy under a ping flood in a namespace (root):
//
//	go test ./mirror -run '^$' -bench ReaderCost -benchtime 1x
func BenchmarkPipelineNetnsReaderCost(b *testing.B) {
	for _, reader := range []struct {
		name string
		r    NFLOGReader
	}{{"go-nflog", ReaderGoNFLOG}, {"builtin", ReaderBuiltin}} {
		b.Run(reader.name, func(b *testing.B) {
			l := newLab(b)
			l.nft(b, labRuleset)
			chans, rules := labChannels()
			var copies uint64
			var cpu time.Duration
			for b.Loop() {
				sink := &countSink{}
				p, stop := startPipeline(b, l, Config{Channels: chans[:1], Rules: rules[:1], Sinks: map[string]Sink{"m0": sink}, InetReader: reader.r})
				var before, after syscall.Rusage
				syscall.Getrusage(syscall.RUSAGE_SELF, &before)
				l.a.Run("", "ping", "-n", "-q", "-f", "-c", "20000", "-w", "30", "-s", "1000", "198.18.0.2")
				time.Sleep(100 * time.Millisecond)
				syscall.Getrusage(syscall.RUSAGE_SELF, &after)
				if err := stop(); err != nil {
					b.Fatal(err)
				}
				copies += p.Counters().Snapshot().Channels[0].Received
				cpu += time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
			}
			b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(max(copies, 1)), "cpu-µs/copy")
		})
	}
}

// TestPipelineNetnsOpenError checks that Run reports a channel it cannot
// bind (a queue another process holds) and closes what it had opened.
func TestPipelineNetnsOpenError(t *testing.T) {
	l := newLab(t)
	chans, rules := labChannels()
	_, stop := startPipeline(t, l, Config{Channels: chans[3:], Rules: rules, Sinks: map[string]Sink{"m0": &recordSink{}}})
	before := runtime.NumGoroutine()
	fdsBefore := countFDs(t)
	p, err := NewPipeline(Config{Channels: chans, Rules: rules, Sinks: map[string]Sink{"m0": &recordSink{}}, NetNS: l.r.FD()})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "nfqueue 14") {
		t.Fatalf("Run with nfqueue 14 taken = %v, want an error naming it", err)
	}
	select {
	case <-p.Ready():
		t.Error("Ready closed although a source failed to open")
	default:
	}
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before && countFDs(t) <= fdsBefore })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestPipelineNetnsSnaplen checks that a channel's snaplen reaches the
// kernel (copies are cut) and that truncated copies carry the wire length.
func TestPipelineNetnsSnaplen(t *testing.T) {
	const snap, count, size = 64, 5, 1000
	const ipLen = 20 + 8 + size
	l := newLab(t)
	l.nft(t, `
table inet mtest {
	chain pre {
		type filter hook prerouting priority 0;
		ip saddr 198.18.0.1 icmp type echo-request log group 21 snaplen 64 prefix "nfm:0"
	}
}
table netdev mtest {
	chain in {
		type filter hook ingress device "vr" priority 0;
		icmp type echo-request log group 22 snaplen 64 prefix "nfm:1"
	}
}
`)
	chans := []Channel{
		{Kind: NFLOG, Num: 21, Dest: "m0", RuleIDs: []int{0}},
		{Kind: NFLOG, Num: 22, Netdev: true, Dest: "m0", RuleIDs: []int{1}},
	}
	rules := []Rule{{ID: 0}, {ID: 1}}
	for _, reader := range []NFLOGReader{ReaderBuiltin, ReaderGoNFLOG} {
		sink := &recordSink{}
		p, stop := startPipeline(t, l, Config{Channels: chans, Rules: rules, Sinks: map[string]Sink{"m0": sink}, InetReader: reader})
		if got := l.ping(t, count, "0.01", size); got != count {
			t.Fatalf("%d of %d pings answered", got, count)
		}
		waitFor(t, func() bool { return len(sink.packets()) == 2*count })
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		for _, pkt := range sink.packets() {
			wantLen, wantOrig := snap, ipLen
			if pkt.RuleID == 1 {
				wantLen, wantOrig = 14+snap, 14+ipLen
			}
			if len(pkt.Data) != wantLen || pkt.OrigLen != wantOrig {
				t.Errorf("reader %d rule %d: copy of %d bytes, orig %d; want %d, %d", reader, pkt.RuleID, len(pkt.Data), pkt.OrigLen, wantLen, wantOrig)
			}
		}
		for _, r := range p.Counters().Snapshot().Rules {
			if r.Truncated != count {
				t.Errorf("reader %d rule %d: %d truncated, want %d", reader, r.ID, r.Truncated, count)
			}
		}
	}
}
