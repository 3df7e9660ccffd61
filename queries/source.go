// Package queries holds ebb's scaling signals and the Source they are asked
// of: signal shapes, their samples, the typed QueryError, and the catalog
// (PromQL per signal shape, model servers' metric names in modelserver.go). The Prometheus HTTP client that answers them is
// in package promapi; enforcement of users' expressions is in package
// enforce; the collector that batches the shapes of every workload is
// scaler.Collector.
package queries

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Signal names a kind of scaling signal.
type Signal string

// The signals ebb knows.
const (
	// SignalRequests is the request rate to a workload, in requests per second.
	SignalRequests Signal = "requests"
	// SignalGPU is the sum over a workload's pods of each pod's mean GPU
	// utilization across its GPUs, in percent.
	SignalGPU Signal = "gpu"
	// SignalQuery is a user's own expression, reduced to one value.
	SignalQuery Signal = "query"
	// SignalQueue is the total over a workload's replicas of the requests
	// waiting in their model servers' queues.
	SignalQueue Signal = "queue"
	// SignalRunning is the total over a workload's replicas of the requests
	// their model servers are processing.
	SignalRunning Signal = "running"
	// SignalKVCache is the sum over a workload's replicas of each replica's
	// KV-cache usage, in percent (as SignalGPU sums utilization).
	SignalKVCache Signal = "kvcache"
	// SignalTTFT is the workload's time to first token at a quantile, in
	// seconds, from its model servers' histograms.
	SignalTTFT Signal = "ttft"
)

// Signals lists every signal, in the order the docs name them.
var Signals = []Signal{SignalRequests, SignalGPU, SignalQuery, SignalQueue, SignalRunning, SignalKVCache, SignalTTFT}

// ParseSignal returns the signal named s.
func ParseSignal(s string) (Signal, error) {
	for _, sig := range Signals {
		if Signal(s) == sig {
			return sig, nil
		}
	}
	return "", fmt.Errorf("unknown signal %q, want %s", s, SignalNames())
}

// SignalNames lists the signals for messages: "requests, gpu, query,
// queue, running, kvcache or ttft".
func SignalNames() string { return orList(Signals) }

// ModelServer reports whether the signal reads a model server's own
// metrics (queue, running, kvcache, ttft), whose names Shape.Server picks.
func (s Signal) ModelServer() bool {
	return s == SignalQueue || s == SignalRunning || s == SignalKVCache || s == SignalTTFT
}

// CountsRequests reports whether the signal's value is a number of requests
// a model server holds (waiting or running): while it is above zero the
// workload is serving, whatever its activation.
func (s Signal) CountsRequests() bool { return s == SignalQueue || s == SignalRunning }

// Server names the kind of model server whose metrics a model-server signal
// reads.
type Server string

// The model servers ebb knows.
const (
	// ServerAuto reads whichever of the servers' metrics a workload exposes,
	// in one query that covers them all.
	ServerAuto   Server = "auto"
	ServerVLLM   Server = "vllm"
	ServerTGI    Server = "tgi"
	ServerSGLang Server = "sglang"
	ServerTriton Server = "triton"
)

// Servers lists every server kind, auto first.
var Servers = []Server{ServerAuto, ServerVLLM, ServerTGI, ServerSGLang, ServerTriton}

// ParseServer returns the server kind named s.
func ParseServer(s string) (Server, error) {
	for _, k := range Servers {
		if Server(s) == k {
			return k, nil
		}
	}
	return "", fmt.Errorf("unknown server %q, want %s", s, orList(Servers))
}

// DefaultQuantile is the ttft quantile when a trigger names none.
const DefaultQuantile = 0.9

// orList renders "a, b or c".
func orList[T ~string](xs []T) string {
	var b strings.Builder
	for i, x := range xs {
		switch {
		case i == 0:
		case i == len(xs)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(string(x))
	}
	return b.String()
}

// WorkloadKey names a Deployment or StatefulSet.
type WorkloadKey struct {
	Namespace string
	Name      string
}

func (k WorkloadKey) String() string { return k.Namespace + "/" + k.Name }

// Shape is what one batched query is about: every workload on the same shape
// is answered by the same query in a tick. Shape is comparable and is used as
// a map key.
type Shape struct {
	Signal Signal
	// Window is the rate or averaging window of every signal but query,
	// whose ranges are part of the expression: zero for query.
	Window time.Duration
	// Server is, for the model-server signals only, the kind of server
	// whose metric names are read (ServerAuto: every kind's, in one query).
	Server Server
	// Quantile is, for SignalTTFT only, the quantile in (0, 1).
	Quantile float64
	// Expr is, for SignalQuery only, the namespace-enforced expression
	// (see package enforce). Its namespace is part of the text, so two ScaledObjects
	// share a shape only when they may share a value.
	Expr string
}

// String returns a short, stable name for logs and metric labels' values.
func (s Shape) String() string {
	switch {
	case s.Signal == SignalQuery:
		return string(s.Signal) + ":" + s.Expr
	case s.Signal == SignalTTFT:
		return string(s.Signal) + ":" + string(s.Server) + ":" + strconv.FormatFloat(s.Quantile, 'g', -1, 64) + "[" + FormatWindow(s.Window) + "]"
	case s.Signal.ModelServer():
		return string(s.Signal) + ":" + string(s.Server) + "[" + FormatWindow(s.Window) + "]"
	}
	return string(s.Signal) + "[" + FormatWindow(s.Window) + "]"
}

// FormatWindow renders d as a PromQL duration ("1m", "30s", "1m30s").
func FormatWindow(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	var b strings.Builder
	if h := d / time.Hour; h > 0 {
		b.WriteString(strconv.FormatInt(int64(h), 10) + "h")
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		b.WriteString(strconv.FormatInt(int64(m), 10) + "m")
		d -= m * time.Minute
	}
	if s := d / time.Second; s > 0 {
		b.WriteString(strconv.FormatInt(int64(s), 10) + "s")
		d -= s * time.Second
	}
	if ms := d / time.Millisecond; ms > 0 {
		b.WriteString(strconv.FormatInt(int64(ms), 10) + "ms")
	}
	return b.String()
}

// Sample is one workload's value in a batched result. For SignalQuery the
// result holds exactly one sample with an empty Workload: the value of the
// whole expression.
type Sample struct {
	Workload WorkloadKey
	Value    float64
}

// Source evaluates signal shapes for all workloads at once.
//
// A nil error with no sample for a workload means the store answered and has
// no series for it: no traffic. Any error means the values are unknown.
type Source interface {
	// Instant evaluates shape at the instant at and returns one sample per
	// workload the store has series for.
	Instant(ctx context.Context, shape Shape, at time.Time) ([]Sample, error)
}

// QueryError reports a query that failed: the store could not be reached,
// timed out, refused the query, or answered something that is not a valid
// response. Values behind a QueryError are unknown, never zero.
type QueryError struct {
	Shape Shape
	// Kind is a short machine-readable class: "timeout", "unreachable",
	// "http_status", "bad_data", "bad_response", "canceled".
	Kind string
	// Status is the HTTP status, when the store answered one.
	Status int
	Err    error
}

func (e *QueryError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("query %s: %s (HTTP %d): %v", e.Shape, e.Kind, e.Status, e.Err)
	}
	return fmt.Sprintf("query %s: %s: %v", e.Shape, e.Kind, e.Err)
}

func (e *QueryError) Unwrap() error { return e.Err }

// The kinds of QueryError.
const (
	KindTimeout     = "timeout"      // the query or the store timed out
	KindUnreachable = "unreachable"  // no answer: connection, DNS or TLS failure
	KindHTTPStatus  = "http_status"  // an HTTP error status other than a refused query
	KindWrongPath   = "wrong_path"   // HTTP 404 (VictoriaMetrics: 400 unsupported path): the URL is not the root of a Prometheus API
	KindAuth        = "unauthorized" // HTTP 401 or 403: credentials missing or refused
	KindBadData     = "bad_data"     // the query was refused, by the store or before sending
	KindBadResponse = "bad_response" // the answer is not a valid response for the query
	KindCanceled    = "canceled"     // the caller's context was canceled
)

// LastActive is when a workload's value was last above an activation level.
type LastActive struct {
	Workload WorkloadKey
	At       time.Time
}

// LastActiveSource is a Source that can also look back. After a restart ebb
// recovers each workload's idle clock from it, so that a restart neither
// resets nor shortens an idle period.
type LastActiveSource interface {
	Source
	// LastActive evaluates shape at every step from at-lookback to at and
	// returns, for each workload whose value was above activation at some
	// step, the last such step. Workloads never above it are absent. For
	// SignalQuery the single result has an empty Workload.
	LastActive(ctx context.Context, shape Shape, activation float64, lookback, step time.Duration, at time.Time) ([]LastActive, error)
}

// Pinger is a Source that can check that its store answers at all, for
// readiness before any workload is watched.
type Pinger interface {
	Ping(ctx context.Context, at time.Time) error
}
