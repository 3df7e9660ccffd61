package bench

import (
	"time"

	"github.com/ebbscale/ebb/bench/promdata"
	"github.com/ebbscale/ebb/queries/storetest"
)

// History is the istio_requests_total history the side-by-side comparison
// loads into Prometheus: Samples samples Step apart from storetest.Epoch for
// workloads 0..Workloads-1, evaluated at At (the last sample).
type History struct {
	Workloads int
	Samples   int
	Step      time.Duration
}

// DefaultHistory is 6 minutes at Istio's usual 15 s scrape interval.
func DefaultHistory(workloads int) History {
	return History{Workloads: workloads, Samples: 25, Step: 15 * time.Second}
}

// At is the instant both sides evaluate at: the last sample.
func (h History) At() time.Time {
	return storetest.Epoch.Add(time.Duration(h.Samples-1) * h.Step)
}

// workload i's kind: most have traffic, some have series that stopped
// growing (a rate of 0), and some have no series at all.
func hasSeries(i int) bool  { return i%10 != 9 }
func hasTraffic(i int) bool { return i%10 < 8 }

// rate200 is workload i's rate of 200 responses; 5xx responses come at a
// 16th of it. Both are exact binary fractions.
func rate200(i int) float64 { return 0.25 * float64(1+i%40) }

// ExpectedRate is workload i's request rate at At: what both
// `sum(rate(...[1m]))` per workload and ebb's batched query must return (0
// for a workload without series, as KEDA answers with ignoreNullValues).
func ExpectedRate(i int) float64 {
	if !hasTraffic(i) {
		return 0
	}
	return rate200(i) * (1 + 1.0/16)
}

// Series returns the history: per workload with traffic, two
// destination-reported counters (200 and 503) and one source-reported
// counter from its caller (which neither query counts: KEDA's selects
// reporter="destination", ebb's source side takes only requests to workloads
// with no endpoints); per stopped workload one flat destination counter.
func (h History) Series() []storetest.Series {
	var out []storetest.Series
	for i := range h.Workloads {
		if !hasSeries(i) {
			continue
		}
		ns, name := promdata.Namespace(i), promdata.Name(i)
		counter := func(reporter, code string, rate float64) storetest.Series {
			return storetest.Series{Metric: "istio_requests_total", Labels: map[string]string{
				"reporter":                       reporter,
				"source_workload":                "frontend",
				"source_workload_namespace":      ns,
				"destination_workload":           name,
				"destination_workload_namespace": ns,
				"destination_service_name":       name,
				"destination_service_namespace":  ns,
				"response_code":                  code,
			}, Samples: storetest.Linear(storetest.Epoch, h.Step, h.Samples, 1000+float64(i), rate*h.Step.Seconds())}
		}
		if !hasTraffic(i) {
			out = append(out, counter("destination", "200", 0))
			continue
		}
		r := rate200(i)
		out = append(out,
			counter("destination", "200", r),
			counter("destination", "503", r/16),
			counter("source", "200", r))
	}
	return out
}
