package mirror

import "sync/atomic"

// queue is a bounded single-producer single-consumer ring of packet slots
// between one source's reader goroutine and its destination's sink goroutine.
//
// The reader never waits: push copies the packet into the next free slot or,
// when every slot is taken, returns false and the caller counts a drop. Slot
// buffers are reused: a slot allocates only when a copy is larger than any it
// held before, so steady-state traffic does not allocate. The memory a queue
// can pin is at most its length times the largest copy (snaplen bounds it).
type queue struct {
	slots []Packet
	head  atomic.Uint64 // next slot the consumer reads
	tail  atomic.Uint64 // next slot the producer writes
	wake  chan struct{} // shared with the other queues of the same destination
}

// slotInitCap is the buffer a slot first allocates: a full 1500-byte frame
// with room for a VLAN tag fits.
const slotInitCap = 2048

func newQueue(n int, wake chan struct{}) *queue {
	return &queue{slots: make([]Packet, n), wake: wake}
}

// push copies the concatenation of parts into a free slot and wakes the
// consumer. It reports false, copying nothing, when the queue is full. Only
// one goroutine may push.
func (q *queue) push(ruleID, origLen int, parts ...[]byte) bool {
	t := q.tail.Load()
	if t-q.head.Load() >= uint64(len(q.slots)) {
		return false
	}
	s := &q.slots[t%uint64(len(q.slots))]
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if cap(s.Data) < n {
		s.Data = make([]byte, 0, max(n, slotInitCap))
	}
	s.Data = s.Data[:0]
	for _, p := range parts {
		s.Data = append(s.Data, p...)
	}
	s.RuleID, s.OrigLen = ruleID, origLen
	q.tail.Store(t + 1)
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
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

// release frees the slot of the packet peek returned.
func (q *queue) release() { q.head.Add(1) }

// len returns the number of queued packets.
func (q *queue) len() int { return int(q.tail.Load() - q.head.Load()) }
