package mirror

import (
	"log/slog"

	"github.com/nfmirror/nfmirror/nfrules"
)

// openSource opens and binds the kernel socket of one channel.
func openSource(cs *chanState, cfg Config, log *slog.Logger) (source, error) {
	switch {
	case cs.ch.Kind == nfrules.ChannelNFQUEUE && cfg.QueueReader == QueueReaderBuiltin:
		return openNFQUEUEReader(cs, cfg.NetNS, log)
	case cs.ch.Kind == nfrules.ChannelNFQUEUE:
		return openNFQUEUE(cs, cfg.NetNS, log)
	case cs.ch.L2() || cfg.InetReader == ReaderBuiltin:
		return openNFLOGReader(cs, cfg.NetNS, log)
	default:
		return openGoNFLOG(cs, cfg.NetNS, log)
	}
}
