package main

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// kind is a workload's pattern of demand, which the harness knows at every
// moment.
type kind int

const (
	steady  kind = iota // demand all the time
	idle                // never any demand
	diurnal             // on half of every period, off the other half
	waking              // no demand until wakeAt, then demand all the time
	gpu                 // diurnal, on a GPU utilization gauge instead of requests
)

func (k kind) String() string {
	return [...]string{"steady", "idle", "diurnal", "waking", "gpu"}[k]
}

// workload is one Deployment of the fleet and its ScaledObject.
type workload struct {
	i         int
	namespace string
	name      string
	pod       string // the GPU workload's pod, as its ReplicaSet names it
	kind      kind
	phase     time.Duration // diurnal: offset into the period
	wakeAt    time.Time     // waking: when demand appears
	push      bool          // on external-push: KEDA holds a StreamIsActive open
	primary   int           // the replica KEDA's connection for it reaches
	count     float64       // requests counter the exporter serves
}

// fleet is the workloads and the clock their truth is read against.
type fleet struct {
	start  time.Time
	period time.Duration // diurnal period
	wl     []*workload
	// counted is when the exporter's counters first counted demand (unix
	// ns): its second scrape, which adds the requests since the first.
	// Demand that ended before it never reached the store, so it is not
	// demand ebb could have seen.
	counted atomic.Int64
}

// newFleet makes n workloads: 40% steady, 30% idle, 15% diurnal, 10%
// waking (wake times spread over [wakeFrom, wakeTo)), 5% GPU; every other
// one on external-push; primaries alternate between the two replicas.
func newFleet(n int, start time.Time, period time.Duration, wakeFrom, wakeTo time.Time) *fleet {
	f := &fleet{start: start, period: period}
	teams := []string{"shop", "payments", "search", "ml", "media", "ads", "auth", "infra", "data", "mobile"}
	for i := range n {
		w := &workload{i: i, namespace: fmt.Sprintf("%s-%02d", teams[i%len(teams)], i/1000), push: i%2 == 1, primary: (i / 2) % 2}
		switch r := i % 20; {
		case r < 8:
			w.kind = steady
		case r < 14:
			w.kind = idle
		case r < 17:
			w.kind = diurnal
		case r < 19:
			w.kind = waking
		default:
			w.kind = gpu
		}
		w.name = fmt.Sprintf("%s-api-%05d", w.kind, i)
		// A pod name as the ReplicaSet controller makes it: the pod
		// template hash, then five characters of the safe alphabet.
		w.pod = fmt.Sprintf("%s-7c9d8f6b5-%s", w.name, safe5(i))
		// Phases and wake times spread over the period and the span by a
		// stride coprime with 10007, so neighbours differ.
		w.phase = period * time.Duration(i*7919%10007) / 10007
		w.wakeAt = wakeFrom.Add(wakeTo.Sub(wakeFrom) * time.Duration(i*104729%10007) / 10007)
		f.wl = append(f.wl, w)
	}
	return f
}

// safe5 renders i in the alphabet Kubernetes uses for generated names.
func safe5(i int) string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, 5)
	for j := range b {
		b[j] = alphabet[i%len(alphabet)]
		i /= len(alphabet)
	}
	return string(b)
}

// active says whether w has demand at t.
func (f *fleet) active(w *workload, t time.Time) bool {
	switch w.kind {
	case steady:
		return true
	case idle:
		return false
	case waking:
		return !t.Before(w.wakeAt)
	}
	return f.onWave(w, t)
}

func (f *fleet) onWave(w *workload, t time.Time) bool {
	x := (t.Sub(f.start) + w.phase) % f.period
	return x < f.period/2
}

// lastDemand is the latest moment at or before t at which w had demand
// that reached the store; zero if none.
func (f *fleet) lastDemand(w *workload, t time.Time) time.Time {
	ld := f.lastDemandSinceStart(w, t)
	if c := f.counted.Load(); c == 0 || ld.UnixNano() < c {
		return time.Time{}
	}
	return ld
}

// lastDemandSinceStart is the latest moment at or before t at which w had
// demand; zero if none since the fleet started.
func (f *fleet) lastDemandSinceStart(w *workload, t time.Time) time.Time {
	switch w.kind {
	case steady:
		return t
	case idle:
		return time.Time{}
	case waking:
		if t.Before(w.wakeAt) {
			return time.Time{}
		}
		return t
	}
	if f.onWave(w, t) {
		return t
	}
	x := (t.Sub(f.start) + w.phase) % f.period
	end := t.Add(-(x - f.period/2))
	if end.Before(f.start) {
		return time.Time{}
	}
	return end
}

// metadata is the ScaledObject's trigger, as a user writes it.
func (w *workload) metadata() map[string]string {
	md := map[string]string{"scalerAddress": "ebb.ebb-system.svc:9090", "target": "10", "activation": "0", "idleAfter": idleAfter.String()}
	if w.kind == gpu {
		md["signal"], md["target"], md["activation"] = "gpu", "70", "5"
		return md
	}
	md["signal"] = "requests"
	return md
}

// exporter serves the fleet's series as Istio's sidecars and dcgm-exporter
// write them: every scrape adds 5 requests a second of elapsed time to each
// workload with demand now.
type exporter struct {
	f    *fleet
	mu   sync.Mutex
	last time.Time
	addr string
}

func startExporter(f *fleet) (*exporter, error) {
	x := &exporter{f: f}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	x.addr = l.Addr().String()
	go http.Serve(l, x)
	return x, nil
}

func (x *exporter) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	x.mu.Lock()
	defer x.mu.Unlock()
	now := time.Now()
	dt := 0.0
	if !x.last.IsZero() {
		dt = now.Sub(x.last).Seconds()
		x.f.counted.CompareAndSwap(0, now.UnixNano())
	}
	x.last = now
	var b strings.Builder
	b.Grow(len(x.f.wl) * 260)
	b.WriteString("# TYPE istio_requests_total counter\n")
	for _, wl := range x.f.wl {
		if wl.kind == gpu {
			continue
		}
		if x.f.active(wl, now) {
			wl.count += math.Round(5 * dt)
		}
		fmt.Fprintf(&b, "istio_requests_total{reporter=\"destination\",source_workload=\"istio-ingressgateway\",source_workload_namespace=\"istio-system\",destination_workload=%q,destination_workload_namespace=%q,destination_service_name=%q,destination_service_namespace=%q,response_code=\"200\"} %.0f\n",
			wl.name, wl.namespace, wl.name, wl.namespace, 1000+wl.count)
	}
	b.WriteString("# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n")
	for _, wl := range x.f.wl {
		if wl.kind != gpu {
			continue
		}
		util := 0
		if x.f.active(wl, now) {
			util = 80
		}
		fmt.Fprintf(&b, "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"GPU-%08x-1c2d-4e5f-8a9b-0c1d2e3f4a5b\",device=\"nvidia0\",modelName=\"NVIDIA L4\",Hostname=\"node-%d\",namespace=%q,pod=%q,container=\"main\"} %d\n",
			wl.i, wl.i%50, wl.namespace, wl.pod, util)
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	_, _ = w.Write([]byte(b.String()))
}
