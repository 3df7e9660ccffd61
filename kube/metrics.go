package kube

import "github.com/prometheus/client_golang/prometheus"

// Write results, the values of the result label of
// ebb_annotation_writes_total.
const (
	resultOK       = "ok"
	resultConflict = "conflict"
	resultNotFound = "not_found"
	resultDenied   = "forbidden"
	resultError    = "error"
)

// Metrics are the Prometheus measurements of a Watcher and a StateWriter.
// A nil *Metrics records nothing.
type Metrics struct {
	annotationErrors prometheus.Gauge
	writes           *prometheus.CounterVec
}

// NewMetrics creates the measurements and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		annotationErrors: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ebb_annotation_errors",
			Help: "Deployments and StatefulSets whose ebb.dev/ annotations do not parse; ebb never shuts them down.",
		}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebb_annotation_writes_total",
			Help: "Patches of ebb.dev/last-active and ebb.dev/state, by result (ok, conflict, not_found, forbidden, error).",
		}, []string{"result"}),
	}
	for _, r := range []string{resultOK, resultConflict, resultNotFound, resultDenied, resultError} {
		m.writes.WithLabelValues(r)
	}
	reg.MustRegister(m.annotationErrors, m.writes)
	return m
}

func (m *Metrics) addAnnotationErrors(n int) {
	if m == nil || n == 0 {
		return
	}
	m.annotationErrors.Add(float64(n))
}

func (m *Metrics) write(result string) {
	if m == nil {
		return
	}
	m.writes.WithLabelValues(result).Inc()
}
