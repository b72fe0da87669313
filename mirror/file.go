package mirror

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/nfmirror/nfmirror/internal/pkt"
)

// FileConfig describes one capture file destination. It is comparable: a
// service keeps its Files in a map keyed by FileConfig and, on a reload,
// keeps the File whose configuration did not change (and its open file)
// instead of closing it; SetStats then points it at the new counters.
type FileConfig struct {
	// Path is the file to write, e.g. /var/lib/nfmirror/eth0.pcapng. Its
	// directory is created (mode 0700) if missing.
	Path string
	// RotateBytes starts a new file when the current one would grow past
	// this many bytes; 0: no rotation by size.
	RotateBytes int64
	// RotateEvery starts a new file when the current one is this old;
	// 0: no rotation by time.
	RotateEvery time.Duration
	// Keep bounds how many rotated files are kept, the current one
	// included: the oldest are removed. 0 keeps all.
	Keep int
	// BufferBytes is how much is written per write system call (and at
	// least once a second); 0 means DefaultFileBuffer.
	BufferBytes int
}

// DefaultFileBuffer is FileConfig.BufferBytes when 0.
const DefaultFileBuffer = 256 << 10

// Source is where copies in a capture file were taken: each gets an
// interface description block of its own in every file, so that a reader
// can tell them apart (Wireshark's frame.interface_name).
type Source struct {
	Hook Hook
	// Dev is the device of a netdev hook; empty for inet hooks, which are
	// one source each whatever the device.
	Dev string
}

// String is the source's interface name in the file: the hook
// ("prerouting"), or device and hook for netdev hooks ("eth0:ingress").
func (s Source) String() string {
	if s.Dev != "" {
		return s.Dev + ":" + s.Hook.String()
	}
	return s.Hook.String()
}

// SourceStats are nfmirror's own counts for one source of a capture file,
// since the destination started: written into the file's interface
// statistics blocks at every rotation and at close (isb_ifrecv,
// isb_ifdrop), so a capture says what it lost.
type SourceStats struct {
	Source Source
	// Received counts copies taken at the source.
	Received uint64
	// Dropped counts copies of the source that never reached the file:
	// lost in the kernel, in a full queue, or while the disk was full.
	Dropped uint64
}

// File writes copies into pcapng capture files: one interface description
// block per source (a hook, or a netdev hook and its device; IP copies as
// raw IP, link type 101, netdev copies as Ethernet frames), the kernel's
// timestamp of each copy, its original length when a snaplen cut it, and at
// every rotation and at close an interface statistics block per source with
// nfmirror's own counts (see SetStats). It implements BatchSink.
//
// Files are written through a buffer (FileConfig.BufferBytes per write
// system call, and at least once a second) that only ever holds whole
// blocks, so a file on disk always ends at a block boundary. Files are
// created with mode 0600, their directory 0700 if it had to be created.
//
// Naming. Without rotation the file is FileConfig.Path (an existing file of
// that name is first moved aside to stem_YYYYMMDDhhmmss.ext, its
// modification time, so a restart never overwrites a capture). With
// rotation, files are named like dumpcap's ring buffer:
// stem_NNNNN_YYYYMMDDhhmmss.ext, NNNNN continuing from the highest number
// found in the directory. A file is written whole, statistics included,
// synced and closed before the next one is created.
//
// Full disk. A write that fails (ENOSPC, EDQUOT, EIO) is undone to the last
// block boundary and writing stops: copies are counted as dropped (Stats
// DiskFull) and the buffer is retried every second; writing resumes, in the
// same file, as soon as the retry succeeds.
//
// A copy's partial checksum (CHECKSUM_PARTIAL, packets this host sends) is
// completed as the Writer does; super-packets are kept whole, as tcpdump
// records them.
type File struct {
	mu   sync.Mutex
	cfg  FileConfig
	log  *slog.Logger
	stem string // Path without its extension
	ext  string

	stats    func() []SourceStats
	devNames func(ifindex int) string
	names    map[int]string // device names resolved so far

	// The file being written, nil before the first copy and after a
	// rotation until the next copy.
	f       *os.File
	name    string
	off     int64 // bytes of the file on disk
	started time.Time
	ngw     *pcapgo.NgWriter
	buf     blockBuf
	pending uint64 // copies in buf, not yet on disk
	inFile  uint64 // copies on disk in the current file
	ids     map[sourceKey]int
	seq     int // last rotation number used
	stopped error
	openErr string // the last error opening a file, logged once

	closed bool
	stop   chan struct{}
	done   chan struct{}
	c      fileCounters
}

var _ BatchSink = (*File)(nil)

// sourceKey is a Source and the framing of its copies: sources whose hook
// is unknown may carry both.
type sourceKey struct {
	Source
	l2 bool
}

// blockBuf collects the blocks the pcapng writer emits; it never fails.
type blockBuf struct{ b []byte }

func (w *blockBuf) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// ErrDiskFull is counted for a copy dropped because writing its capture
// file failed (a full disk, a quota) and has not resumed yet.
var ErrDiskFull = errors.New("capture file cannot be written")

// errFileClosed is returned for copies sent after Close.
var errFileClosed = errors.New("capture file closed")

// NewFile prepares the capture file destination cfg. The first file is
// created at the first copy. log may be nil.
func NewFile(cfg FileConfig, log *slog.Logger) (*File, error) {
	if cfg.Path == "" || strings.HasSuffix(cfg.Path, "/") {
		return nil, fmt.Errorf("capture file %q: a file name is needed", cfg.Path)
	}
	if cfg.RotateBytes < 0 || cfg.RotateEvery < 0 || cfg.Keep < 0 || cfg.BufferBytes < 0 {
		return nil, fmt.Errorf("capture file %s: negative rotation, keep or buffer", cfg.Path)
	}
	if cfg.Keep > 0 && cfg.RotateBytes == 0 && cfg.RotateEvery == 0 {
		return nil, fmt.Errorf("capture file %s: keep needs a rotation", cfg.Path)
	}
	key := cfg // the caller's key, before defaults
	if cfg.BufferBytes == 0 {
		cfg.BufferBytes = DefaultFileBuffer
	}
	ext := filepath.Ext(cfg.Path)
	f := &File{
		cfg:   key,
		log:   discardIfNil(log),
		stem:  strings.TrimSuffix(cfg.Path, ext),
		ext:   ext,
		names: make(map[int]string),
		buf:   blockBuf{b: make([]byte, 0, cfg.BufferBytes+largeCap)},
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	f.devNames = f.lookupDevName
	if dir := filepath.Dir(cfg.Path); dir != "" {
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("create directory for capture file: %w", err)
			}
		}
	}
	if f.rotating() {
		f.seq = f.lastSeq()
	}
	go f.tick(f.stop, f.done)
	return f, nil
}

// Config returns the configuration the File was made with: its key.
func (f *File) Config() FileConfig { return f.cfg }

// SetStats sets the function that returns nfmirror's counts per source for
// the interface statistics blocks (nil: none are written). A service calls
// it again after a reload that kept the File.
func (f *File) SetStats(fn func() []SourceStats) {
	f.mu.Lock()
	f.stats = fn
	f.mu.Unlock()
}

// SetDevNames sets how interface indexes are named (the default looks them
// up in the caller's network namespace). Names already resolved are
// forgotten.
func (f *File) SetDevNames(fn func(ifindex int) string) {
	f.mu.Lock()
	f.devNames = fn
	f.names = make(map[int]string)
	f.mu.Unlock()
}

func (f *File) lookupDevName(ifindex int) string {
	if i, err := net.InterfaceByIndex(ifindex); err == nil {
		return i.Name
	}
	return "if" + strconv.Itoa(ifindex)
}

func (f *File) rotating() bool { return f.cfg.RotateBytes > 0 || f.cfg.RotateEvery > 0 }

// Send writes one copy.
func (f *File) Send(p *Packet) error {
	var err [1]error
	f.SendBatch([]*Packet{p}, err[:])
	return err[0]
}

// SendBatch writes pkts in order into the buffer, which goes to disk when
// it is full (and at least once a second).
func (f *File) SendBatch(pkts []*Packet, errs []error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	for i, p := range pkts {
		errs[i] = f.write(p, now)
		if errs[i] != nil {
			if errs[i] == ErrDiskFull {
				f.c.diskFull.Add(1)
			} else {
				f.c.errors.Add(1)
			}
		}
	}
	if len(f.buf.b) >= f.cfg.bufferBytes() {
		f.writeOut()
	}
}

func (c FileConfig) bufferBytes() int {
	if c.BufferBytes == 0 {
		return DefaultFileBuffer
	}
	return c.BufferBytes
}

// write appends one copy to the buffer, opening or rotating the file first
// when due.
func (f *File) write(p *Packet, now time.Time) error {
	if f.closed {
		return errFileClosed
	}
	if f.stopped != nil {
		return ErrDiskFull
	}
	data := p.Data
	if len(data) == 0 {
		return pkt.ErrShort
	}
	blockLen := int64(32 + (len(data)+3)&^3)
	if f.f != nil && f.rotateDue(now, blockLen) {
		if err := f.rotate(now); err != nil {
			return err
		}
		if f.stopped != nil {
			return ErrDiskFull
		}
	}
	k := f.sourceOf(p)
	if f.f == nil {
		if err := f.open(now, k); err != nil {
			if f.openErr == "" || f.openErr != err.Error() {
				f.log.Warn("open capture file: copies are counted as errors until it opens", "path", f.cfg.Path, "err", err)
			}
			f.openErr = err.Error()
			return err
		}
		f.openErr = ""
	}
	id, err := f.interfaceID(k)
	if err != nil {
		return err
	}
	if f.completeChecksum(p) {
		f.c.checksums.Add(1)
	}
	ts := p.Time
	if ts.IsZero() {
		ts = now
	}
	ci := gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(data), Length: max(len(data), p.OrigLen), InterfaceIndex: id}
	if err := f.ngw.WritePacket(ci, data); err != nil {
		return fmt.Errorf("write capture block: %w", err)
	}
	if err := f.ngw.Flush(); err != nil { // into f.buf: whole blocks only
		return fmt.Errorf("write capture block: %w", err)
	}
	f.pending++
	f.c.packets.Add(1)
	f.c.bytes.Add(uint64(len(data)))
	return nil
}

// completeChecksum completes the partial checksum of a whole IP copy, or
// of the IP packet in a whole Ethernet frame.
func (f *File) completeChecksum(p *Packet) bool {
	if p.OrigLen > len(p.Data) {
		return false
	}
	ip := p.Data
	if p.L2 {
		mac, etype := pkt.MACHeaderLen(ip)
		if etype != pkt.EthIPv4 && etype != pkt.EthIPv6 {
			return false
		}
		ip = ip[mac:]
	}
	return pkt.CompleteChecksum(ip)
}

// sourceOf says where p was taken.
func (f *File) sourceOf(p *Packet) sourceKey {
	k := sourceKey{Source: Source{Hook: p.Hook}, l2: p.L2}
	switch {
	case p.Hook.Netdev():
		k.l2 = true
		if p.Dev > 0 {
			name, ok := f.names[p.Dev]
			if !ok {
				name = f.devNames(p.Dev)
				f.names[p.Dev] = name
			}
			k.Dev = name
		}
	case p.Hook != HookUnknown:
		k.l2 = false
	}
	return k
}

// interfaceID returns the id of k's interface description block in the
// current file, adding the block if it has none yet.
func (f *File) interfaceID(k sourceKey) (int, error) {
	if id, ok := f.ids[k]; ok {
		return id, nil
	}
	id, err := f.ngw.AddInterface(describeSource(k))
	if err != nil {
		return 0, fmt.Errorf("add interface block: %w", err)
	}
	f.ids[k] = id
	return id, nil
}

// describeSource is the interface description block of a source.
func describeSource(k sourceKey) pcapgo.NgInterface {
	intf := pcapgo.NgInterface{Name: k.String(), OS: runtime.GOOS, LinkType: layers.LinkTypeRaw, TimestampResolution: 9}
	switch {
	case k.Hook.Netdev():
		intf.Description = fmt.Sprintf("nfmirror: copies taken at netdev %s of %s", k.Hook, k.Dev)
	case k.Hook == HookUnknown:
		intf.Description = "nfmirror: copies whose hook the kernel did not say"
	default:
		intf.Description = fmt.Sprintf("nfmirror: copies taken at the inet %s hook (IPv4 and IPv6)", k.Hook)
	}
	if k.l2 {
		intf.LinkType = layers.LinkTypeEthernet
	}
	return intf
}

// rotateDue reports whether the file must be rotated before a block of n
// bytes is written.
func (f *File) rotateDue(now time.Time, n int64) bool {
	size := f.off + int64(len(f.buf.b))
	return f.cfg.RotateBytes > 0 && size+n > f.cfg.RotateBytes && f.pending+f.inFile > 0 ||
		f.cfg.RotateEvery > 0 && now.Sub(f.started) >= f.cfg.RotateEvery
}

// open creates the next file and writes its section header and the
// interface block of first, the source of its first copy.
func (f *File) open(now time.Time, first sourceKey) error {
	name := f.cfg.Path
	if f.rotating() {
		f.seq++
		name = fmt.Sprintf("%s_%05d_%s%s", f.stem, f.seq, now.UTC().Format("20060102150405"), f.ext)
	} else if fi, err := os.Stat(name); err == nil && fi.Size() > 0 {
		aside := fmt.Sprintf("%s_%s%s", f.stem, fi.ModTime().UTC().Format("20060102150405"), f.ext)
		if err := os.Rename(name, aside); err != nil {
			return fmt.Errorf("move the previous capture aside: %w", err)
		}
		f.log.Info("previous capture file moved aside", "path", name, "to", aside)
	}
	fd, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create capture file: %w", err)
	}
	if err := fd.Chmod(0o600); err != nil {
		fd.Close()
		return fmt.Errorf("create capture file: %w", err)
	}
	f.buf.b = f.buf.b[:0]
	ngw, err := pcapgo.NewNgWriterInterface(&f.buf, describeSource(first), pcapgo.NgWriterOptions{
		SectionInfo: pcapgo.NgSectionInfo{Hardware: runtime.GOARCH, OS: runtime.GOOS, Application: "nfmirror"},
	})
	if err != nil {
		fd.Close()
		return fmt.Errorf("start capture file: %w", err)
	}
	f.f, f.name, f.off, f.started, f.ngw = fd, name, 0, now, ngw
	f.ids = map[sourceKey]int{first: 0}
	f.pending, f.inFile = 0, 0
	f.c.files.Add(1)
	f.prune()
	return nil
}

// prune removes the oldest rotated files beyond Keep.
func (f *File) prune() {
	if f.cfg.Keep == 0 || !f.rotating() {
		return
	}
	files := f.rotated()
	for len(files) > f.cfg.Keep {
		if err := os.Remove(files[0].path); err != nil && !errors.Is(err, os.ErrNotExist) {
			f.log.Warn("remove old capture file", "path", files[0].path, "err", err)
		}
		files = files[1:]
	}
}

type rotatedFile struct {
	path string
	seq  int
}

// rotated lists this destination's rotated files, oldest first.
func (f *File) rotated() []rotatedFile {
	dir, base := filepath.Split(f.stem)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []rotatedFile
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, base+"_") || !strings.HasSuffix(n, f.ext) {
			continue
		}
		mid := strings.TrimSuffix(strings.TrimPrefix(n, base+"_"), f.ext)
		seqStr, stamp, ok := strings.Cut(mid, "_")
		if !ok || len(stamp) != 14 || len(seqStr) < 5 {
			continue
		}
		seq, err := strconv.Atoi(seqStr)
		if err != nil {
			continue
		}
		out = append(out, rotatedFile{filepath.Join(dir, n), seq})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

// lastSeq is the highest rotation number in use.
func (f *File) lastSeq() int {
	files := f.rotated()
	if len(files) == 0 {
		return 0
	}
	return files[len(files)-1].seq
}

// rotate finishes the current file; the next is opened by the next copy.
func (f *File) rotate(now time.Time) error {
	if err := f.finish(now); err != nil {
		return err
	}
	f.c.rotations.Add(1)
	return nil
}

// finish writes the statistics blocks, the buffer, syncs and closes the
// current file. When the disk is full it keeps the file open (writing has
// stopped) and returns nil.
func (f *File) finish(now time.Time) error {
	if f.f == nil {
		return nil
	}
	f.writeStats(now)
	if f.writeOut(); f.stopped != nil {
		return nil
	}
	err := f.f.Sync()
	if cerr := f.f.Close(); err == nil {
		err = cerr
	}
	f.f, f.ngw = nil, nil
	if err != nil {
		return fmt.Errorf("close capture file %s: %w", f.name, err)
	}
	f.log.Debug("capture file complete", "path", f.name, "bytes", f.off)
	return nil
}

// writeStats appends an interface statistics block for every source the
// stats function counts (adding its interface block if the file has none),
// and for every other source of the file, with what is known.
func (f *File) writeStats(now time.Time) {
	if f.stats == nil || f.ngw == nil {
		return
	}
	for _, s := range f.stats() {
		k := sourceKey{Source: s.Source, l2: s.Source.Hook.Netdev()}
		id, err := f.interfaceID(k)
		if err != nil {
			continue
		}
		_ = f.ngw.WriteInterfaceStats(id, pcapgo.NgInterfaceStatistics{
			LastUpdate: now, PacketsReceived: s.Received, PacketsDropped: s.Dropped,
		})
	}
	_ = f.ngw.Flush()
}

// writeOut writes the buffer to the file. A failed write is undone to where
// the buffer started (a block boundary), and writing stops until a later
// writeOut succeeds.
func (f *File) writeOut() {
	if f.f == nil || len(f.buf.b) == 0 {
		return
	}
	n, err := f.f.Write(f.buf.b)
	if err != nil {
		if n > 0 {
			if terr := f.f.Truncate(f.off); terr != nil {
				f.log.Error("undo a partial write to the capture file", "path", f.name, "err", terr)
			}
			if _, serr := f.f.Seek(f.off, 0); serr != nil {
				f.log.Error("undo a partial write to the capture file", "path", f.name, "err", serr)
			}
		}
		if f.stopped == nil {
			f.log.Warn("capture file cannot be written: copies are dropped and counted until it can", "path", f.name, "err", err)
			f.c.stops.Add(1)
		}
		f.stopped = err
		return
	}
	if f.stopped != nil {
		f.log.Info("capture file is written again", "path", f.name)
		f.stopped = nil
	}
	f.off += int64(n)
	f.inFile += f.pending
	f.pending = 0
	f.buf.b = f.buf.b[:0]
}

// tick writes the buffer out once a second, retries a stopped file and
// rotates by time.
func (f *File) tick(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			f.mu.Lock()
			f.writeOut()
			if f.stopped == nil && f.f != nil && f.cfg.RotateEvery > 0 && now.Sub(f.started) >= f.cfg.RotateEvery {
				if err := f.rotate(now); err != nil {
					f.log.Warn("rotate capture file", "path", f.name, "err", err)
				}
			}
			f.mu.Unlock()
		}
	}
}

// Close writes the statistics blocks and the buffer, and closes the file.
// Copies still buffered when the disk is full are lost and counted.
func (f *File) Close() error {
	f.mu.Lock()
	if f.stop == nil {
		f.mu.Unlock()
		return nil
	}
	close(f.stop)
	done := f.done
	f.stop = nil
	f.mu.Unlock()
	<-done

	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	err := f.finish(time.Now())
	if f.f != nil { // the disk is still full: keep what is on it
		if f.pending > 0 {
			f.c.diskFull.Add(f.pending)
			f.c.packets.Add(^(f.pending - 1)) // they never reached the file
		}
		f.pending = 0
		if cerr := f.f.Close(); err == nil {
			err = cerr
		}
		f.f = nil
	}
	return err
}

type fileCounters struct {
	packets, bytes, checksums, files, rotations, diskFull, stops, errors atomic.Uint64
}

// FileStats counts what a capture file destination did.
type FileStats struct {
	// Path is the file being written, empty when none is open.
	Path string `json:"path,omitempty"`
	// Packets counts copies written (or buffered for writing) and Bytes
	// their bytes; Files the files created, Rotations the files finished
	// by rotation.
	Packets   uint64 `json:"packets"`
	Bytes     uint64 `json:"bytes"`
	Files     uint64 `json:"files"`
	Rotations uint64 `json:"rotations"`
	// ChecksumsCompleted counts copies whose partial checksum was
	// completed.
	ChecksumsCompleted uint64 `json:"checksums_completed"`
	// DiskFull counts copies dropped because the file could not be
	// written; Stops the times writing stopped. Stopped says why writing
	// is stopped now; empty while it runs.
	DiskFull uint64 `json:"disk_full"`
	Stops    uint64 `json:"stops"`
	Stopped  string `json:"stopped,omitempty"`
	// Errors counts copies not written for another reason.
	Errors uint64 `json:"errors"`
}

// Stats returns the destination's counters.
func (f *File) Stats() FileStats {
	f.mu.Lock()
	name := ""
	if f.f != nil {
		name = f.name
	}
	stopped := ""
	if f.stopped != nil {
		stopped = f.stopped.Error()
	}
	f.mu.Unlock()
	c := &f.c
	return FileStats{
		Path: name, Packets: c.packets.Load(), Bytes: c.bytes.Load(), Files: c.files.Load(), Rotations: c.rotations.Load(),
		ChecksumsCompleted: c.checksums.Load(), DiskFull: c.diskFull.Load(), Stops: c.stops.Load(), Stopped: stopped,
		Errors: c.errors.Load(),
	}
}

// Describe says in one line where the copies go and whether writing runs.
func (st FileStats) Describe() string {
	state := "writing"
	if st.Stopped != "" {
		state = "stopped (" + st.Stopped + "): copies are dropped and counted"
	}
	path := st.Path
	if path == "" {
		path = "no file open"
	}
	return fmt.Sprintf("pcapng %s, %s; %d copies in %d files (%d rotations), %d dropped while the disk was full",
		path, state, st.Packets, st.Files, st.Rotations, st.DiskFull)
}
