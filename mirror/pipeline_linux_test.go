package mirror

import (
	"testing"

	"github.com/nfmirror/nfmirror/nfrules"
)

func TestPipelineMemoryBound(t *testing.T) {
	const queueLen = 16
	p := testPipeline(t, &recordSink{}, queueLen,
		nfrules.Channel{Kind: nfrules.ChannelNFLOG, Num: 1, Dest: "m0"},
		nfrules.Channel{Kind: nfrules.ChannelNFQUEUE, Num: 2, Dest: "m0", Snaplen: 128})
	want := int64(2*(queueLen*slotInitCap+largeBudget) + nflogDatagramBuf + nfqueueReadBatch*(128+1024))
	if got := p.MemoryBound(); got != want {
		t.Errorf("MemoryBound = %d, want %d", got, want)
	}
}
