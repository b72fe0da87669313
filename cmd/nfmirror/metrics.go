package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nfmirror/nfmirror/internal/service"
)

// statusCollector exports the running instance's status as Prometheus
// metrics. It reads the same document `nfmirror status` reads (built at most
// every 250 ms from the pipeline's atomic counters), so a scrape never
// touches the copy path and its counters always equal status's.
type statusCollector struct {
	status atomic.Pointer[func() service.Status]
}

// The metrics, by Prometheus naming conventions.
var (
	descMatched = prometheus.NewDesc("nfmirror_matched_packets_total",
		"Packets the rule's kernel counter matched, since start.", []string{"rule", "hook"}, nil)
	descMatchedBytes = prometheus.NewDesc("nfmirror_matched_bytes_total",
		"Bytes the rule's kernel counter matched, since start.", []string{"rule", "hook"}, nil)
	descMirrored = prometheus.NewDesc("nfmirror_mirrored_packets_total",
		"Copies of the rule's packets written to their destination, since start (status' MIRRORED).", []string{"rule", "hook"}, nil)
	descTruncated = prometheus.NewDesc("nfmirror_truncated_packets_total",
		"Copies of the rule's packets cut by its snaplen, since start.", []string{"rule", "hook"}, nil)
	descLost = prometheus.NewDesc("nfmirror_lost_packets_total",
		"Copies of the rule's packets lost, by reason: queue_full (the writer could not keep up) or send_error (the port could not take them).",
		[]string{"rule", "hook", "reason"}, nil)
	descDestPackets = prometheus.NewDesc("nfmirror_destination_packets_total",
		"Copies written to the destination, since start.", []string{"destination"}, nil)
	descDestBytes = prometheus.NewDesc("nfmirror_destination_bytes_total",
		"Bytes of copies written to the destination, since start.", []string{"destination"}, nil)
	descDestErrors = prometheus.NewDesc("nfmirror_destination_errors_total",
		"Copies the destination's writer could not write, since start.", []string{"destination"}, nil)
	descChanReceived = prometheus.NewDesc("nfmirror_channel_received_packets_total",
		"Copies read from the NFLOG group or NFQUEUE queue of the running rules.", []string{"channel", "destination"}, nil)
	descChanLost = prometheus.NewDesc("nfmirror_channel_kernel_lost_packets_total",
		"Copies the kernel made for the channel of the running rules but could not deliver (NFLOG sequence gaps).", []string{"channel", "destination"}, nil)
	descLostInKernel = prometheus.NewDesc("nfmirror_kernel_lost_packets_total",
		"Copies the kernel made but could not deliver, since start, all channels.", nil, nil)
	descLoaded = prometheus.NewDesc("nfmirror_rules_loaded_timestamp_seconds",
		"When the running rules file was loaded (start or the last good reload), Unix time.", []string{"file"}, nil)
	descReloads = prometheus.NewDesc("nfmirror_reloads_total",
		"Reloads that swapped in a new rules file.", nil, nil)
	descFailedReloads = prometheus.NewDesc("nfmirror_failed_reloads_total",
		"Reloads that failed and kept the running rules.", nil, nil)
	descUp = prometheus.NewDesc("nfmirror_up",
		"1 while the instance mirrors.", nil, nil)
)

// Describe sends every metric's description.
func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMatched, descMatchedBytes, descMirrored, descTruncated, descLost,
		descDestPackets, descDestBytes, descDestErrors, descChanReceived, descChanLost, descLostInKernel,
		descLoaded, descReloads, descFailedReloads, descUp} {
		ch <- d
	}
}

// Collect reads one status document and sends its counters.
func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.status.Load()
	if f == nil {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	st := (*f)()
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, r := range st.RuleStats {
		if r.ID < 0 {
			continue // copies no rule can be told for: in the destination's counts
		}
		rule, hook := ruleLabel(r.Pos), r.Hook
		if r.Device != "" {
			hook += " " + r.Device
		}
		counter(descMatched, r.Matched, rule, hook)
		counter(descMatchedBytes, r.MatchedBytes, rule, hook)
		counter(descMirrored, r.Mirrored, rule, hook)
		counter(descTruncated, r.Truncated, rule, hook)
		counter(descLost, r.Dropped.QueueFull, rule, hook, "queue_full")
		counter(descLost, r.Dropped.SendError, rule, hook, "send_error")
	}
	for _, d := range st.Destinations {
		counter(descDestPackets, d.Packets, d.Name)
		counter(descDestBytes, d.Bytes, d.Name)
		counter(descDestErrors, d.Errors, d.Name)
	}
	for _, ch2 := range st.Channels {
		name := ch2.Kind + " " + strconv.Itoa(int(ch2.Num))
		counter(descChanReceived, ch2.Received, name, ch2.Dest)
		counter(descChanLost, ch2.SeqGaps, name, ch2.Dest)
	}
	counter(descLostInKernel, st.Total.LostInKernel)
	loaded := st.Started
	if st.Reloads > 0 && !st.LastReload.IsZero() {
		loaded = st.LastReload
	}
	ch <- prometheus.MustNewConstMetric(descLoaded, prometheus.GaugeValue, float64(loaded.UnixNano())/1e9, st.Rules)
	counter(descReloads, uint64(st.Reloads))
	counter(descFailedReloads, uint64(st.FailedReloads))
}

// ruleLabel is a rule's position as FILE:LINE.
func ruleLabel(pos string) string {
	if i := strings.LastIndexByte(pos, ':'); i > 0 {
		return pos[:i]
	}
	return pos
}

// metricsServer serves /metrics on ln until ctx is done.
type metricsServer struct {
	collector statusCollector
	srv       *http.Server
	ln        net.Listener
	log       *slog.Logger
}

// newMetricsServer listens on addr (e.g. 127.0.0.1:9772) at once, so that a
// bad address fails before anything is installed.
func newMetricsServer(addr string, log *slog.Logger) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	m := &metricsServer{ln: ln, log: log}
	reg := prometheus.NewRegistry()
	reg.MustRegister(&m.collector, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second}
	return m, nil
}

// setStatus is service.Config.Serving: from now on, scrapes read status.
func (m *metricsServer) setStatus(f func() service.Status) { m.collector.status.Store(&f) }

// run serves until ctx is done.
func (m *metricsServer) run(ctx context.Context) {
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		m.srv.Shutdown(sctx)
	}()
	if err := m.srv.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		m.log.Warn("metrics server", "err", err)
	}
}
