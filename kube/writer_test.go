package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	benclock "github.com/benbjohnson/clock"
	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/scaler"
	"github.com/ebbscale/ebb/shutdown"
)

// The rest of ebb's clock fits a StateWriter.
var _ Clock = benclock.New()

var t0 = time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC)

var deploymentsGR = schema.GroupResource{Group: "apps", Resource: "deployments"}

func activeState(k queries.WorkloadKey, lastActive time.Time) scaler.WorkloadState {
	return scaler.WorkloadState{Workload: k, LastActive: lastActive, Decision: shutdown.Decision{
		Active: true, Reason: shutdown.ReasonRecent, Detail: shutdown.Detail{IdleAfter: 15 * time.Minute},
	}}
}

func idleState(k queries.WorkloadKey, lastActive time.Time) scaler.WorkloadState {
	return scaler.WorkloadState{Workload: k, LastActive: lastActive, Decision: shutdown.Decision{
		Reason: shutdown.ReasonIdle, Detail: shutdown.Detail{IdleAfter: 15 * time.Minute},
	}}
}

func annotationsOf(st scaler.WorkloadState) map[string]string {
	return shutdown.StateAnnotations(st.Decision, st.LastActive)
}

// rig is a StateWriter on a fake clientset, with a synced Watcher as its
// Targets and a fake clock.
type rig struct {
	client  *fake.Clientset
	watcher *Watcher
	writer  *StateWriter
	clock   *clocktesting.FakeClock
	reg     *prometheus.Registry
	logs    *logRecorder
	t       *testing.T
}

// newRig starts a Watcher on client (add reactors before) and returns a
// writer that is not running.
func newRig(t *testing.T, client *fake.Clientset, cfg StateWriterConfig) *rig {
	t.Helper()
	r := &rig{
		client: client,
		clock:  clocktesting.NewFakeClock(t0),
		reg:    prometheus.NewRegistry(),
		logs:   &logRecorder{},
		t:      t,
	}
	r.watcher = startWatcher(t, WatcherConfig{Client: client})
	cfg.Client, cfg.Targets, cfg.Clock, cfg.Metrics, cfg.Logger = client, r.watcher, r.clock, NewMetrics(r.reg), slog.New(r.logs)
	w, err := NewStateWriter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.writer = w
	return r
}

// drain writes every pending state in the test's goroutine. Only for
// writes that do not wait on the clock.
func (r *rig) drain(t *testing.T) {
	t.Helper()
	for {
		st, ok := r.writer.next()
		if !ok {
			return
		}
		if err := r.writer.write(context.Background(), st); err != nil {
			t.Fatal(err)
		}
	}
}

// run runs the writer's worker until the test ends.
func (r *rig) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.writer.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// step advances the clock by d once the writer waits on it.
func (r *rig) step(t *testing.T, d time.Duration) {
	t.Helper()
	eventually(t, "the writer to wait on the clock", r.clock.HasWaiters)
	r.clock.Step(d)
}

func (r *rig) patches() []k8stesting.PatchAction {
	var out []k8stesting.PatchAction
	for _, a := range r.client.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok && a.GetVerb() == "patch" {
			out = append(out, p)
		}
	}
	return out
}

func (r *rig) writes(result string) float64 {
	return metricValue(r.t, r.reg, "ebb_annotation_writes_total", result)
}

// patched returns the annotations a patch sets, failing on anything but a
// JSON merge patch of metadata.annotations.
func patched(t *testing.T, p k8stesting.PatchAction) map[string]string {
	t.Helper()
	if p.GetPatchType() != types.MergePatchType {
		t.Fatalf("patch type: got %s, want %s", p.GetPatchType(), types.MergePatchType)
	}
	var body map[string]map[string]map[string]string
	if err := json.Unmarshal(p.GetPatch(), &body); err != nil || len(body) != 1 || len(body["metadata"]) != 1 {
		t.Fatalf("patch %s: want only metadata.annotations (%v)", p.GetPatch(), err)
	}
	return body["metadata"]["annotations"]
}

func TestStateWriterPatchesOnlyOnChange(t *testing.T) {
	client := fake.NewClientset(
		deployment("team-a", "web", map[string]string{"team.example/owner": "alice"}),
		statefulSet("team-a", "db", nil),
	)
	r := newRig(t, client, StateWriterConfig{})
	web, db := key("team-a", "web"), key("team-a", "db")
	a := activeState(web, t0.Add(-3*time.Minute))

	r.writer.Publish(a)
	r.drain(t)
	ps := r.patches()
	if len(ps) != 1 || ps[0].GetResource().Resource != "deployments" || ps[0].GetNamespace() != "team-a" || ps[0].GetName() != "web" {
		t.Fatalf("got patches %v, want one of deployments team-a/web", ps)
	}
	if got, want := patched(t, ps[0]), annotationsOf(a); !maps.Equal(got, want) {
		t.Fatalf("patch: got %v, want %v", got, want)
	}
	d, err := client.AppsV1().Deployments("team-a").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Annotations["team.example/owner"] != "alice" || d.Annotations[shutdown.AnnotationLastActive] != "2026-03-28T11:57:00Z" ||
		d.Annotations[shutdown.AnnotationState] != "active: activity within idle-after 15m" {
		t.Fatalf("annotations after the patch: %v", d.Annotations)
	}

	// The same state again, before and after the cache has caught up.
	r.writer.Publish(a)
	r.drain(t)
	eventually(t, "the cache to show the patch", func() bool {
		tg, _ := r.watcher.Target(web)
		return holds(tg.Annotations, annotationsOf(a))
	})
	r.writer.Publish(a)
	r.drain(t)
	if n := len(r.patches()); n != 1 {
		t.Fatalf("after publishing the same state: got %d patches, want 1", n)
	}

	// A new state, then back again before the cache could know.
	r.writer.Publish(idleState(web, t0.Add(-3*time.Minute)))
	r.drain(t)
	r.writer.Publish(a)
	r.drain(t)
	if n := len(r.patches()); n != 3 {
		t.Fatalf("after idle and active again: got %d patches, want 3", n)
	}

	r.writer.Publish(idleState(db, time.Time{}))
	r.drain(t)
	ps = r.patches()
	if p := ps[len(ps)-1]; p.GetResource().Resource != "statefulsets" || p.GetName() != "db" {
		t.Fatalf("got %s %s, want a patch of statefulsets db", p.GetResource().Resource, p.GetName())
	}
	if got := patched(t, ps[len(ps)-1]); len(got) != 1 || got[shutdown.AnnotationState] != "idle: no activity within idle-after 15m" {
		t.Errorf("never active: got %v, want only the state", got)
	}
	if got := r.writes(resultOK); got != 4 {
		t.Errorf("ok writes: got %g, want 4", got)
	}
}

func TestStateWriterSkipsWhatTheObjectHolds(t *testing.T) {
	a := activeState(key("team-a", "web"), t0)
	client := fake.NewClientset(deployment("team-a", "web", annotationsOf(a)))
	r := newRig(t, client, StateWriterConfig{})
	r.writer.Publish(a)
	r.writer.Publish(activeState(key("team-a", "nobody"), t0)) // no such workload
	r.drain(t)
	if ps := r.patches(); len(ps) != 0 {
		t.Fatalf("got %d patches, want none", len(ps))
	}
}

func TestStateWriterRateLimit(t *testing.T) {
	const n, burst = 10, 3
	var objs []runtime.Object
	for i := range n {
		objs = append(objs, deployment("team-a", fmt.Sprintf("svc-%d", i), nil))
	}
	r := newRig(t, fake.NewClientset(objs...), StateWriterConfig{QPS: 1, Burst: burst})
	for i := range n {
		r.writer.Publish(activeState(key("team-a", fmt.Sprintf("svc-%d", i)), t0))
	}
	r.run(t)

	eventually(t, "the writer to run out of tokens", r.clock.HasWaiters)
	if got := len(r.patches()); got != burst {
		t.Fatalf("before the clock moves: got %d patches, want the burst %d", got, burst)
	}
	r.clock.Step(500 * time.Millisecond) // half a token
	if got := len(r.patches()); got != burst {
		t.Fatalf("after half a token: got %d patches, want %d", got, burst)
	}
	for want := burst + 1; want <= n; want++ {
		r.step(t, time.Second)
		eventually(t, fmt.Sprintf("patch %d", want), func() bool {
			return len(r.patches()) == want && (want == n || r.clock.HasWaiters())
		})
	}
	for i, p := range r.patches() {
		if want := fmt.Sprintf("svc-%d", i); p.GetName() != want {
			t.Errorf("patch %d: got %s, want %s: oldest first", i, p.GetName(), want)
		}
	}
}

func TestStateWriterRetriesConflict(t *testing.T) {
	client := fake.NewClientset(deployment("team-a", "web", nil))
	var calls atomic.Int32
	client.PrependReactor("patch", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if calls.Add(1) <= 2 {
			return true, nil, apierrors.NewConflict(deploymentsGR, "web", errors.New("the object has been modified"))
		}
		return false, nil, nil // on to the object tracker
	})
	r := newRig(t, client, StateWriterConfig{})
	a := activeState(key("team-a", "web"), t0)
	r.writer.Publish(a)
	r.run(t)

	r.step(t, 10*time.Millisecond)
	r.step(t, 20*time.Millisecond)
	eventually(t, "the write to succeed", func() bool { return r.writes(resultOK) == 1 })
	if got := r.writes(resultConflict); got != 2 {
		t.Errorf("conflicts: got %g, want 2", got)
	}
	d, err := client.AppsV1().Deployments("team-a").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !holds(d.Annotations, annotationsOf(a)) {
		t.Errorf("annotations: got %v, want %v", d.Annotations, annotationsOf(a))
	}
	if warns := r.logs.at(slog.LevelWarn); len(warns) != 0 {
		t.Errorf("warnings: got %+v, want none", warns)
	}
}

func TestStateWriterGivesUpOnConflicts(t *testing.T) {
	client := fake.NewClientset(deployment("team-a", "web", nil))
	client.PrependReactor("patch", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewConflict(deploymentsGR, "web", errors.New("denied by a webhook"))
	})
	r := newRig(t, client, StateWriterConfig{})
	r.writer.Publish(activeState(key("team-a", "web"), t0))
	r.run(t)

	for d := conflictBackoff; d <= 8*conflictBackoff; d *= 2 {
		r.step(t, d)
	}
	eventually(t, "the writer to give up", func() bool { return len(r.logs.at(slog.LevelWarn)) == 1 })
	if got := r.writes(resultConflict); got != conflictAttempts {
		t.Errorf("conflicts: got %g, want %d", got, conflictAttempts)
	}
	if got := len(r.patches()); got != conflictAttempts {
		t.Errorf("patches: got %d, want %d", got, conflictAttempts)
	}
	if r.clock.HasWaiters() {
		t.Error("the writer still waits on the clock after giving up")
	}
}

func TestStateWriterDeletedWorkload(t *testing.T) {
	client := fake.NewClientset(deployment("team-a", "gone", nil), deployment("team-a", "racing", nil))
	client.PrependReactor("patch", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.(k8stesting.PatchAction).GetName() == "racing" { // deleted after the cache last saw it
			return true, nil, apierrors.NewNotFound(deploymentsGR, "racing")
		}
		return false, nil, nil
	})
	r := newRig(t, client, StateWriterConfig{})

	r.writer.Publish(activeState(key("team-a", "racing"), t0))
	r.drain(t)
	if got := len(r.patches()); got != 1 {
		t.Fatalf("racing: got %d patches, want 1", got)
	}
	if got := r.writes(resultNotFound); got != 1 {
		t.Errorf("not_found writes: got %g, want 1", got)
	}

	if err := client.AppsV1().Deployments("team-a").Delete(context.Background(), "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deletion to reach the cache", func() bool {
		_, ok := r.watcher.Target(key("team-a", "gone"))
		return !ok
	})
	r.writer.Publish(activeState(key("team-a", "gone"), t0))
	r.drain(t)
	if got := len(r.patches()); got != 1 {
		t.Errorf("gone: got %d patches in all, want still 1", got)
	}
	if r.clock.HasWaiters() || len(r.writer.pending) != 0 {
		t.Error("a deleted workload left a retry behind")
	}
	if warns := r.logs.at(slog.LevelWarn); len(warns) != 0 {
		t.Errorf("warnings: got %+v, want none", warns)
	}
}

func TestStateWriterForbidden(t *testing.T) {
	client := fake.NewClientset(deployment("team-a", "web", nil), deployment("team-a", "api", nil))
	client.PrependReactor("patch", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		name := a.(k8stesting.PatchAction).GetName()
		return true, nil, apierrors.NewForbidden(deploymentsGR, name,
			errors.New(`User "system:serviceaccount:ebb-system:ebb" cannot patch resource "deployments" in API group "apps"`))
	})
	r := newRig(t, client, StateWriterConfig{})
	web := key("team-a", "web")

	r.writer.Publish(activeState(web, t0))
	r.drain(t)
	r.writer.Publish(idleState(web, t0))
	r.drain(t)
	warns := r.logs.at(slog.LevelWarn)
	if len(warns) != 1 {
		t.Fatalf("warnings for one workload: got %+v, want 1", warns)
	}
	for _, s := range []string{`patch deployments.apps in namespace "team-a"`, rbacFile} {
		if !strings.Contains(warns[0].attrs["err"], s) {
			t.Errorf("warning %q does not say %q", warns[0].attrs["err"], s)
		}
	}
	r.writer.Publish(activeState(key("team-a", "api"), t0))
	r.drain(t)
	if got := len(r.logs.at(slog.LevelWarn)); got != 2 {
		t.Errorf("warnings for two workloads: got %d, want 2", got)
	}
	if got := r.writes(resultDenied); got != 3 {
		t.Errorf("forbidden writes: got %g, want 3", got)
	}
	if got := len(r.patches()); got != 3 {
		t.Errorf("patches: got %d, want 3, one per publish", got)
	}
	if r.clock.HasWaiters() {
		t.Error("the writer retries a forbidden patch")
	}
}

func TestStateWriterPublishNeverBlocks(t *testing.T) {
	client := fake.NewClientset(deployment("team-a", "a", nil), deployment("team-a", "b", nil), statefulSet("team-a", "c", nil))
	r := newRig(t, client, StateWriterConfig{Burst: 1}) // not running
	keys := []queries.WorkloadKey{key("team-a", "a"), key("team-a", "b"), key("team-a", "c")}
	var last [3]scaler.WorkloadState
	for i := range 100_000 {
		st := activeState(keys[i%3], t0.Add(time.Duration(i)*time.Minute))
		r.writer.Publish(st)
		last[i%3] = st
	}
	if got := len(r.writer.pending); got != 3 {
		t.Fatalf("pending: got %d, want 3, the latest per workload", got)
	}
	r.run(t)
	r.step(t, time.Second)
	r.step(t, time.Second)
	eventually(t, "three patches", func() bool { return r.writes(resultOK) == 3 })
	ps := r.patches()
	if len(ps) != 3 {
		t.Fatalf("got %d patches, want 3", len(ps))
	}
	for i, p := range ps {
		if got, want := patched(t, p), annotationsOf(last[i]); !maps.Equal(got, want) {
			t.Errorf("%s: got %v, want the latest %v", p.GetName(), got, want)
		}
	}
}

func TestNewStateWriterConfig(t *testing.T) {
	client := fake.NewClientset()
	w, _ := NewWatcher(WatcherConfig{Client: client})
	f := func(cfg StateWriterConfig, want string) {
		t.Helper()
		if _, err := NewStateWriter(cfg); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want an error with %q", err, want)
		}
	}
	f(StateWriterConfig{Targets: w}, "no client")
	f(StateWriterConfig{Client: client}, "no targets")
	f(StateWriterConfig{Client: client, Targets: w, QPS: -1}, "qps = -1")
	f(StateWriterConfig{Client: client, Targets: w, Burst: -2}, "burst = -2")
	s, err := NewStateWriter(StateWriterConfig{Client: client, Targets: w})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.QPS != 5 || s.cfg.Burst != 10 || s.refill != 200*time.Millisecond {
		t.Errorf("defaults: got qps %g, burst %d, refill %s", s.cfg.QPS, s.cfg.Burst, s.refill)
	}
}
