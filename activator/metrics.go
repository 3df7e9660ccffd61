package activator

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbscale/ebb/queries"
)

// metrics are the activator's Prometheus measurements.
type metrics struct {
	requests   *prometheus.CounterVec
	pending    *prometheus.GaugeVec
	coldStarts *prometheus.CounterVec
	wake       *prometheus.HistogramVec
	held       *prometheus.CounterVec
	forwarded  *prometheus.CounterVec
	rejected   *prometheus.CounterVec

	// unknownHost counts requests for no Service ebb holds. It has no
	// workload labels: a caller could otherwise mint series at will.
	unknownHost prometheus.Counter

	byWorkload sync.Map // queries.WorkloadKey -> *workloadMetrics
}

// workloadMetrics are one workload's series, looked up once.
type workloadMetrics struct {
	requests, coldStarts, held     prometheus.Counter
	forwardedDirect, forwardedHeld prometheus.Counter
	overflow, timeout, clientGone  prometheus.Counter
	upstream                       prometheus.Counter
	pending                        prometheus.Gauge
	wake                           prometheus.Observer
}

// rejected returns the counter of requests answered for reason.
func (m *workloadMetrics) rejected(reason string) prometheus.Counter {
	switch reason {
	case reasonOverflow:
		return m.overflow
	case reasonTimeout:
		return m.timeout
	case reasonClientGone:
		return m.clientGone
	}
	return m.upstream
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	wl := []string{"namespace", "workload"}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebb_activator_requests_total",
			Help: "Requests the activator received for a workload's Service, held or not.",
		}, wl),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ebb_activator_pending",
			Help: "Requests held now, waiting for the workload's first ready endpoint.",
		}, wl),
		coldStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebb_activator_cold_starts_total",
			Help: "Times a workload started holding requests (no ready endpoint when a request came).",
		}, wl),
		wake: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ebb_activator_wake_latency_seconds",
			Help:    "From a workload's first held request to the first byte of a held request forwarded.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}, wl),
		held: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebb_activator_held_total",
			Help: "Requests held because the workload's Service had no ready endpoint.",
		}, wl),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebb_activator_forwarded_total",
			Help: "Requests forwarded to an endpoint that answered, after a hold (held=\"true\") or at once.",
		}, []string{"namespace", "workload", "held"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebb_activator_rejected_total",
			Help: "Requests the activator answered itself, by reason (overflow, timeout, client_gone, unknown_host, upstream_error); unknown_host has empty namespace and workload.",
		}, []string{"namespace", "workload", "reason"}),
	}
	m.unknownHost = m.rejected.WithLabelValues("", "", reasonUnknownHost)
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.pending, m.coldStarts, m.wake, m.held, m.forwarded, m.rejected} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// workload returns w's series.
func (m *metrics) workload(w queries.WorkloadKey) *workloadMetrics {
	if v, ok := m.byWorkload.Load(w); ok {
		return v.(*workloadMetrics)
	}
	ns, name := w.Namespace, w.Name
	wm := &workloadMetrics{
		requests:        m.requests.WithLabelValues(ns, name),
		coldStarts:      m.coldStarts.WithLabelValues(ns, name),
		held:            m.held.WithLabelValues(ns, name),
		forwardedDirect: m.forwarded.WithLabelValues(ns, name, "false"),
		forwardedHeld:   m.forwarded.WithLabelValues(ns, name, "true"),
		overflow:        m.rejected.WithLabelValues(ns, name, reasonOverflow),
		timeout:         m.rejected.WithLabelValues(ns, name, reasonTimeout),
		clientGone:      m.rejected.WithLabelValues(ns, name, reasonClientGone),
		upstream:        m.rejected.WithLabelValues(ns, name, reasonUpstream),
		pending:         m.pending.WithLabelValues(ns, name),
		wake:            m.wake.WithLabelValues(ns, name),
	}
	v, _ := m.byWorkload.LoadOrStore(w, wm)
	return v.(*workloadMetrics)
}
