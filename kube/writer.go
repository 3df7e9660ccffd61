package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/scaler"
	"github.com/ebbscale/ebb/shutdown"
)

// Targets tells a StateWriter which object a workload is and which ebb.dev/
// annotations it already holds. The Watcher is one.
type Targets interface {
	Target(queries.WorkloadKey) (Target, bool)
}

// Clock is the time a StateWriter reads and waits on. The clocks of
// github.com/benbjohnson/clock and k8s.io/utils/clock both satisfy it.
type Clock interface {
	Now() time.Time
	Since(time.Time) time.Duration
	After(time.Duration) <-chan time.Time
}

// fieldManager names ebb as the writer of its annotations.
const fieldManager = "ebb"

// Conflicts are retried this many times in all, waiting conflictBackoff,
// then twice as long each time.
const (
	conflictAttempts = 5
	conflictBackoff  = 10 * time.Millisecond
)

// StateWriterConfig configures a StateWriter.
type StateWriterConfig struct {
	// Client talks to the API server. Required.
	Client kubernetes.Interface
	// Targets finds each workload's object and what it holds, usually the
	// Watcher. Required.
	Targets Targets
	// QPS is the sustained rate of patches; default 5.
	QPS float32
	// Burst is how many patches may go out at once; default 10.
	Burst int
	// Clock defaults to the real clock.
	Clock Clock
	// Logger defaults to a logger that discards.
	Logger *slog.Logger
	// Metrics, when set, receives ebb_annotation_writes_total.
	Metrics *Metrics
}

// StateWriter writes each workload's autoshutdown state onto its Deployment
// or StatefulSet as ebb.dev/last-active and ebb.dev/state, with a JSON merge
// patch, only when the object does not already hold those values, and no
// faster than its rate limit. It keeps only the latest state of each
// workload, so Publish never waits for the API server.
type StateWriter struct {
	cfg StateWriterConfig
	writePacer
	running atomic.Bool

	mu      sync.Mutex
	pending map[queries.WorkloadKey]scaler.WorkloadState
	queue   []queries.WorkloadKey // the keys of pending, oldest first
	signal  chan struct{}         // a Publish since the worker last looked

	// Owned by the worker.
	written map[queries.WorkloadKey]written
	warned  map[queries.WorkloadKey]string // the result last warned about
}

var _ scaler.StateSink = (*StateWriter)(nil)

// written is a patch the informer cache may not show yet.
type written struct {
	kind    Kind
	version string // the object's version in the cache when the patch was sent
	after   string // the version the patch made, to write on while the cache lags
	values  map[string]string
}

// NewStateWriter returns a StateWriter; call Run to start writing.
func NewStateWriter(cfg StateWriterConfig) (*StateWriter, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("state writer: no client")
	case cfg.Targets == nil:
		return nil, errors.New("state writer: no targets")
	case cfg.QPS < 0:
		return nil, fmt.Errorf("state writer: qps = %g, must be positive", cfg.QPS)
	case cfg.Burst < 0:
		return nil, fmt.Errorf("state writer: burst = %d, must be positive", cfg.Burst)
	}
	if cfg.QPS == 0 {
		cfg.QPS = 5
	}
	if cfg.Burst == 0 {
		cfg.Burst = 10
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &StateWriter{
		cfg:        cfg,
		writePacer: newWritePacer(cfg.QPS, cfg.Burst, cfg.Clock),
		pending:    make(map[queries.WorkloadKey]scaler.WorkloadState),
		signal:     make(chan struct{}, 1),
		written:    make(map[queries.WorkloadKey]written),
		warned:     make(map[queries.WorkloadKey]string),
	}, nil
}

// Publish queues a workload's state for writing, replacing any state of the
// same workload not yet written. It never blocks.
func (s *StateWriter) Publish(st scaler.WorkloadState) {
	s.mu.Lock()
	if _, ok := s.pending[st.Workload]; !ok {
		s.queue = append(s.queue, st.Workload)
	}
	s.pending[st.Workload] = st
	s.mu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

// Run writes published states, oldest workload first, until ctx is done,
// then returns nil. Start it once the Targets (the Watcher) have synced:
// the state of a workload they do not know is dropped. Run may be called
// once.
func (s *StateWriter) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("state writer: already running")
	}
	for {
		st, ok := s.next()
		if !ok {
			s.sweep()
			select {
			case <-s.signal:
				continue
			case <-ctx.Done():
				return nil
			}
		}
		if s.write(ctx, st) != nil {
			return nil // ctx is done
		}
	}
}

// next takes the state of the workload that has waited longest.
func (s *StateWriter) next() (scaler.WorkloadState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		s.queue = nil // let a long queue's array go
		return scaler.WorkloadState{}, false
	}
	key := s.queue[0]
	s.queue = s.queue[1:]
	st := s.pending[key]
	delete(s.pending, key)
	return st, true
}

// write brings one workload's annotations up to date. It returns an error
// only when ctx is done.
func (s *StateWriter) write(ctx context.Context, st scaler.WorkloadState) error {
	key := st.Workload
	ours := shutdown.StateAnnotations(st.Decision, st.LastActive)
	backoff := conflictBackoff
	for attempt := 1; ; attempt++ {
		t, ok := s.cfg.Targets.Target(key)
		if !ok {
			s.forget(key)
			s.cfg.Logger.Debug("no Deployment or StatefulSet of that name; state not written", "workload", key.String())
			return nil
		}
		want := keepLaterActive(t.Annotations, ours)
		if s.upToDate(key, t, want) {
			return nil
		}
		if err := s.take(ctx); err != nil {
			return err
		}
		after, err := s.patch(ctx, t.Kind, key, s.writeOn(key, t), want)
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case err == nil:
			s.cfg.Metrics.write(resultOK)
			s.written[key] = written{kind: t.Kind, version: t.ResourceVersion, after: after, values: want}
			if _, ok := s.warned[key]; ok {
				delete(s.warned, key)
				s.cfg.Logger.Info("workload state written again", "workload", key.String())
			}
			return nil
		case apierrors.IsNotFound(err):
			s.cfg.Metrics.write(resultNotFound)
			s.forget(key)
			s.cfg.Logger.Debug("workload deleted; state dropped", "workload", key.String(), "kind", string(t.Kind))
			return nil
		case apierrors.IsConflict(err):
			s.cfg.Metrics.write(resultConflict)
			if attempt == conflictAttempts {
				s.warnOnce(key, resultConflict, fmt.Errorf("patch %s: %d conflicts in a row: %w", t.Kind.resource(), attempt, err))
				return nil
			}
			select {
			case <-s.cfg.Clock.After(backoff):
			case <-ctx.Done():
				return ctx.Err()
			}
			backoff *= 2
		case apierrors.IsForbidden(err):
			s.cfg.Metrics.write(resultDenied)
			s.warnOnce(key, resultDenied, &AccessError{Verb: "patch", Resource: t.Kind.resource(), Namespace: key.Namespace, Err: apiStatus(err)})
			return nil
		default:
			s.cfg.Metrics.write(resultError)
			s.warnOnce(key, resultError, fmt.Errorf("patch %s: %w", t.Kind.resource(), err))
			return nil
		}
	}
}

// upToDate reports whether the object already holds want, by the cache or,
// while the cache has not caught up with ebb's last patch, by that patch.
func (s *StateWriter) upToDate(key queries.WorkloadKey, t Target, want map[string]string) bool {
	if w, ok := s.written[key]; ok {
		if w.kind == t.Kind && w.version == t.ResourceVersion {
			return maps.Equal(w.values, want)
		}
		delete(s.written, key) // the cache has moved on and is the truth again
	}
	return holds(t.Annotations, want)
}

// writeOn is the version of the object a patch is made against: the
// cache's, or while the cache has not caught up with ebb's own last patch,
// the version that patch made.
func (s *StateWriter) writeOn(key queries.WorkloadKey, t Target) string {
	if w, ok := s.written[key]; ok && w.kind == t.Kind && w.version == t.ResourceVersion && w.after != "" {
		return w.after
	}
	return t.ResourceVersion
}

// keepLaterActive returns want, with the object's own last-active in place
// of want's when the object's is later: another ebb replica, or this one
// before a restart, saw activity that this view of the store has not, and
// a last-active never moves back.
func keepLaterActive(have, want map[string]string) map[string]string {
	mine, ok := want[shutdown.AnnotationLastActive]
	if !ok {
		return want
	}
	theirs, ok := have[shutdown.AnnotationLastActive]
	if !ok || theirs == mine {
		return want
	}
	a, err1 := time.Parse(time.RFC3339, theirs)
	b, err2 := time.Parse(time.RFC3339, mine)
	if err1 != nil || err2 != nil || !a.After(b) {
		return want
	}
	kept := maps.Clone(want)
	kept[shutdown.AnnotationLastActive] = theirs
	return kept
}

// holds reports whether have has every key of want with the same value.
func holds(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// patch sets the annotations in want on version of the object, and leaves
// its others. A write made against a version ebb has not seen is refused
// with a Conflict, so what ebb writes was decided on what the object held.
func (s *StateWriter) patch(ctx context.Context, kind Kind, key queries.WorkloadKey, version string, want map[string]string) (after string, err error) {
	body, err := AnnotationsPatch(want, version)
	if err != nil {
		return "", err
	}
	opts := metav1.PatchOptions{FieldManager: fieldManager}
	apps := s.cfg.Client.AppsV1()
	var obj metav1.Object
	switch kind {
	case KindDeployment:
		obj, err = apps.Deployments(key.Namespace).Patch(ctx, key.Name, types.MergePatchType, body, opts)
	case KindStatefulSet:
		obj, err = apps.StatefulSets(key.Namespace).Patch(ctx, key.Name, types.MergePatchType, body, opts)
	default:
		return "", fmt.Errorf("unknown kind %q", kind)
	}
	if err != nil {
		return "", err
	}
	return obj.GetResourceVersion(), nil
}

// warnOnce logs a failed write at warn the first time it fails for this
// reason, and at debug after that until a write succeeds.
func (s *StateWriter) warnOnce(key queries.WorkloadKey, result string, err error) {
	if s.warned[key] == result {
		s.cfg.Logger.Debug("workload state not written", "workload", key.String(), "err", err)
		return
	}
	s.warned[key] = result
	s.cfg.Logger.Warn("workload state not written", "workload", key.String(), "err", err)
}

func (s *StateWriter) forget(key queries.WorkloadKey) {
	delete(s.written, key)
	delete(s.warned, key)
}

// sweep drops what the worker remembers of workloads the cache has caught
// up with or no longer has, so that nothing grows with workloads that come
// and go.
func (s *StateWriter) sweep() {
	for key, w := range s.written {
		if t, ok := s.cfg.Targets.Target(key); !ok || t.Kind != w.kind || t.ResourceVersion != w.version {
			delete(s.written, key)
		}
	}
	for key := range s.warned {
		if _, ok := s.cfg.Targets.Target(key); !ok {
			delete(s.warned, key)
		}
	}
}
