package service

import (
	"fmt"

	"github.com/nfmirror/nfmirror/mirror"
	"github.com/nfmirror/nfmirror/nfrules"
	"github.com/nfmirror/nfmirror/route"
)

// portSink is the sink of one mirror port: IP copies go through route
// replay, Ethernet frames from netdev channels are written at layer 2.
type portSink struct {
	ip mirror.Sink // nil when no inet channel uses the port
	l2 mirror.Sink // nil when no netdev channel uses the port
}

var _ mirror.BatchSink = (*portSink)(nil)

// sink returns the sink for a copy of this kind.
func (p *portSink) sink(l2 bool) (mirror.Sink, error) {
	if l2 {
		if p.l2 == nil {
			return nil, fmt.Errorf("no layer-2 sink for this port")
		}
		return p.l2, nil
	}
	if p.ip == nil {
		return nil, fmt.Errorf("no IP sink for this port")
	}
	return p.ip, nil
}

func (p *portSink) Send(pkt *mirror.Packet) error {
	k, err := p.sink(pkt.L2)
	if err != nil {
		return err
	}
	return k.Send(pkt)
}

// SendBatch hands a batch to the sink of its kind in one go. The pipeline's
// batches come from one channel, so they are of one kind; a mixed batch is
// sent copy by copy.
func (p *portSink) SendBatch(pkts []*mirror.Packet, errs []error) {
	if len(pkts) == 0 {
		return
	}
	k, err := p.sink(pkts[0].L2)
	bs, batched := k.(mirror.BatchSink)
	for _, pkt := range pkts {
		if pkt.L2 != pkts[0].L2 {
			batched = false
		}
	}
	switch {
	case err != nil:
		for i := range errs {
			errs[i] = err
		}
	case batched:
		bs.SendBatch(pkts, errs)
	default:
		for i, pkt := range pkts {
			errs[i] = p.Send(pkt)
		}
	}
}

func (p *portSink) Close() error {
	var err error
	if p.ip != nil {
		err = p.ip.Close()
	}
	if p.l2 != nil {
		if e := p.l2.Close(); err == nil {
			err = e
		}
	}
	return err
}

// openSinks opens one sink per destination of plan, on the ports s set up.
func (s *server) openSinks(plan *nfrules.Plan) (map[string]mirror.Sink, []mirror.Sink, error) {
	ports := map[string]route.Port{}
	for _, p := range s.ports.Ports() {
		ports[p.Name] = p
	}
	sinks := map[string]*portSink{}
	var all []mirror.Sink
	fail := func(err error) (map[string]mirror.Sink, []mirror.Sink, error) {
		closeSinks(all)
		return nil, nil, err
	}
	for _, c := range plan.Channels {
		port, ok := ports[c.Dest]
		if !ok {
			return fail(fmt.Errorf("mirror port %q is not set up", c.Dest))
		}
		ps := sinks[c.Dest]
		if ps == nil {
			ps = &portSink{}
			sinks[c.Dest] = ps
			all = append(all, ps)
		}
		switch {
		case c.L2() && ps.l2 == nil:
			k, err := mirror.NewL2Sink(port, s.log)
			if err != nil {
				return fail(fmt.Errorf("open layer-2 sink on %s: %w", c.Dest, err))
			}
			ps.l2 = k
		case !c.L2() && ps.ip == nil:
			k, err := mirror.NewRouteSink(port, s.log)
			if err != nil {
				return fail(fmt.Errorf("open route sink on %s: %w", c.Dest, err))
			}
			ps.ip = k
		}
	}
	out := make(map[string]mirror.Sink, len(sinks))
	for name, k := range sinks {
		out[name] = k
	}
	return out, all, nil
}
