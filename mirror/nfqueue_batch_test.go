package mirror

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestVerdictBatcher(t *testing.T) {
	var (
		mu    sync.Mutex
		sent  []uint32
		errs  atomic.Uint64
		batch = &verdictBatcher{errs: &errs}
	)
	batch.send = func(id uint32) error {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, id)
		return nil
	}
	got := func() []uint32 {
		mu.Lock()
		defer mu.Unlock()
		return append([]uint32(nil), sent...)
	}
	// A full batch goes at once, as one verdict for its highest id.
	for id := uint32(1); id <= verdictBatchMax; id++ {
		batch.add(id)
	}
	if s := got(); len(s) != 1 || s[0] != verdictBatchMax {
		t.Fatalf("after %d packets: verdicts %v, want one for id %d", verdictBatchMax, s, verdictBatchMax)
	}
	// A lone packet goes after the delay, not never.
	batch.add(verdictBatchMax + 1)
	deadline := time.Now().Add(time.Second)
	for len(got()) < 2 && time.Now().Before(deadline) {
		time.Sleep(verdictBatchDelay)
	}
	if s := got(); len(s) != 2 || s[1] != verdictBatchMax+1 {
		t.Fatalf("a lone packet: verdicts %v, want a second one for id %d within a second", s, verdictBatchMax+1)
	}
	// flush sends what waits, and nothing when nothing waits.
	batch.add(verdictBatchMax + 2)
	batch.add(verdictBatchMax + 3)
	batch.flush()
	batch.flush()
	if s := got(); len(s) != 3 || s[2] != verdictBatchMax+3 {
		t.Fatalf("flush: verdicts %v, want a third one for id %d only", s, verdictBatchMax+3)
	}
	// After a flush the timer serves the next lone packet again.
	batch.add(verdictBatchMax + 4)
	deadline = time.Now().Add(time.Second)
	for len(got()) < 4 && time.Now().Before(deadline) {
		time.Sleep(verdictBatchDelay)
	}
	if s := got(); len(s) != 4 || s[3] != verdictBatchMax+4 || errs.Load() != 0 {
		t.Fatalf("a lone packet after a flush: verdicts %v, errors %d, want a fourth one for id %d", s, errs.Load(), verdictBatchMax+4)
	}
}
