package mirror

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"

	"github.com/nfmirror/nfmirror/internal/pkt"
	"github.com/nfmirror/nfmirror/internal/pkt/pkttest"
)

// fileCopies makes n copies from three sources in turn: IP copies from
// prerouting and postrouting, Ethernet frames from netdev ingress of
// device 7. Copy i carries "nfm-file-i" and the time base+i ms.
func fileCopies(n int, base time.Time) []*Packet {
	var pkts []*Packet
	for i := range n {
		ip := sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, fmt.Sprintf("nfm-file-%d-%s", i, strings.Repeat("x", 900)))
		p := &Packet{Data: ip, Time: base.Add(time.Duration(i) * time.Millisecond), RuleID: -1}
		switch i % 3 {
		case 0:
			p.Hook = HookPrerouting
		case 1:
			p.Hook = HookPostrouting
		case 2:
			p.Hook, p.Dev, p.L2 = HookIngress, 7, true
			p.Data = append([]byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00}, ip...)
		}
		pkts = append(pkts, p)
	}
	return pkts
}

func newTestFile(t *testing.T, cfg FileConfig) *File {
	t.Helper()
	f, err := NewFile(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.SetDevNames(func(i int) string { return "eth" + strconv.Itoa(i-7) })
	t.Cleanup(func() { f.Close() })
	return f
}

func sendAll(t *testing.T, f *File, pkts []*Packet) {
	t.Helper()
	for len(pkts) > 0 {
		n := min(len(pkts), 64)
		errs := make([]error, n)
		f.SendBatch(pkts[:n], errs)
		for i, err := range errs {
			if err != nil {
				t.Fatalf("copy: %v", err)
			}
			_ = i
		}
		pkts = pkts[n:]
	}
}

// capFiles lists the capture files in dir, sorted.
func capFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.pcapng"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

// tsharkCount returns how many packets tshark reads in path, failing the
// test if tshark reports an error (a cut or corrupt file).
func tsharkCount(t *testing.T, path string) int {
	t.Helper()
	var stderr strings.Builder
	cmd := exec.Command("tshark", "-r", path, "-n", "-T", "fields", "-e", "frame.number")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || strings.Contains(stderr.String(), "appears to") || strings.Contains(stderr.String(), "cut short") {
		t.Fatalf("tshark -r %s: %v: %s", path, err, stderr.String())
	}
	return strings.Count(string(out), "\n")
}

// readNg reads a pcapng file with gopacket's reader: its packets' interface
// names and the last statistics block of each interface.
func readNg(t *testing.T, path string) (ifaces []string, pkts int, stats map[string]pcapgo.NgInterfaceStatistics) {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	stats = map[string]pcapgo.NgInterfaceStatistics{}
	var got []pcapgo.NgInterfaceStatistics
	var ids []int
	r, err := pcapgo.NewNgReader(fh, pcapgo.NgReaderOptions{WantMixedLinkType: true, StatisticsCallback: func(id int, s pcapgo.NgInterfaceStatistics) {
		ids, got = append(ids, id), append(got, s)
	}})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for {
		_, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		pkts++
	}
	for i := range r.NInterfaces() {
		intf, _ := r.Interface(i)
		ifaces = append(ifaces, intf.Name)
	}
	for i, id := range ids {
		intf, _ := r.Interface(id)
		stats[intf.Name] = got[i]
	}
	return ifaces, pkts, stats
}

// TestFileRotationBySize: 600 copies of about 1 KB from three sources into
// files rotated at 64 KB: every file is at most 64 KB, starts with the
// interface block of its first copy's source and has one per source, tshark
// reads each whole, and the packets of all files add up to the copies sent
// and counted; each file ends with nfmirror's counts per source.
func TestFileRotationBySize(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark not installed")
	}
	dir := t.TempDir()
	f := newTestFile(t, FileConfig{Path: filepath.Join(dir, "cap.pcapng"), RotateBytes: 64 << 10, BufferBytes: 16 << 10})
	drops := map[Source]uint64{{Hook: HookPrerouting}: 3, {Hook: HookPostrouting}: 0, {Hook: HookIngress, Dev: "eth0"}: 11}
	f.SetStats(func() []SourceStats {
		var out []SourceStats
		for s, d := range drops {
			out = append(out, SourceStats{Source: s, Received: 200 + d, Dropped: d})
		}
		return out
	})
	sendAll(t, f, fileCopies(600, time.Now()))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	files := capFiles(t, dir)
	st := f.Stats()
	if len(files) < 9 || st.Files != uint64(len(files)) || st.Rotations != uint64(len(files)-1) {
		t.Fatalf("%d files, stats %+v: want about 10 files, each counted", len(files), st)
	}
	total := 0
	for _, path := range files {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 64<<10 {
			t.Errorf("%s is %d bytes, past the 64 KiB rotation size", path, fi.Size())
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s has mode %o, want 600", path, m)
		}
		n := tsharkCount(t, path)
		ifaces, pkts, stats := readNg(t, path)
		if pkts != n {
			t.Errorf("%s: gopacket reads %d packets, tshark %d", path, pkts, n)
		}
		if strings.Join(ifaces, ",") == "" || len(ifaces) != 3 {
			t.Errorf("%s: interfaces %v, want the three sources once each", path, ifaces)
		}
		for s, d := range drops {
			if got, ok := stats[s.String()]; !ok || got.PacketsDropped != d || got.PacketsReceived != 200+d {
				t.Errorf("%s: statistics of %s %+v, want %d dropped of %d received", path, s, got, d, 200+d)
			}
		}
		total += n
	}
	if total != 600 || st.Packets != 600 || st.DiskFull != 0 || st.Errors != 0 {
		t.Errorf("%d packets in the files, stats %+v: want 600", total, st)
	}
}

// TestFileInterfacesAndTimes: tshark tells each copy's source by its
// interface (name, description, link type: raw IP or Ethernet), and shows
// the copy's own timestamp to the nanosecond and its length on the wire when
// a snaplen cut it; a partial checksum is completed.
func TestFileInterfacesAndTimes(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark not installed")
	}
	dir := t.TempDir()
	f := newTestFile(t, FileConfig{Path: filepath.Join(dir, "one.pcapng")})
	when := time.Unix(1700000000, 123456789)
	good := sinkUDPPacket("2001:db8:50::1", "2001:db8:60::2", 5, "nfm-partial")
	pkts := []*Packet{
		{Data: sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, "nfm-pre"), Hook: HookPrerouting, Time: when},
		{Data: append([]byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00}, sinkUDPPacket("198.18.50.1", "198.18.60.2", 7, "nfm-eg")...), Hook: HookEgress, Dev: 8, L2: true, Time: when.Add(time.Microsecond)},
		{Data: partial(good), Hook: HookOutput, Time: when.Add(2 * time.Microsecond)},
		{Data: pkttest.Packet(false, pkt.ProtoTCP, 3000)[:200], OrigLen: 3052, Hook: HookForward, Time: when.Add(3 * time.Microsecond)},
	}
	sendAll(t, f, pkts)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd := exec.Command("tshark", "-r", filepath.Join(dir, "one.pcapng"), "-n", "-o", "udp.check_checksum:TRUE", "-T", "fields", "-E", "separator=|",
		"-e", "frame.interface_name", "-e", "frame.interface_description", "-e", "frame.time_epoch", "-e", "frame.len", "-e", "frame.cap_len",
		"-e", "eth.src", "-e", "ip.src", "-e", "udp.checksum.status")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v: %s", err, stderr.String())
	}
	want := []string{
		"prerouting|nfmirror: copies taken at the inet prerouting hook (IPv4 and IPv6)|1700000000.123456789|35|35||198.18.50.1|1",
		"eth1:egress|nfmirror: copies taken at netdev egress of eth1|1700000000.123457789|48|48|02:00:00:00:00:02|198.18.50.1|1",
		"output|nfmirror: copies taken at the inet output hook (IPv4 and IPv6)|1700000000.123458789|59|59|||1",
		"forward|nfmirror: copies taken at the inet forward hook (IPv4 and IPv6)|1700000000.123459789|3052|200||198.18.0.1|",
	}
	if got := strings.Split(strings.TrimSpace(string(out)), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tshark reads:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if st := f.Stats(); st.ChecksumsCompleted != 1 || st.Packets != 4 {
		t.Errorf("stats %+v, want 4 copies, 1 checksum completed", st)
	}
}

// TestFileRotationByTime: files rotate when they are RotateEvery old, with
// or without copies arriving (the once-a-second tick), and every copy is in
// exactly one readable file.
func TestFileRotationByTime(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark not installed")
	}
	dir := t.TempDir()
	f := newTestFile(t, FileConfig{Path: filepath.Join(dir, "t.pcapng"), RotateEvery: 400 * time.Millisecond})
	pkts := fileCopies(30, time.Now())
	for i, p := range pkts { // 30 copies over 1.5 s
		sendAll(t, f, []*Packet{p})
		if i < len(pkts)-1 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	// The tick finishes the last file after 400 ms without a copy.
	deadline := time.Now().Add(3 * time.Second)
	for f.Stats().Path != "" && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if p := f.Stats().Path; p != "" {
		t.Errorf("%s still open 3 s after the last copy", p)
	}
	files := capFiles(t, dir)
	total := 0
	for _, path := range files {
		total += tsharkCount(t, path)
	}
	if len(files) < 3 || len(files) > 8 || total != 30 { // a loaded machine sleeps longer
		t.Errorf("%d files holding %d packets, want 3-8 files (1.5 s or more of copies, 400 ms each) holding all 30", len(files), total)
	}
}

// TestFileKeep: with keep 3 only the three newest files remain, the current
// one included; a new File on the same path (a restart) continues the
// numbering and the pruning.
func TestFileKeep(t *testing.T) {
	dir := t.TempDir()
	cfg := FileConfig{Path: filepath.Join(dir, "sub", "k.pcapng"), RotateBytes: 8 << 10, Keep: 3}
	seqs := func() []string {
		var out []string
		for _, p := range capFiles(t, filepath.Join(dir, "sub")) {
			out = append(out, strings.Split(filepath.Base(p), "_")[1])
		}
		return out
	}
	for round, want := range [][]string{{"00008", "00009", "00010"}, {"00018", "00019", "00020"}} {
		f := newTestFile(t, cfg)
		sendAll(t, f, fileCopies(70, time.Now())) // 7 copies (~8 KB) per file: 10 files
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if got := seqs(); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("round %d: files %v, want %v", round, got, want)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "sub"))
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o700 {
		t.Errorf("created directory has mode %o, want 700", m)
	}
}

// TestFileNoRotationKeepsPrevious: without rotation the file is the path
// itself, and a restart moves the previous capture aside instead of
// overwriting it.
func TestFileNoRotationKeepsPrevious(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plain.pcapng")
	for range 2 {
		f := newTestFile(t, FileConfig{Path: path})
		sendAll(t, f, fileCopies(5, time.Now()))
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // the aside name has a one-second resolution
	}
	files := capFiles(t, dir)
	if len(files) != 2 || files[0] != path {
		t.Fatalf("files %v, want the path and the previous capture beside it", files)
	}
	for _, p := range files {
		if _, n, _ := readNg(t, p); n != 5 {
			t.Errorf("%s holds %d packets, want 5", p, n)
		}
	}
}

// TestFileReusedAcrossReload: a service keys its Files by FileConfig; a
// reload that keeps the rule keeps the File and its open file, and only
// points it at the new pipeline's counters.
func TestFileReusedAcrossReload(t *testing.T) {
	dir := t.TempDir()
	cfg := FileConfig{Path: filepath.Join(dir, "r.pcapng"), RotateBytes: 1 << 20}
	files := map[FileConfig]*File{}
	get := func(c FileConfig) *File {
		if f, ok := files[c]; ok {
			return f
		}
		f := newTestFile(t, c)
		files[c] = f
		return f
	}
	f1 := get(cfg)
	f1.SetStats(func() []SourceStats {
		return []SourceStats{{Source: Source{Hook: HookPrerouting}, Received: 10, Dropped: 1}}
	})
	sendAll(t, f1, fileCopies(3, time.Now()))
	open1 := f1.Stats().Path
	f2 := get(cfg) // the reload: same rule
	f2.SetStats(func() []SourceStats {
		return []SourceStats{{Source: Source{Hook: HookPrerouting}, Received: 20, Dropped: 2}}
	})
	sendAll(t, f2, fileCopies(3, time.Now()))
	if f1 != f2 || f2.Stats().Path != open1 {
		t.Fatalf("the reload opened another file: %q, was %q", f2.Stats().Path, open1)
	}
	if err := f2.Close(); err != nil {
		t.Fatal(err)
	}
	_, n, stats := readNg(t, open1)
	if n != 6 || stats["prerouting"].PacketsDropped != 2 {
		t.Errorf("%d packets, statistics %+v: want 6 in one file, the new counters", n, stats)
	}
}

// TestFileDiskFull runs itself in a mount namespace of its own (unshare -m)
// on a 256 KiB tmpfs: when the disk fills, writing stops without cutting a
// block, copies are counted as dropped at once, and writing resumes in the
// same file when space returns; tshark reads the file whole and its packets
// are the copies counted as written.
func TestFileDiskFull(t *testing.T) {
	if dir := os.Getenv("NFM_DISKFULL_DIR"); dir != "" {
		diskFullInside(t, dir)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs in a mount namespace")
	}
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark not installed")
	}
	dir := t.TempDir()
	script := `mount -t tmpfs -o size=256k,mode=0700 nfm-test "$1" && NFM_DISKFULL_DIR="$1" exec "$2" -test.run '^TestFileDiskFull$' -test.v -test.count=1`
	out, err := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", dir, os.Args[0]).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestFileDiskFull")) {
		t.Fatalf("inside the mount namespace: %v\n%s", err, out)
	}
	t.Logf("inside the mount namespace:\n%s", out)
}

func diskFullInside(t *testing.T, dir string) {
	// Leave about 100 KiB free.
	pad := filepath.Join(dir, "pad")
	if err := os.WriteFile(pad, make([]byte, 150<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newTestFile(t, FileConfig{Path: filepath.Join(dir, "full.pcapng"), BufferBytes: 16 << 10})
	sent := 0
	errs := make([]error, 16)
	for range 40 {
		f.SendBatch(fileCopies(16, time.Now()), errs)
		sent += 16
		if f.Stats().Stopped != "" {
			break
		}
	}
	st := f.Stats()
	if st.Stopped == "" || st.Stops != 1 || !strings.Contains(st.Stopped, "no space") {
		t.Fatalf("stats %+v after %d copies into 100 KiB: want writing stopped for lack of space", st, sent)
	}
	f.SendBatch(fileCopies(16, time.Now()), errs)
	for i, err := range errs {
		if !errors.Is(err, ErrDiskFull) {
			t.Fatalf("copy %d while the disk is full: %v, want ErrDiskFull", i, err)
		}
	}
	if n := tsharkCount(t, filepath.Join(dir, "full.pcapng")); n == 0 {
		t.Error("the file holds nothing readable")
	}
	t.Logf("stopped after %d copies: %+v", sent, f.Stats())
	// Space returns: writing resumes within the next tick or two.
	if err := os.Remove(pad); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for f.Stats().Stopped != "" && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if st := f.Stats(); st.Stopped != "" {
		t.Fatalf("writing did not resume: %+v", st)
	}
	sendAll(t, f, fileCopies(20, time.Now()))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	st = f.Stats()
	if n := tsharkCount(t, filepath.Join(dir, "full.pcapng")); uint64(n) != st.Packets || st.DiskFull < 16 {
		t.Errorf("tshark reads %d packets, stats %+v: want every copy counted as written in the file, the dropped ones counted", n, st)
	}
	t.Logf("after resuming: %+v", st)
}

func TestFileSendNoAllocs(t *testing.T) {
	f := newTestFile(t, FileConfig{Path: filepath.Join(t.TempDir(), "a.pcapng"), RotateBytes: 1 << 30})
	batch := fileCopies(6, time.Now())
	errs := make([]error, len(batch))
	f.SendBatch(batch, errs) // opens the file, adds the interfaces
	allocs := testing.AllocsPerRun(200, func() {
		f.SendBatch(batch, errs)
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch", allocs)
	}
}

func TestFileCloseLeaksNothing(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 3 {
		f, err := NewFile(FileConfig{Path: filepath.Join(t.TempDir(), "l.pcapng")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		sendAll(t, f, fileCopies(3, time.Now()))
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := f.Send(fileCopies(1, time.Now())[0]); err == nil {
			t.Error("Send after Close succeeded")
		}
	}
	for range 50 {
		if runtime.NumGoroutine() <= before {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("%d goroutines after Close, were %d", runtime.NumGoroutine(), before)
}

func TestNewFileErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []FileConfig{
		{},
		{Path: dir + "/"},
		{Path: filepath.Join(dir, "a.pcapng"), RotateBytes: -1},
		{Path: filepath.Join(dir, "a.pcapng"), Keep: 3},
	} {
		if f, err := NewFile(c, nil); err == nil {
			f.Close()
			t.Errorf("NewFile(%+v) succeeded", c)
		}
	}
}
