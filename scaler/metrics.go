package scaler

import (
	"errors"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/shutdown"
)

// Metrics are the collector's Prometheus measurements. A nil *Metrics
// records nothing.
type Metrics struct {
	tickDuration prometheus.Histogram
	queries      *prometheus.CounterVec
	queryErrors  *prometheus.CounterVec
	series       *prometheus.CounterVec
	shapes       prometheus.Gauge
	workloads    prometheus.Gauge
	decisions    *prometheus.GaugeVec
	recoveries   *prometheus.CounterVec
	vanished     *prometheus.CounterVec
}

// NewMetrics creates the collector's metrics and registers them with reg.
// The snapshot-age gauge is registered apart, by RegisterSnapshotAge.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		tickDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ebb_collector_tick_duration_seconds",
			Help:    "Wall time of one collector tick: every shape queried and the snapshot swapped in.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebb_queries_total",
			Help: "Batched store queries, by signal.",
		}, []string{"signal"}),
		queryErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebb_query_errors_total",
			Help: "Batched store queries that failed, by signal (check: the store check before any workload is watched) and kind (timeout, unreachable, wrong_path, unauthorized, http_status, bad_data, bad_response, canceled, other).",
		}, []string{"signal", "kind"}),
		series: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebb_series_decoded_total",
			Help: "Workload samples decoded from store responses, by signal.",
		}, []string{"signal"}),
		shapes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ebb_signal_shapes",
			Help: "Distinct signal shapes (one query each) in the last tick.",
		}),
		workloads: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ebb_workloads_tracked",
			Help: "Workload signals (interests) in the last snapshot.",
		}),
		decisions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ebb_activity",
			Help: "Workload signals by the idle policy's answer (active, idle, unknown: answered neither) and reason (held, traffic, serving, recent, min-uptime, keep-awake, opt-out, unknown, bad-config, idle, and switching: idle, answered active until the activator is in front) in the last snapshot.",
		}, []string{"state", "reason"}),
		recoveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebb_idle_clock_recoveries_total",
			Help: "History queries that recovered idle clocks after a start or for new triggers, by signal and result (ok, error).",
		}, []string{"signal", "result"}),
		vanished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebb_series_vanished_total",
			Help: "Workloads whose series vanished while they were active, taken for missing data rather than no traffic, by signal.",
		}, []string{"signal"}),
	}
	reg.MustRegister(m.tickDuration, m.queries, m.queryErrors, m.series, m.shapes, m.workloads, m.decisions, m.recoveries, m.vanished)
	return m
}

// RegisterSnapshotAge registers ebb_snapshot_age_seconds, read from c at
// scrape time.
func RegisterSnapshotAge(reg prometheus.Registerer, c *Collector) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ebb_snapshot_age_seconds",
		Help: "Age of the current snapshot by the collector's clock; grows when ticks stall, not when the store fails (see ebb_data_age_seconds).",
	}, func() float64 {
		s := c.Snapshot()
		if s.At.IsZero() {
			return 0
		}
		return c.cfg.Clock.Since(s.At).Seconds()
	}))
}

// ObserveCheck counts a check that the store answers, made while no
// workload is watched, as a query of signal "check".
func (m *Metrics) ObserveCheck(err error) { m.observeQuery("check", 0, err) }

// RegisterDataAge registers ebb_data_age_seconds, read from c's snapshot at
// scrape time: per shape, how old the newest value a query returned is, by
// the collector's clock. Unlike the snapshot's age, it grows while the
// store fails; +Inf means no query of the shape has succeeded yet. Custom
// queries are one shape each, so one series per ScaledObject: unless
// perQuery, they are one series, shape="query", the oldest of their ages.
func RegisterDataAge(reg prometheus.Registerer, c *Collector, perQuery bool) {
	reg.MustRegister(dataAge{c: c, perQuery: perQuery, desc: prometheus.NewDesc("ebb_data_age_seconds",
		"Age of the newest good data per signal shape by the collector's clock (custom queries: the oldest, as shape=\"query\", unless --metrics-per-workload); grows while the store fails; +Inf before any success.",
		[]string{"shape"}, nil)})
}

type dataAge struct {
	c        *Collector
	perQuery bool
	desc     *prometheus.Desc
}

func (d dataAge) Describe(ch chan<- *prometheus.Desc) { ch <- d.desc }

func (d dataAge) Collect(ch chan<- prometheus.Metric) {
	s := d.c.Snapshot()
	newest := map[queries.Shape]time.Time{}
	for i := range s.obs {
		o := &s.obs[i]
		if o.owner == nil {
			continue
		}
		if at, ok := newest[o.owner.shape]; !ok || o.At.After(at) {
			newest[o.owner.shape] = o.At
		}
	}
	now := d.c.cfg.Clock.Now()
	queryAge, anyQuery := 0.0, false
	for shape, at := range newest {
		age := math.Inf(1)
		if !at.IsZero() {
			age = now.Sub(at).Seconds()
		}
		if shape.Signal == queries.SignalQuery && !d.perQuery {
			queryAge, anyQuery = max(queryAge, age), true
			continue
		}
		ch <- prometheus.MustNewConstMetric(d.desc, prometheus.GaugeValue, age, shape.String())
	}
	if anyQuery {
		ch <- prometheus.MustNewConstMetric(d.desc, prometheus.GaugeValue, queryAge, string(queries.SignalQuery))
	}
}

func (m *Metrics) observeQuery(signal queries.Signal, samples int, err error) {
	if m == nil {
		return
	}
	m.queries.WithLabelValues(string(signal)).Inc()
	if err != nil {
		kind := "other"
		var qe *queries.QueryError
		if errors.As(err, &qe) {
			kind = qe.Kind
		}
		m.queryErrors.WithLabelValues(string(signal), kind).Inc()
		return
	}
	m.series.WithLabelValues(string(signal)).Add(float64(samples))
}

func (m *Metrics) observeTick(d time.Duration, shapes int, s *Snapshot) {
	if m == nil {
		return
	}
	m.tickDuration.Observe(d.Seconds())
	m.shapes.Set(float64(shapes))
	type key struct {
		active bool
		reason shutdown.Reason
	}
	counts := make(map[key]int)
	n := 0
	for i := range s.obs {
		if s.obs[i].owner != nil {
			n++
			counts[key{s.obs[i].Active, s.obs[i].Reason}]++
		}
	}
	m.workloads.Set(float64(n))
	// Every valid pair is set on every tick (no Reset), so that a scrape
	// during a tick never sees a partial set.
	for r := shutdown.ReasonHeld; r <= shutdown.ReasonSwitching; r++ {
		active := r != shutdown.ReasonIdle
		state := "idle"
		switch {
		case r == shutdown.ReasonUnknown:
			state = "unknown"
		case active:
			state = "active"
		}
		m.decisions.WithLabelValues(state, r.String()).Set(float64(counts[key{active, r}]))
	}
}

func (m *Metrics) observeVanished(signal queries.Signal) {
	if m == nil {
		return
	}
	m.vanished.WithLabelValues(string(signal)).Inc()
}

func (m *Metrics) observeRecovery(signal queries.Signal, err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.recoveries.WithLabelValues(string(signal), result).Inc()
}
