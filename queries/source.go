// Package queries holds ebb's scaling signals and the Source they are asked
// of: signal shapes, their samples, the typed QueryError, and the catalog
// (PromQL per signal shape). The Prometheus HTTP client that answers them is
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
)

// ParseSignal returns the signal named s.
func ParseSignal(s string) (Signal, error) {
	switch Signal(s) {
	case SignalRequests, SignalGPU, SignalQuery:
		return Signal(s), nil
	}
	return "", fmt.Errorf("unknown signal %q, want requests, gpu or query", s)
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
	// Window is the rate or averaging window of requests and gpu; zero for
	// query, whose ranges are part of the expression.
	Window time.Duration
	// Expr is, for SignalQuery only, the namespace-enforced expression
	// (see package enforce). Its namespace is part of the text, so two ScaledObjects
	// share a shape only when they may share a value.
	Expr string
}

// String returns a short, stable name for logs and metric labels' values.
func (s Shape) String() string {
	if s.Signal == SignalQuery {
		return string(s.Signal) + ":" + s.Expr
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
