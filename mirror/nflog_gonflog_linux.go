package mirror

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	nflog "github.com/florianl/go-nflog/v2"

	"github.com/nfmirror/nfmirror/internal/pkt"
)

// goNFLOGSource reads an inet NFLOG group with github.com/florianl/go-nflog:
// copy mode packet, the channel's snaplen, small batches with a 10 ms flush,
// sequence numbers on (gaps count lost copies), a large receive buffer.
type goNFLOGSource struct {
	libReader
	cs  *chanState
	nf  *nflog.Nflog
	log *slog.Logger
	seq seqTracker
}

func openGoNFLOG(cs *chanState, netns int, log *slog.Logger) (*goNFLOGSource, error) {
	snap := cs.ch.Snaplen
	if snap == 0 || snap > 0xffff {
		snap = 0xffff
	}
	nf, err := nflog.Open(&nflog.Config{
		NetNS:    netns,
		Group:    cs.ch.Num,
		Copymode: nflog.CopyPacket,
		Bufsize:  snap, // the copy range
		QThresh:  nflogQThresh,
		Timeout:  nflogTimeout,
		Flags:    nflog.FlagSeq,
	})
	if err != nil {
		return nil, fmt.Errorf("go-nflog: %w", err)
	}
	if raw, err := nf.Con.SyscallConn(); err == nil {
		setReadBuffer(nf.Con, raw, nflogReadBuf, log)
	}
	src := &goNFLOGSource{cs: cs, nf: nf, log: log}
	if err := src.register(); err != nil {
		nf.Close()
		return nil, err
	}
	return src, nil
}

// register binds the group and starts the library's reading
// goroutine, so that copies are read as soon as open returns.
func (s *goNFLOGSource) register() error {
	ctx, errFn := s.start(&s.cs.cnt.enobufs)
	hook := func(a nflog.Attribute) int {
		if a.Seq != nil {
			if gap := s.seq.next(*a.Seq); gap > 0 {
				s.cs.cnt.seqGaps.Add(gap)
			}
		}
		if a.Payload == nil {
			s.cs.cnt.parseErrors.Add(1)
			return 0
		}
		id := -1
		if a.Prefix != nil {
			id = ruleIDFromPrefix(*a.Prefix)
		}
		p := *a.Payload
		m := copyMeta{ruleID: id, origLen: pkt.OrigLen(p)}
		libMeta(&m, a.Hook, a.InDev, a.OutDev, a.Timestamp)
		s.cs.deliver(m, p)
		return 0
	}
	if err := s.nf.RegisterWithErrorFunc(ctx, hook, errFn); err != nil {
		s.stop()
		return fmt.Errorf("register: %w", err)
	}
	return nil
}

// Run waits until ctx is cancelled, or the reading goroutine fails.
func (s *goNFLOGSource) Run(ctx context.Context) error {
	if err := s.wait(ctx); err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	return nil
}

// Close closes the socket; call it after Run returned.
func (s *goNFLOGSource) Close() error {
	s.stop() // go-nflog's Close blocks until its context is done
	return s.nf.Close()
}

// libMeta fills m's hook, device and time from what go-nflog or go-nfqueue
// decoded (inet channels only); a copy without a kernel timestamp is stamped
// now.
func libMeta(m *copyMeta, hook *uint8, in, out *uint32, ts *time.Time) {
	if hook != nil {
		m.hook = hookFromKernel(0, *hook)
	}
	var i, o uint32
	if in != nil {
		i = *in
	}
	if out != nil {
		o = *out
	}
	m.dev = devFor(m.hook, i, o)
	if ts != nil && !ts.IsZero() {
		m.time = *ts
	} else {
		m.time = time.Now()
	}
}
