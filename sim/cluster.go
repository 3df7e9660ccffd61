package sim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/ebbscale/ebb/queries"
)

// Workload is one simulated Deployment or StatefulSet.
type Workload struct {
	Key queries.WorkloadKey
	// Traffic is the workload's demand. It keeps arriving, and is reported
	// as a request rate, whatever the number of replicas (as a caller's or
	// a gateway's metrics show it).
	Traffic Traffic
	// Replicas is the number of running pods.
	Replicas int
	// GPUsPerReplica is the number of GPUs each pod holds; 0 means a
	// workload without GPUs, which has no gpu series.
	GPUsPerReplica int
	// GPUTimePerRequest is how long each request keeps a replica's GPUs
	// busy, for Traffic that does not implement GPUWork (Replay does).
	GPUTimePerRequest time.Duration
	// Server, when set, makes the workload a continuously batching model
	// server: it answers the model-server signals and its gpu signal from
	// the server's model (see BatchingServer), not from GPU time.
	Server *BatchingServer
}

// Cluster is a synthetic cluster of workloads that answers the requests and
// gpu signals as a Prometheus with Istio and dcgm-exporter metrics would,
// computed exactly from each workload's traffic, and the model-server
// signals of workloads that are continuously batching servers (see
// BatchingServer). It is safe for concurrent use.
//
// Instant answers, for a shape with window w at instant at:
//   - requests: each workload's mean request rate over (at-w, at] in req/s;
//     a workload whose Traffic is Off has no series, all others have one,
//     with zero replicas too;
//   - gpu: for each workload with GPUs and at least one replica, the sum
//     over its replicas of their mean utilization over the window, load
//     spread evenly: min(100*replicas, 100*busy), where busy is the mean
//     number of replicas' worth of GPU work in service over the window;
//   - query: the value of a function registered with HandleQuery for the
//     shape's expression; the simulator evaluates no PromQL.
//
// Replica counts are the current ones: the cluster keeps no history, so
// a gpu window that spans a change of replicas is computed with the new
// count. Demand is not queued: requests that arrive while a workload has
// no replicas are counted in its request rate, never served later.
type Cluster struct {
	mu        sync.RWMutex
	workloads []*workload // sorted by key
	byKey     map[queries.WorkloadKey]*workload
	handlers  map[string]func(at time.Time) float64
	fault     error

	countMu sync.Mutex
	counts  map[queries.Shape]int
}

var _ queries.Source = (*Cluster)(nil)

type workload struct {
	Workload
	work   GPUWork // nil: charge GPUTimePerRequest per request
	silent bool    // Off: no request series
	batch  *batching
}

// NewCluster returns a cluster of ws; see Add.
func NewCluster(ws ...Workload) (*Cluster, error) {
	c := &Cluster{
		byKey:    make(map[queries.WorkloadKey]*workload),
		handlers: make(map[string]func(time.Time) float64),
		counts:   make(map[queries.Shape]int),
	}
	for _, w := range ws {
		if err := c.Add(w); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Add adds a workload. Its key must be new, its Traffic set and its
// counts not negative.
func (c *Cluster) Add(w Workload) error {
	switch {
	case w.Key.Namespace == "" || w.Key.Name == "":
		return fmt.Errorf("add workload %q: namespace and name must not be empty", w.Key)
	case w.Traffic == nil:
		return fmt.Errorf("add workload %s: no traffic", w.Key)
	case w.Replicas < 0:
		return fmt.Errorf("add workload %s: replicas = %d, must be >= 0", w.Key, w.Replicas)
	case w.GPUsPerReplica < 0:
		return fmt.Errorf("add workload %s: GPUs per replica = %d, must be >= 0", w.Key, w.GPUsPerReplica)
	case w.GPUTimePerRequest < 0:
		return fmt.Errorf("add workload %s: GPU time per request = %v, must be >= 0", w.Key, w.GPUTimePerRequest)
	}
	if w.Server != nil {
		if err := w.Server.validate(); err != nil {
			return fmt.Errorf("add workload %s: %w", w.Key, err)
		}
	}
	sw := &workload{Workload: w}
	if w.Server != nil {
		sw.batch = &batching{BatchingServer: *w.Server}
	}
	sw.work, _ = w.Traffic.(GPUWork)
	_, sw.silent = w.Traffic.(off)

	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.byKey[w.Key]; dup {
		return fmt.Errorf("add workload %s: already exists", w.Key)
	}
	i, _ := slices.BinarySearchFunc(c.workloads, w.Key, func(x *workload, k queries.WorkloadKey) int {
		return compareKeys(x.Key, k)
	})
	c.workloads = slices.Insert(c.workloads, i, sw)
	c.byKey[w.Key] = sw
	return nil
}

func compareKeys(a, b queries.WorkloadKey) int {
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}

// SetReplicas sets the number of running pods of the workload key, as the
// HPA or KEDA would.
func (c *Cluster) SetReplicas(key queries.WorkloadKey, n int) error {
	if n < 0 {
		return fmt.Errorf("set replicas of %s: %d, must be >= 0", key, n)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.byKey[key]
	if !ok {
		return fmt.Errorf("set replicas of %s: no such workload", key)
	}
	w.Replicas = n
	return nil
}

// Replicas returns the number of running pods of the workload key and
// whether it exists.
func (c *Cluster) Replicas(key queries.WorkloadKey) (int, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	w, ok := c.byKey[key]
	if !ok {
		return 0, false
	}
	return w.Replicas, true
}

// Workloads returns the workloads sorted by key, with their current replicas.
func (c *Cluster) Workloads() []Workload {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]Workload, len(c.workloads))
	for i, w := range c.workloads {
		out[i] = w.Workload
	}
	return out
}

// HandleQuery registers f as the value of the query expression expr: an
// Instant of a query shape whose Expr is expr returns one sample, with an
// empty Workload, of value f(at); if f returns NaN, no sample (the query
// matched no series). f is called without the cluster's lock held, so it may
// read the cluster. A nil f removes the handler. Instant answers other query
// shapes with a *queries.QueryError of Kind "bad_data".
func (c *Cluster) HandleQuery(expr string, f func(at time.Time) float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f == nil {
		delete(c.handlers, expr)
		return
	}
	c.handlers[expr] = f
}

// SetFault makes every Instant fail with err until SetFault(nil). A
// *queries.QueryError is returned as it is, or as a copy with the query's
// Shape if its Shape is zero; any other err is returned wrapped in a
// *queries.QueryError of Kind "timeout" if it is context.DeadlineExceeded,
// else "unreachable".
func (c *Cluster) SetFault(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fault = err
}

// Queries returns how many times Instant was called for each shape,
// whether or not the call succeeded.
func (c *Cluster) Queries() map[queries.Shape]int {
	c.countMu.Lock()
	defer c.countMu.Unlock()
	out := make(map[queries.Shape]int, len(c.counts))
	for s, n := range c.counts {
		out[s] = n
	}
	return out
}

// Instant evaluates shape at the instant at, for all workloads at once.
func (c *Cluster) Instant(ctx context.Context, shape queries.Shape, at time.Time) ([]queries.Sample, error) {
	c.countMu.Lock()
	c.counts[shape]++
	c.countMu.Unlock()

	if err := ctx.Err(); err != nil {
		kind := "canceled"
		if errors.Is(err, context.DeadlineExceeded) {
			kind = "timeout"
		}
		return nil, &queries.QueryError{Shape: shape, Kind: kind, Err: err}
	}

	c.mu.RLock()
	if err := c.fault; err != nil {
		c.mu.RUnlock()
		return nil, faultError(shape, err)
	}
	if shape.Signal == queries.SignalQuery {
		f := c.handlers[shape.Expr]
		c.mu.RUnlock()
		return evalQuery(shape, f, at)
	}
	defer c.mu.RUnlock()

	if shape.Signal != queries.SignalRequests && shape.Signal != queries.SignalGPU && !shape.Signal.ModelServer() {
		return nil, badData(shape, fmt.Errorf("unknown signal %q", shape.Signal))
	}
	if shape.Window <= 0 {
		return nil, badData(shape, fmt.Errorf("window = %v, must be > 0", shape.Window))
	}
	if shape.Signal.ModelServer() {
		return c.modelServers(shape, at), nil
	}
	from := at.Add(-shape.Window)
	secs := shape.Window.Seconds()

	if shape.Signal == queries.SignalRequests {
		out := make([]queries.Sample, 0, len(c.workloads))
		for _, w := range c.workloads {
			if w.silent {
				continue
			}
			out = append(out, queries.Sample{Workload: w.Key, Value: w.Traffic.Requests(from, at) / secs})
		}
		return out, nil
	}

	var out []queries.Sample
	for _, w := range c.workloads {
		if w.GPUsPerReplica == 0 || w.Replicas == 0 {
			continue // no pods with GPUs: dcgm-exporter has nothing to report
		}
		if out == nil {
			out = make([]queries.Sample, 0, len(c.workloads))
		}
		if w.batch != nil {
			if v, ok := w.batched(queries.SignalGPU, shape.Window, at); ok {
				out = append(out, queries.Sample{Workload: w.Key, Value: v})
			}
			continue
		}
		var busy float64
		if w.work != nil {
			busy = w.work.BusySeconds(from, at)
		} else {
			busy = w.Traffic.Requests(from, at) * w.GPUTimePerRequest.Seconds()
		}
		out = append(out, queries.Sample{Workload: w.Key, Value: min(100*float64(w.Replicas), 100*busy/secs)})
	}
	return out, nil
}

// modelServers answers a model-server shape: one sample per workload with
// a BatchingServer of the shape's kind (any, for auto) and replicas (a
// server without pods has no metrics).
func (c *Cluster) modelServers(shape queries.Shape, at time.Time) []queries.Sample {
	var out []queries.Sample
	for _, w := range c.workloads {
		if w.batch == nil || w.Replicas == 0 || shape.Server != queries.ServerAuto && shape.Server != w.batch.Kind {
			continue
		}
		if v, ok := w.batched(shape.Signal, shape.Window, at); ok {
			out = append(out, queries.Sample{Workload: w.Key, Value: v})
		}
	}
	return out
}

// batched advances w's server to at and returns its value of signal over
// the window; false when the server has no history in the window yet.
func (w *workload) batched(signal queries.Signal, window time.Duration, at time.Time) (float64, bool) {
	b := w.batch
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance(w.Traffic, w.Replicas, at)
	steps := b.window(at, window)
	if len(steps) == 0 {
		return 0, false
	}
	return b.value(signal, steps), true
}

func evalQuery(shape queries.Shape, f func(time.Time) float64, at time.Time) ([]queries.Sample, error) {
	if f == nil {
		return nil, badData(shape, errors.New("the simulator evaluates only the requests and gpu signals and queries registered with HandleQuery"))
	}
	v := f(at)
	if math.IsNaN(v) {
		return nil, nil
	}
	return []queries.Sample{{Value: v}}, nil
}

func badData(shape queries.Shape, err error) error {
	return &queries.QueryError{Shape: shape, Kind: "bad_data", Err: err}
}

func faultError(shape queries.Shape, err error) error {
	if qe, ok := err.(*queries.QueryError); ok && qe.Shape == (queries.Shape{}) {
		cp := *qe
		cp.Shape = shape
		return &cp
	}
	if qe := (*queries.QueryError)(nil); errors.As(err, &qe) {
		return err
	}
	kind := "unreachable"
	if errors.Is(err, context.DeadlineExceeded) {
		kind = "timeout"
	}
	return &queries.QueryError{Shape: shape, Kind: kind, Err: err}
}
