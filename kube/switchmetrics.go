package kube

import "github.com/prometheus/client_golang/prometheus"

// Directions of a switch, the values of the to label of
// ebb_activator_switches_total.
const (
	toProxy = "proxy"
	toServe = "serve"
)

// SwitchMetrics are the Prometheus measurements of a Switcher. A nil
// *SwitchMetrics records nothing.
type SwitchMetrics struct {
	switches *prometheus.CounterVec
	writes   *prometheus.CounterVec
}

// NewSwitchMetrics creates the measurements and registers them with reg.
func NewSwitchMetrics(reg prometheus.Registerer) *SwitchMetrics {
	m := &SwitchMetrics{
		switches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebb_activator_switches_total",
			Help: "Workloads switched to proxy mode (the activator in front) or back to serve mode, by direction (to: proxy, serve).",
		}, []string{"to"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebb_activator_slice_writes_total",
			Help: "Writes of ebb's EndpointSlices, by verb (create, update, delete, get) and result (ok, conflict, not_found, forbidden, error).",
		}, []string{"verb", "result"}),
	}
	for _, to := range []string{toProxy, toServe} {
		m.switches.WithLabelValues(to)
	}
	for _, verb := range []string{"create", "update", "delete"} {
		for _, r := range []string{resultOK, resultDenied, resultError} {
			m.writes.WithLabelValues(verb, r)
		}
	}
	reg.MustRegister(m.switches, m.writes)
	return m
}

func (m *SwitchMetrics) switched(to string) {
	if m == nil {
		return
	}
	m.switches.WithLabelValues(to).Inc()
}

func (m *SwitchMetrics) sliceWrite(verb, result string) {
	if m == nil {
		return
	}
	m.writes.WithLabelValues(verb, result).Inc()
}
