package mirror

import (
	"log/slog"
)

// openSource opens and binds the kernel socket of one channel.
func openSource(cs *chanState, cfg Config, log *slog.Logger) (source, error) {
	switch {
	case cs.ch.Kind == NFQUEUE && cfg.QueueReader == QueueReaderBuiltin:
		return openNFQUEUEReader(cs, cfg.NetNS, log)
	case cs.ch.Kind == NFQUEUE:
		return openNFQUEUE(cs, cfg.NetNS, log)
	case cs.ch.Netdev || cfg.InetReader == ReaderBuiltin:
		return openNFLOGReader(cs, cfg.NetNS, log)
	default:
		return openGoNFLOG(cs, cfg.NetNS, log)
	}
}

// MemoryBound is the most memory, in bytes, that the pipeline's queues and
// readers hold at once however the traffic goes: every queue slot's own
// buffer, every queue's large-buffer budget, and the readers' receive
// buffers. The Go heap around them is not counted.
func (p *Pipeline) MemoryBound() int64 {
	var n int64
	for _, cs := range p.chans {
		n += int64(len(cs.q.slots))*slotInitCap + largeBudget
		switch {
		case cs.ch.Kind == NFQUEUE:
			snap := int64(cs.ch.Snaplen)
			if snap == 0 || snap > 0xffff {
				snap = 0xffff
			}
			n += nfqueueReadBatch * (snap + 1024)
		default:
			n += nflogDatagramBuf
		}
	}
	return n
}
