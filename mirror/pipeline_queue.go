package mirror

import (
	"sync/atomic"
	"time"
)

// copyMeta is what a reader knows of a copy besides its bytes; push copies
// it into the packet's slot.
type copyMeta struct {
	ruleID, origLen int
	l2              bool
	hook            Hook
	dev             int
	time            time.Time
}

// queue is a bounded single-producer single-consumer ring of packet slots
// between one source's reader goroutine and its destination's sink goroutine.
//
// The reader never waits: push copies the packet into the next free slot or,
// when every slot is taken, returns false and the caller counts a drop.
//
// Memory: every slot owns a small buffer (slotInitCap bytes, allocated and
// faulted in with the queue), enough for any frame of a 1500-byte link. Larger copies
// (GRO/TSO super-packets of up to 64 KiB) borrow a large buffer that goes
// back to a small pool when the copy is sent, and at most largeBudget bytes
// are lent at once: a copy that would pass it is dropped and counted like a
// full queue. So a queue pins about len × slotInitCap + largeBudget bytes,
// not len × 64 KiB (as it would if every slot kept the largest copy it had
// held), and steady traffic, small or large, does not allocate.
type queue struct {
	slots []Packet
	small [][]byte      // each slot's own buffer, put back on release
	lent  atomic.Int64  // bytes of large buffers held by queued copies
	pool  chan []byte   // large buffers kept for reuse
	head  atomic.Uint64 // next slot the consumer reads
	tail  atomic.Uint64 // next slot the producer writes
	wake  chan struct{} // shared with the other queues of the same destination
	// waiting is set by a producer that waits for room (a lossless
	// channel); release then signals space.
	waiting atomic.Bool
	space   chan struct{}
}

const (
	// slotInitCap is a slot's own buffer: a full 1500-byte frame with room
	// for a VLAN tag fits.
	slotInitCap = 2048
	// largeCap is the size of a large buffer: a 64 KiB IP packet plus a
	// link-layer header.
	largeCap = 64<<10 + 256
	// largeBudget bounds the large buffers one queue lends at once: the
	// queue rarely holds many super-packets, and what an overload pins
	// stays small.
	largeBudget = 8 << 20
	// largePool is how many large buffers a queue keeps for reuse: as many
	// as the budget lends, so that steady super-packet traffic makes no
	// garbage for the collector to let the heap grow over.
	largePool = largeBudget / largeCap
)

func newQueue(n int, wake chan struct{}) *queue {
	q := &queue{slots: make([]Packet, n), small: make([][]byte, n), pool: make(chan []byte, largePool), wake: wake, space: make(chan struct{}, 1)}
	// Every slot's buffer, in one block allocated now: the ring goes
	// through all of them anyway, and allocating them one by one under the
	// first burst of copies slowed the writer into dropping.
	block := make([]byte, n*slotInitCap)
	for i := 0; i < len(block); i += 4096 {
		block[i] = 0 // fault the pages in now, not under the first burst
	}
	for i := range q.small {
		q.small[i] = block[i*slotInitCap : i*slotInitCap : (i+1)*slotInitCap]
	}
	return q
}

// push copies the concatenation of parts, and m, into a free slot and wakes
// the consumer. It reports false, copying nothing, when the queue is full or
// the copy would pass the large-buffer budget. Only one goroutine may push.
func (q *queue) push(m *copyMeta, parts ...[]byte) bool {
	t := q.tail.Load()
	if t-q.head.Load() >= uint64(len(q.slots)) {
		return false
	}
	i := t % uint64(len(q.slots))
	s := &q.slots[i]
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n <= slotInitCap {
		s.Data = q.small[i][:0]
	} else {
		var buf []byte
		select {
		case buf = <-q.pool:
		default:
		}
		if cap(buf) < n { // none pooled, or too small for this copy
			if buf != nil {
				q.giveBack(buf)
			}
			buf = nil
		}
		size := max(n, largeCap)
		if buf != nil {
			size = cap(buf)
		}
		if q.lent.Load()+int64(size) > largeBudget {
			if buf != nil {
				q.giveBack(buf)
			}
			return false
		}
		if buf == nil {
			buf = make([]byte, 0, size)
		}
		q.lent.Add(int64(cap(buf)))
		s.Data = buf[:0]
	}
	for _, p := range parts {
		s.Data = append(s.Data, p...)
	}
	s.RuleID, s.OrigLen, s.L2 = m.ruleID, m.origLen, m.l2
	s.Hook, s.Dev, s.Time = m.hook, m.dev, m.time
	q.tail.Store(t + 1)
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// giveBack returns a large buffer to the pool, or to the garbage collector
// when the pool is full.
func (q *queue) giveBack(buf []byte) {
	select {
	case q.pool <- buf[:0]:
	default:
	}
}

// peek returns the oldest queued packet, or nil when the queue is empty. The
// packet stays valid, and its slot taken, until release. Only one goroutine
// may peek and release.
func (q *queue) peek() *Packet {
	h := q.head.Load()
	if h == q.tail.Load() {
		return nil
	}
	return &q.slots[h%uint64(len(q.slots))]
}

// peekBatch appends to out up to cap(out)-len(out) of the oldest queued
// packets, oldest first, and returns it. They stay valid, and their slots
// taken, until releaseN. Only one goroutine may peek and release.
func (q *queue) peekBatch(out []*Packet) []*Packet {
	h, t := q.head.Load(), q.tail.Load()
	for ; h != t && len(out) < cap(out); h++ {
		out = append(out, &q.slots[h%uint64(len(q.slots))])
	}
	return out
}

// releaseN releases the n oldest packets, as n calls of release.
func (q *queue) releaseN(n int) {
	for range n {
		q.release()
	}
}

// release frees the slot of the packet peek returned, and gives back the
// large buffer it borrowed, if any.
func (q *queue) release() {
	h := q.head.Load()
	s := &q.slots[h%uint64(len(q.slots))]
	if c := cap(s.Data); c > slotInitCap {
		q.lent.Add(-int64(c))
		q.giveBack(s.Data)
		s.Data = nil
	}
	q.head.Store(h + 1)
	if q.waiting.Load() {
		select {
		case q.space <- struct{}{}:
		default:
		}
	}
}

// len returns the number of queued packets.
func (q *queue) len() int { return int(q.tail.Load() - q.head.Load()) }
