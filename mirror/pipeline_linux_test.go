package mirror

import (
	"testing"
)

func TestPipelineMemoryBound(t *testing.T) {
	const queueLen = 16
	p := testPipeline(t, &recordSink{}, queueLen,
		Channel{Kind: NFLOG, Num: 1, Dest: "m0"},
		Channel{Kind: NFQUEUE, Num: 2, Dest: "m0", Snaplen: 128})
	want := int64(2*(queueLen*slotInitCap+largeBudget) + nflogDatagramBuf + nfqueueReadBatch*(128+1024))
	if got := p.MemoryBound(); got != want {
		t.Errorf("MemoryBound = %d, want %d", got, want)
	}
}
