package mirror

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/florianl/go-nfqueue/v2"
)

// Verdict batching. Every packet a lossless rule queues waits in the kernel
// for a verdict; sending one netlink message per packet was the bottleneck
// (beyond it the fail-open queue passes packets uncopied). A batch verdict accepts every packet of the queue up to
// an id in one message. The go-nfqueue callback does not say where a read
// batch ends, so a batch is closed after verdictBatchMax packets or
// verdictBatchDelay after its first packet, whichever comes first: at worst
// a lone packet waits verdictBatchDelay longer.
const (
	verdictBatchMax   = 64
	verdictBatchDelay = 200 * time.Microsecond
)

// verdictBatcher accepts queued packets in batches. It is safe for the
// library's reading goroutine and its own timer to use at once.
type verdictBatcher struct {
	mu      sync.Mutex
	send    func(id uint32) error // accepts every packet with an id up to id
	errs    *atomic.Uint64        // verdicts that could not be sent
	last    uint32                // highest id waiting for a verdict
	n       int                   // packets waiting for a verdict
	timer   *time.Timer
	pending bool // the timer is armed
}

func newVerdictBatcher(nf *nfqueue.Nfqueue, errs *atomic.Uint64) *verdictBatcher {
	return &verdictBatcher{
		send: func(id uint32) error { return nf.SetVerdictBatch(id, nfqueue.NfAccept) },
		errs: errs,
	}
}

// add records that packet id (ids of one queue only grow) waits for a verdict.
func (b *verdictBatcher) add(id uint32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.last = id
	b.n++
	if b.n >= verdictBatchMax {
		b.flushLocked()
		return
	}
	if !b.pending {
		b.pending = true
		if b.timer == nil {
			b.timer = time.AfterFunc(verdictBatchDelay, b.flush)
		} else {
			b.timer.Reset(verdictBatchDelay)
		}
	}
}

// flush sends the verdict for every packet waiting; call it before closing
// the queue so nothing waits for the kernel's unbind.
func (b *verdictBatcher) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
}

func (b *verdictBatcher) flushLocked() {
	if b.pending {
		b.timer.Stop()
		b.pending = false
	}
	if b.n == 0 {
		return
	}
	if err := b.send(b.last); err != nil {
		b.errs.Add(1)
	}
	b.n = 0
}
