package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	nfqueue "github.com/florianl/go-nfqueue/v2"
	"golang.org/x/sys/unix"
)

// nfqueueSource reads a lossless channel: an NFQUEUE queue fed by the xt
// NFQUEUE target with --queue-bypass. The queue is configured fail-open (when
// it is full the kernel accepts the packet instead of dropping it) and every
// packet is accepted as soon as its copy is queued, so production traffic
// never waits on a sink. GSO packets are segmented by the kernel before
// queueing (no NFQA_CFG_F_GSO), so copies are wire-sized.
type nfqueueSource struct {
	libReader
	cs       *chanState
	nf       *nfqueue.Nfqueue
	verdicts *verdictBatcher
	log      *slog.Logger
}

// nfqueueMaxLen is how many packets the kernel holds waiting for a verdict
// before failing open. It is the price of a frozen nfmirror (SIGSTOP, a
// stalled machine): at most this many production packets wait, later ones
// pass uncopied. The kernel's own default; a running reader keeps it near
// empty.
const nfqueueMaxLen = 1024

func openNFQUEUE(cs *chanState, netns int, log *slog.Logger) (*nfqueueSource, error) {
	snap := cs.ch.Snaplen
	if snap == 0 || snap > 0xffff {
		snap = 0xffff
	}
	nf, err := nfqueue.Open(&nfqueue.Config{
		NetNS:        netns,
		NfQueue:      cs.ch.Num,
		MaxQueueLen:  nfqueueMaxLen,
		MaxPacketLen: snap,
		Copymode:     nfqueue.NfQnlCopyPacket,
		Flags:        nfqueue.NfQaCfgFlagFailOpen,
		AfFamily:     unix.AF_UNSPEC,
	})
	if err != nil {
		return nil, fmt.Errorf("go-nfqueue: %w", err)
	}
	if raw, err := nf.Con.SyscallConn(); err == nil {
		setReadBuffer(nf.Con, raw, nflogReadBuf, log)
	}
	src := &nfqueueSource{cs: cs, nf: nf, log: log, verdicts: newVerdictBatcher(nf, &cs.cnt.verdictErrs)}
	if err := src.register(); err != nil {
		nf.Close()
		return nil, err
	}
	return src, nil
}

// register binds the queue and starts the library's reading
// goroutine, so that copies are read as soon as open returns.
func (s *nfqueueSource) register() error {
	ctx, errFn := s.start(&s.cs.cnt.enobufs)
	hook := func(a nfqueue.Attribute) int {
		if a.PacketID == nil {
			s.cs.cnt.parseErrors.Add(1)
			return 0
		}
		// Take the copy first: the payload buffer is ours until we return,
		// and the verdict releases the packet.
		if a.Payload != nil {
			p := *a.Payload
			orig := 0
			if a.CapLen != nil && int(*a.CapLen) > len(p) {
				orig = int(*a.CapLen)
			}
			m := copyMeta{ruleID: -1, origLen: orig}
			libMeta(&m, a.Hook, a.InDev, a.OutDev, a.Timestamp)
			s.cs.deliver(m, p)
		} else {
			s.cs.cnt.parseErrors.Add(1)
		}
		s.verdicts.add(*a.PacketID)
		return 0
	}
	if err := s.nf.RegisterWithErrorFunc(ctx, hook, errFn); err != nil {
		s.stop()
		return fmt.Errorf("register: %w", err)
	}
	return nil
}

// Run waits until ctx is cancelled, or the reading goroutine fails.
func (s *nfqueueSource) Run(ctx context.Context) error {
	if err := s.wait(ctx); err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	return nil
}

// Close closes the socket, which unbinds the queue; packets still waiting
// for a verdict are then accepted by the kernel.
func (s *nfqueueSource) Close() error {
	s.stop()
	s.verdicts.flush() // no packet waits for the unbind
	return s.nf.Close()
}

// libReader is the part of a source whose reading goroutine belongs to the
// library (go-nflog, go-nfqueue): which receive errors stop that goroutine,
// and Run waiting for it. Both libraries take the same error function, so
// both sources stop, and count, the same way.
type libReader struct {
	// stop cancels the library's reading goroutine; failed carries the
	// error that stopped it.
	stop   context.CancelFunc
	failed chan error
}

// start returns the context and the error function to hand to the library's
// RegisterWithErrorFunc. The error function keeps reading on ENOBUFS
// (counted in enobufs: the kernel dropped copies) and on read timeouts, ends
// reading quietly once stop was called, and ends it on any other error,
// which wait then returns.
func (l *libReader) start(enobufs *atomic.Uint64) (context.Context, func(error) int) {
	ctx, cancel := context.WithCancel(context.Background())
	l.stop = cancel
	l.failed = make(chan error, 1)
	failed := l.failed
	return ctx, func(err error) int {
		if ctx.Err() != nil {
			return 1
		}
		if errors.Is(err, unix.ENOBUFS) {
			enobufs.Add(1)
			return 0
		}
		var t interface{ Timeout() bool }
		if errors.As(err, &t) && t.Timeout() {
			return 0
		}
		select {
		case failed <- err:
		default:
		}
		return 1
	}
}

// wait blocks until ctx is cancelled (nil) or the reading goroutine stopped
// on an error (that error), and stops reading either way.
func (l *libReader) wait(ctx context.Context) error {
	defer l.stop()
	select {
	case <-ctx.Done():
		return nil
	case err := <-l.failed:
		return err
	}
}
