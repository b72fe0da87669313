package service

import (
	"fmt"

	"github.com/nfmirror/nfmirror/mirror"
	"github.com/nfmirror/nfmirror/nfrules"
)

// openWriters opens one writer per destination of plan, on the ports s set
// up: every copy of a destination, IP packet or Ethernet frame, leaves
// through its writer.
func (s *server) openWriters(plan *nfrules.Plan) (map[string]*mirror.Writer, error) {
	writers := map[string]*mirror.Writer{}
	for _, port := range s.ports.Ports() {
		if writers[port.Name] != nil {
			continue
		}
		w, err := mirror.NewWriter(port, s.log)
		if err != nil {
			closeWriters(writers)
			return nil, fmt.Errorf("open writer for %s: %w", port.Name, err)
		}
		writers[port.Name] = w
	}
	for _, c := range plan.Channels {
		if writers[c.Dest] == nil {
			closeWriters(writers)
			return nil, fmt.Errorf("mirror port %q is not set up", c.Dest)
		}
	}
	return writers, nil
}

func closeWriters(ws map[string]*mirror.Writer) {
	for _, w := range ws {
		w.Close()
	}
}

// sinks returns the writers as the pipeline takes them.
func sinks(ws map[string]*mirror.Writer) map[string]mirror.Sink {
	out := make(map[string]mirror.Sink, len(ws))
	for name, w := range ws {
		out[name] = w
	}
	return out
}
