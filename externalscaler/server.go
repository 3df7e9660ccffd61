// Package externalscaler serves KEDA's external scaler gRPC API from the
// collector's snapshot: metadata becomes a typed trigger, values and activity
// come from memory, never from a query made during the call.
package externalscaler

import (
	"context"
	"encoding/binary"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/clock"
	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/scaler"
)

// Config configures a Server. How stale a value GetMetrics may serve and
// how long a trigger nobody asks about is cached are the collector's
// settings (scaler.Config's MaxStaleness and ForgetAfter), read from it, so
// the two cannot disagree.
type Config struct {
	// FirstWait bounds how long the first call for a trigger ebb has not
	// collected yet waits for its first collection (and the call's own
	// deadline bounds it too); default 2s. No other call ever waits.
	FirstWait time.Duration
	Parse     ParseOptions
	Clock     clock.Clock
	Logger    *slog.Logger
	// MaxWorkloads bounds how many distinct ScaledObjects are cached and
	// collected; a new one beyond it is refused with ResourceExhausted
	// until one is forgotten. Default DefaultMaxWorkloads.
	MaxWorkloads int
}

// Server implements KEDA's ExternalScaler service.
type Server struct {
	pb.UnimplementedExternalScalerServer

	collector *scaler.Collector
	cfg       Config

	mu    sync.RWMutex
	cache map[refKey]*entry // the newest variant first, linked by next

	done     chan struct{} // closed by Shutdown
	doneOnce sync.Once
	full     atomic.Bool // the workload limit refused a ScaledObject since the last sweep
}

var _ pb.ExternalScalerServer = (*Server)(nil)

type refKey struct{ namespace, name string }

// entry caches one trigger's parsed metadata, keyed by the ScaledObject and
// compared by the metadata itself. The fields every call reads come first.
type entry struct {
	next     *entry // another trigger (or edit) of the same ScaledObject
	md       metadata
	err      error
	interest atomic.Pointer[scaler.Interest]
	seen     atomic.Int64
	// waitUntil is the wall time, in unix nanoseconds, until which calls
	// wait for the interest's first collection: FirstWait after it was
	// registered. Later calls never wait.
	waitUntil atomic.Int64
	metric    string // trigger.MetricName(), built once
	trigger   Trigger
}

// metadata is a trigger's metadata as the cache keeps it: one string of
// its pairs, each key and value preceded by its length as a uvarint, in the
// same allocation as the ScaledObject's namespace and name. Comparing it with
// a request reads a line or two of ebb's memory, where a map of scattered
// strings costs a cache miss a string, and at 100,000 workloads each miss is
// a trip to memory.
type metadata string

// appendMetadata appends md's pairs, in map order, to buf.
func appendMetadata(buf []byte, md map[string]string) []byte {
	for k, v := range md {
		buf = binary.AppendUvarint(buf, uint64(len(k)))
		buf = append(buf, k...)
		buf = binary.AppendUvarint(buf, uint64(len(v)))
		buf = append(buf, v...)
	}
	return buf
}

// equal reports whether md holds exactly m's pairs; nil and empty are equal.
func (m metadata) equal(md map[string]string) bool {
	n := 0
	for s := string(m); s != ""; n++ {
		var k, v string
		k, s = cutField(s)
		v, s = cutField(s)
		if got, ok := md[k]; !ok || got != v {
			return false
		}
	}
	return n == len(md)
}

// cutField splits the length-prefixed field at the start of s from the rest.
// s is always appendMetadata's output.
func cutField(s string) (field, rest string) {
	n, i := 0, 0
	for shift := 0; ; shift += 7 {
		b := s[i]
		i++
		n |= int(b&0x7f) << shift
		if b < 0x80 {
			break
		}
	}
	return s[i : i+n], s[i+n:]
}

// maxEntriesPerRef bounds how many metadata variants of one ScaledObject are
// cached (one per trigger pointing at ebb, plus edits in flight).
const maxEntriesPerRef = 16

// DefaultFirstWait is Config.FirstWait's default.
const DefaultFirstWait = 2 * time.Second

// NewServer returns a Server answering from c.
func NewServer(c *scaler.Collector, cfg Config) *Server {
	if cfg.FirstWait == 0 {
		cfg.FirstWait = DefaultFirstWait
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.New()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxWorkloads <= 0 {
		cfg.MaxWorkloads = DefaultMaxWorkloads
	}
	return &Server{collector: c, cfg: cfg, cache: make(map[refKey]*entry), done: make(chan struct{})}
}

// resolve returns the parsed trigger for ref and its collector interest,
// parsing the metadata only the first time it is seen.
func (s *Server) resolve(ref *pb.ScaledObjectRef) (*entry, *scaler.Interest, error) {
	return s.resolveAt(ref, s.cfg.Clock.Now())
}

// resolveAt is resolve for a call that reads the clock itself.
func (s *Server) resolveAt(ref *pb.ScaledObjectRef, now time.Time) (*entry, *scaler.Interest, error) {
	if ref == nil {
		return nil, nil, status.Error(codes.InvalidArgument, "scaledObjectRef is missing")
	}
	key := refKey{ref.Namespace, ref.Name}
	e := s.lookup(key, ref.ScalerMetadata)
	if e == nil {
		var err error
		if e, err = s.insert(key, ref); err != nil {
			return nil, nil, err
		}
	}
	e.seen.Store(now.UnixNano())
	if e.err != nil {
		return nil, nil, status.Error(codes.InvalidArgument, e.err.Error())
	}
	in := e.interest.Load()
	if in == nil || in.Dead() {
		t := e.trigger
		e.waitUntil.Store(time.Now().Add(s.cfg.FirstWait).UnixNano())
		in = s.collector.Register(t.Shape, t.Workload, t.Activation, t.IdleAfter)
		e.interest.Store(in)
	} else {
		in.Touch(now)
	}
	return e, in, nil
}

func (s *Server) lookup(key refKey, md map[string]string) *entry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for e := s.cache[key]; e != nil; e = e.next {
		if e.md.equal(md) {
			return e
		}
	}
	return nil
}

func (s *Server) insert(key refKey, ref *pb.ScaledObjectRef) (*entry, error) {
	// The namespace, name and metadata in one allocation: the key compare
	// and the metadata compare then read the same lines.
	buf := make([]byte, 0, 64+len(key.namespace)+len(key.name))
	buf = append(append(buf, key.namespace...), key.name...)
	buf = appendMetadata(buf, ref.ScalerMetadata)
	all := string(buf)
	own := refKey{all[:len(key.namespace)], all[len(key.namespace) : len(key.namespace)+len(key.name)]}
	t, err := ParseTrigger(own.name, own.namespace, ref.ScalerMetadata, s.cfg.Parse)
	e := &entry{md: metadata(all[len(own.namespace)+len(own.name):]), trigger: t, metric: t.MetricName(), err: err}
	if err != nil {
		s.cfg.Logger.Warn("bad trigger metadata", "namespace", ref.Namespace, "scaledObject", ref.Name, "err", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	first := s.cache[key]
	if first == nil && len(s.cache) >= s.cfg.MaxWorkloads {
		return nil, s.refuse(key)
	}
	n := 0
	for old := first; old != nil; old = old.next {
		if old.md.equal(ref.ScalerMetadata) {
			return old, nil // another call inserted it first
		}
		if n++; n == maxEntriesPerRef-1 {
			old.next = nil // drop the oldest beyond the bound
		}
	}
	e.next = first
	// Assigning to a string key replaces the key held too, so the map's key
	// is always the newest entry's strings, next to its metadata.
	s.cache[own] = e
	return e, nil
}

// Sweep drops cached triggers not asked about within the collector's
// ForgetAfter.
func (s *Server) Sweep() {
	cutoff := s.cfg.Clock.Now().Add(-s.collector.ForgetAfter()).UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, first := range s.cache {
		var kept, last *entry
		for e := first; e != nil; e = e.next {
			if e.seen.Load() < cutoff {
				continue
			}
			if last == nil {
				kept = e
			} else {
				last.next = e
			}
			last = e
		}
		switch {
		case kept == nil:
			delete(s.cache, key)
		case kept != first:
			s.cache[key] = kept
		}
		if last != nil {
			last.next = nil
		}
	}
	if len(s.cache) < s.cfg.MaxWorkloads {
		s.full.Store(false)
	}
}

// RunSweeper calls Sweep every ForgetAfter until ctx is done.
func (s *Server) RunSweeper(ctx context.Context) {
	t := s.cfg.Clock.Ticker(s.collector.ForgetAfter())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Sweep()
		}
	}
}

// Shutdown ends every open stream, so that a graceful stop does not wait
// for KEDA to close them; KEDA then reconnects, to another replica if any.
func (s *Server) Shutdown() { s.doneOnce.Do(func() { close(s.done) }) }

// activity returns the idle policy's answer for in, waiting for in's
// first collection when the snapshot does not hold it yet.
func (s *Server) activity(ctx context.Context, e *entry, in *scaler.Interest) scaler.Activity {
	if a := s.collector.Snapshot().Activity(in); a != scaler.Unseen {
		return a
	}
	return s.awaitFirst(ctx, e, in)
}

// awaitFirst waits until a snapshot holds in, while ctx lasts and until
// FirstWait after in was registered, and returns in's activity then
// (Unseen if none came).
func (s *Server) awaitFirst(ctx context.Context, e *entry, in *scaler.Interest) scaler.Activity {
	ctx, cancel := context.WithDeadline(ctx, time.Unix(0, e.waitUntil.Load()))
	defer cancel()
	for {
		changed := in.Changes()
		if a := s.collector.Snapshot().Activity(in); a != scaler.Unseen || in.Dead() {
			return a
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return scaler.Unseen
		case <-s.done:
			return scaler.Unseen
		}
	}
}

// unknown is the error for an activity that is no answer: KEDA keeps the
// workload's replicas on a scaler error, so an unknown state neither wakes
// a workload nor shuts it down.
func (s *Server) unknown(e *entry, in *scaler.Interest, a scaler.Activity) error {
	msg := e.trigger.Workload.String() + " " + e.trigger.Shape.String() + ": activity unknown: "
	if a == scaler.Unseen {
		msg += "not collected yet: the store has not answered its first query"
		return status.Error(codes.Unavailable, msg)
	}
	o, _ := s.collector.Snapshot().Lookup(in)
	msg += o.Why
	if o.Known() {
		msg += " (data " + s.cfg.Clock.Now().Sub(o.At).Round(time.Second).String() + " old)"
	}
	if o.Err != nil {
		msg += ": " + o.Err.Error()
	}
	return status.Error(codes.Unavailable, msg)
}

// IsActive answers whether the workload should run at all; Unavailable
// when ebb does not know.
func (s *Server) IsActive(ctx context.Context, ref *pb.ScaledObjectRef) (*pb.IsActiveResponse, error) {
	e, in, err := s.resolve(ref)
	if err != nil {
		return nil, err
	}
	switch a := s.activity(ctx, e, in); a {
	case scaler.Active:
		return &pb.IsActiveResponse{Result: true}, nil
	case scaler.Idle:
		return &pb.IsActiveResponse{Result: false}, nil
	default:
		return nil, s.unknown(e, in, a)
	}
}

// StreamIsActive sends the activity once it is known and then on every
// change; while it is unknown the stream sends nothing, since KEDA acts on
// a pushed true at once. The stream waits on its own interest, so a tick
// wakes only the streams whose answer it changed; while the stream is open
// the interest is watched, and the collector does not forget it.
func (s *Server) StreamIsActive(ref *pb.ScaledObjectRef, stream pb.ExternalScaler_StreamIsActiveServer) error {
	_, in, err := s.resolve(ref)
	if err != nil {
		return err
	}
	unwatch := in.Watch()
	defer func() { unwatch() }()
	ctx := stream.Context()
	sent := scaler.Unseen // the last answer sent
	for {
		changed := in.Changes()
		if in.Dead() { // forgotten before the watch began
			unwatch()
			if _, in, err = s.resolve(ref); err != nil {
				unwatch = func() {}
				return err
			}
			unwatch = in.Watch()
			changed = in.Changes()
		}
		if a := s.collector.Snapshot().Activity(in); (a == scaler.Active || a == scaler.Idle) && a != sent {
			if err := stream.Send(&pb.IsActiveResponse{Result: a == scaler.Active}); err != nil {
				return err
			}
			sent = a
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.done:
			return status.Error(codes.Unavailable, "server shutting down")
		case <-changed:
		}
	}
}

// GetMetricSpec returns the trigger's per-replica target.
func (s *Server) GetMetricSpec(_ context.Context, ref *pb.ScaledObjectRef) (*pb.GetMetricSpecResponse, error) {
	e, _, err := s.resolve(ref)
	if err != nil {
		return nil, err
	}
	return metricSpec(e), nil
}

// specAnswer and metricsAnswer hold a response with its one-element list
// and its element, so that answering allocates once instead of three times.
type specAnswer struct {
	resp  pb.GetMetricSpecResponse
	list  [1]*pb.MetricSpec
	value pb.MetricSpec
}

type metricsAnswer struct {
	resp  pb.GetMetricsResponse
	list  [1]*pb.MetricValue
	value pb.MetricValue
}

func metricSpec(e *entry) *pb.GetMetricSpecResponse {
	a := &specAnswer{}
	a.value.MetricName = e.metric
	a.value.TargetSize = max(1, int64(math.Round(e.trigger.Target)))
	a.value.TargetSizeFloat = e.trigger.Target
	a.list[0] = &a.value
	a.resp.MetricSpecs = a.list[:]
	return &a.resp
}

// StreamMetricSpec sends the spec when the stream opens. A trigger's spec
// depends only on its metadata, and KEDA opens a new stream when that
// changes, so the stream then stays open without further messages.
func (s *Server) StreamMetricSpec(ref *pb.ScaledObjectRef, stream pb.ExternalScaler_StreamMetricSpecServer) error {
	e, _, err := s.resolve(ref)
	if err != nil {
		return err
	}
	if err := stream.Send(metricSpec(e)); err != nil {
		return err
	}
	select {
	case <-stream.Context().Done():
		return nil
	case <-s.done:
		return status.Error(codes.Unavailable, "server shutting down")
	}
}

// GetMetrics returns the workload's total value; KEDA's HPA divides it by
// the target. The first call for a new trigger waits for its first
// collection (see Config.FirstWait). A value missing or older than
// MaxStaleness is Unavailable, so KEDA's fallback applies. While the
// activator holds requests for the workload, a requests trigger answers at
// least its target: one replica.
func (s *Server) GetMetrics(ctx context.Context, req *pb.GetMetricsRequest) (*pb.GetMetricsResponse, error) {
	if req == nil {
		return nil, status.Error(codes.InvalidArgument, "request is missing")
	}
	now := s.cfg.Clock.Now()
	e, in, err := s.resolveAt(req.ScaledObjectRef, now)
	if err != nil {
		return nil, err
	}
	snap := s.collector.Snapshot()
	v, err := snap.Value(in, now, s.collector.MaxStaleness())
	if err != nil && snap.Activity(in) == scaler.Unseen {
		if s.awaitFirst(ctx, e, in) == scaler.Unseen {
			return nil, s.unknown(e, in, scaler.Unseen)
		}
		now = s.cfg.Clock.Now()
		v, err = s.collector.Snapshot().Value(in, now, s.collector.MaxStaleness())
	}
	if in.Held() > 0 && e.trigger.Shape.Signal == queries.SignalRequests && (err != nil || v < e.trigger.Target) {
		// Requests held for the workload are demand the store has not
		// seen yet: at least one replica's worth.
		v, err = e.trigger.Target, nil
	}
	if err != nil {
		return nil, status.Error(codes.Unavailable, e.trigger.Workload.String()+" "+e.trigger.Shape.String()+": "+err.Error())
	}
	a := &metricsAnswer{}
	a.value.MetricName = e.metric
	a.value.MetricValue = int64(math.Round(v))
	a.value.MetricValueFloat = v
	a.list[0] = &a.value
	a.resp.MetricValues = a.list[:]
	return &a.resp, nil
}
