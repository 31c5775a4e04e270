// Package metrics serves uplinkd's Prometheus metrics. Counters that live
// in the data plane (per port packets, bytes and drops) and the current
// state (active uplink, carrier, probe and admin state) are read at scrape
// time through a Source; events (failovers, latencies, announcements) are
// recorded by the daemon as they happen. Besides serving HTTP, its only
// syscalls are the standard process collector's reads of /proc.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/uplinkd/uplinkd/pkg/config"
	"github.com/uplinkd/uplinkd/pkg/control"
)

// Uplink is one uplink's state.
type Uplink struct {
	Name    string
	Active  bool
	Carrier bool
	Usable  bool
	Probe   string // none, ok, failed
	Admin   string // usable, standby, disabled
}

// Group is one group's state, and its switches and announcement frames
// since start (the counts uplinkctl status shows).
type Group struct {
	Name               string
	Uplinks            []Uplink
	FailoversByReason  map[string]int
	AnnounceFrames     uint64
	AnnounceSuppressed uint64
}

// Snapshot is what a scrape reads.
type Snapshot struct {
	Ports  []control.PortCounters // what uplinkctl counters shows
	Groups []Group
}

// Source takes a snapshot; it is called once per scrape.
type Source func() Snapshot

// Metrics is the registry and the event metrics (the latencies, which
// only the events carry; the counts are read at scrape time).
type Metrics struct {
	reg            *prometheus.Registry
	detectSwitch   *prometheus.HistogramVec
	switchAnnounce *prometheus.HistogramVec
}

// Latency buckets from 10 µs to ~2.6 s: the interesting range is µs (the
// kernel paths) to ms (netlink, the poll).
var latencyBuckets = prometheus.ExponentialBuckets(10e-6, 4, 10)

// New registers the metrics; src is read at every scrape.
func New(src Source) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		detectSwitch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "uplinkd_failover_detect_to_switch_seconds", Buckets: latencyBuckets,
			Help: "From the moment a failure was seen (carrier event, poll, probe, kernel report) to the active slot's write, by what saw it.",
		}, []string{"group", "source"}),
		switchAnnounce: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "uplinkd_failover_switch_to_announce_seconds", Buckets: latencyBuckets,
			Help: "From a switch to the first announcement frame sent on the new uplink.",
		}, []string{"group"}),
	}
	m.reg.MustRegister(m.detectSwitch, m.switchAnnounce,
		&collector{src: src}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Switched records a switch's latency: what saw the failure and when.
func (m *Metrics) Switched(group, source string, detected, switched time.Time) {
	if !detected.IsZero() && !switched.Before(detected) {
		m.detectSwitch.WithLabelValues(group, sourceLabel(source)).Observe(switched.Sub(detected).Seconds())
	}
}

// sourceLabel names a switch's source: "kernel/<path>" or the daemon's
// own (netlink, poll, probe, operator, ...); unnamed is "daemon".
func sourceLabel(s string) string {
	if s == "" {
		return "daemon"
	}
	return s
}

// Announced records when a run that followed a switch sent its first
// frame.
func (m *Metrics) Announced(group string, switched, first time.Time) {
	if !switched.IsZero() && !first.IsZero() && !first.Before(switched) {
		m.switchAnnounce.WithLabelValues(group).Observe(first.Sub(switched).Seconds())
	}
}

// Handler serves the metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Serve serves /metrics on ln until ctx ends.
func (m *Metrics) Serve(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// collector turns a Snapshot into metrics at scrape time.
type collector struct{ src Source }

var (
	descRx     = prometheus.NewDesc("uplinkd_port_rx_packets_total", "Frames received on a port (by the switch).", []string{"port", "group", "role"}, nil)
	descRxB    = prometheus.NewDesc("uplinkd_port_rx_bytes_total", "Bytes received on a port.", []string{"port", "group", "role"}, nil)
	descTx     = prometheus.NewDesc("uplinkd_port_tx_packets_total", "Frames the switch sent out of a port.", []string{"port", "group", "role"}, nil)
	descTxB    = prometheus.NewDesc("uplinkd_port_tx_bytes_total", "Bytes the switch sent out of a port.", []string{"port", "group", "role"}, nil)
	descHost   = prometheus.NewDesc("uplinkd_port_host_packets_total", "Frames handed to the host's stack.", []string{"port", "group", "role"}, nil)
	descLearn  = prometheus.NewDesc("uplinkd_port_learn_refused_total", "New guest MACs not learned: the port's max_macs reached, or the MAC locked to another port.", []string{"port", "group", "role"}, nil)
	descDrops  = prometheus.NewDesc("uplinkd_port_drops_total", "Frames the switch dropped, by reason.", []string{"port", "group", "role", "reason"}, nil)
	descActive = prometheus.NewDesc("uplinkd_group_active_uplink", "1 for the group's active (designated) uplink.", []string{"group", "uplink"}, nil)
	descUp     = prometheus.NewDesc("uplinkd_uplink_carrier", "1 when the uplink has carrier.", []string{"group", "uplink"}, nil)
	descUse    = prometheus.NewDesc("uplinkd_uplink_usable", "1 when the uplink may carry traffic now.", []string{"group", "uplink"}, nil)
	descProbe  = prometheus.NewDesc("uplinkd_uplink_probe_state", "1 for the uplink's path probe state.", []string{"group", "uplink", "state"}, nil)
	descAdmin  = prometheus.NewDesc("uplinkd_uplink_admin_state", "1 for the uplink's admin state.", []string{"group", "uplink", "state"}, nil)
	descFail   = prometheus.NewDesc("uplinkd_failovers_total", "Switches of a group's active uplink, by reason.", []string{"group", "reason"}, nil)
	descAnn    = prometheus.NewDesc("uplinkd_announcements_sent_total", "Announcement frames (RARP, gratuitous ARP, NA) sent.", []string{"group"}, nil)
	descSupp   = prometheus.NewDesc("uplinkd_announcements_suppressed_total", "Announcement frames the rate cap could not fit before their run ended.", []string{"group"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRx, descRxB, descTx, descTxB, descHost, descLearn, descDrops, descActive, descUp, descUse, descProbe, descAdmin, descFail, descAnn, descSupp} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, on bool, labels ...string) {
		v := 0.0
		if on {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, p := range s.Ports {
		l := []string{p.Port, p.Group, p.Role}
		counter(descRx, p.RxPackets, l...)
		counter(descRxB, p.RxBytes, l...)
		counter(descTx, p.TxPackets, l...)
		counter(descTxB, p.TxBytes, l...)
		counter(descHost, p.HostPackets, l...)
		counter(descLearn, p.LearnRefused, l...)
		for reason, n := range p.Drops {
			counter(descDrops, n, append(l, reason)...)
		}
	}
	for _, g := range s.Groups {
		for reason, n := range g.FailoversByReason {
			counter(descFail, uint64(n), g.Name, reason)
		}
		counter(descAnn, g.AnnounceFrames, g.Name)
		counter(descSupp, g.AnnounceSuppressed, g.Name)
		for _, u := range g.Uplinks {
			gauge(descActive, u.Active, g.Name, u.Name)
			gauge(descUp, u.Carrier, g.Name, u.Name)
			gauge(descUse, u.Usable, g.Name, u.Name)
			for _, st := range []string{"none", "ok", "failed"} {
				gauge(descProbe, u.Probe == st, g.Name, u.Name, st)
			}
			for _, st := range config.UplinkStates {
				gauge(descAdmin, u.Admin == st, g.Name, u.Name, st)
			}
		}
	}
}
