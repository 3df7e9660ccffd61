package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/shutdown"
)

const (
	weekdays = "0 8 * * 1-5 for 12h in Europe/Berlin"
	badZone  = "0 8 * * 1-5 for 12h in Mars/Olympus_Mons"
)

func deployment(ns, name string, ann map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: ann}}
}

func statefulSet(ns, name string, ann map[string]string) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: ann}}
}

func key(ns, name string) queries.WorkloadKey { return queries.WorkloadKey{Namespace: ns, Name: name} }

// startWatcher runs a Watcher on client until the test ends and returns it
// once it has synced.
func startWatcher(t *testing.T, cfg WatcherConfig) *Watcher {
	t.Helper()
	w, err := NewWatcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-w.Synced():
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return w
}

// eventually waits, for at most 10s, until cond holds. It is for the
// informers' and the writer's goroutines, which deliver asynchronously.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// logRecorder is a slog.Handler that keeps every record.
type logRecorder struct {
	mu      sync.Mutex
	records []logged
}

type logged struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	l := logged{level: rec.Level, msg: rec.Message, attrs: map[string]string{}}
	rec.Attrs(func(a slog.Attr) bool {
		l.attrs[a.Key] = a.Value.String()
		return true
	})
	r.mu.Lock()
	r.records = append(r.records, l)
	r.mu.Unlock()
	return nil
}

// at returns the records at level.
func (r *logRecorder) at(level slog.Level) []logged {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []logged
	for _, l := range r.records {
		if l.level == level {
			out = append(out, l)
		}
	}
	return out
}

// metricValue returns the value of a gauge or counter gathered from reg;
// result selects a series of ebb_annotation_writes_total.
func metricValue(t *testing.T, reg *prometheus.Registry, name, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if result != "" && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != result) {
				continue
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s %s", name, result)
	return 0
}

func TestWatcherReadsAnnotations(t *testing.T) {
	client := fake.NewClientset(
		deployment("team-a", "web", map[string]string{
			shutdown.AnnotationIdleAfter:                       "30m",
			shutdown.AnnotationKeepAwake:                       weekdays,
			"kubectl.kubernetes.io/last-applied-configuration": `{"big":"manifest"}`,
		}),
		statefulSet("team-a", "db", map[string]string{shutdown.AnnotationAutoshutdown: "false"}),
		deployment("team-b", "plain", nil),
	)
	w := startWatcher(t, WatcherConfig{Client: client})

	o, ok := w.Overrides(key("team-a", "web"))
	if !ok || o.IdleAfter != 30*time.Minute || len(o.KeepAwake) != 1 || o.Disabled || o.Invalid != nil {
		t.Fatalf("web: got %+v, %v; want idle-after 30m and one keep-awake window", o, ok)
	}
	if o, ok := w.Overrides(key("team-a", "db")); !ok || !o.Disabled {
		t.Fatalf("db: got %+v, %v; want disabled", o, ok)
	}
	if o, ok := w.Overrides(key("team-b", "plain")); !ok || o.IdleAfter != 0 || o.Disabled || o.Invalid != nil {
		t.Fatalf("plain: got %+v, %v; want known, no overrides", o, ok)
	}
	if _, ok := w.Overrides(key("team-a", "nope")); ok {
		t.Fatal("unknown workload: ok = true")
	}
	tg, _ := w.Target(key("team-a", "web"))
	if tg.Kind != KindDeployment || len(tg.Annotations) != 2 {
		t.Fatalf("web target: got %+v; want a Deployment with only its two ebb.dev/ annotations", tg)
	}
	if tg, _ := w.Target(key("team-a", "db")); tg.Kind != KindStatefulSet {
		t.Fatalf("db target kind: got %s, want StatefulSet", tg.Kind)
	}

	ctx := context.Background()
	apps := client.AppsV1()
	if _, err := apps.Deployments("team-a").Update(ctx, deployment("team-a", "web", map[string]string{shutdown.AnnotationIdleAfter: "45m"}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "web's new idle-after", func() bool {
		o, _ := w.Overrides(key("team-a", "web"))
		return o.IdleAfter == 45*time.Minute && len(o.KeepAwake) == 0
	})
	if _, err := apps.StatefulSets("team-a").Update(ctx, statefulSet("team-a", "db", nil), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "db opted back in", func() bool {
		o, ok := w.Overrides(key("team-a", "db"))
		return ok && !o.Disabled
	})

	if err := apps.Deployments("team-a").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := apps.StatefulSets("team-a").Delete(ctx, "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deleted workloads forgotten", func() bool {
		_, web := w.Overrides(key("team-a", "web"))
		_, db := w.Overrides(key("team-a", "db"))
		return !web && !db
	})
}

func TestWatcherBadAnnotation(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	logs := &logRecorder{}
	client := fake.NewClientset(deployment("team-a", "web", map[string]string{
		shutdown.AnnotationIdleAfter: "30m",
		shutdown.AnnotationKeepAwake: badZone,
	}))
	w := startWatcher(t, WatcherConfig{Client: client, Metrics: metrics, Logger: slog.New(logs)})
	web := key("team-a", "web")

	o, ok := w.Overrides(web)
	var ae *shutdown.AnnotationError
	if !ok || !errors.As(o.Invalid, &ae) || ae.Key != shutdown.AnnotationKeepAwake {
		t.Fatalf("got Invalid = %v (ok %v), want an *AnnotationError for %s", o.Invalid, ok, shutdown.AnnotationKeepAwake)
	}
	if o.IdleAfter != 30*time.Minute {
		t.Errorf("idle-after: got %s, want 30m: what parsed is kept", o.IdleAfter)
	}
	// The policy fails safe: a workload idle for hours stays active.
	now := time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC)
	d := shutdown.Resolve(shutdown.Policy{IdleAfter: shutdown.DefaultIdleAfter, MinUptime: shutdown.DefaultMinUptime}, 0, o).Decide(shutdown.State{Known: true, LastActive: now.Add(-5 * time.Hour)}, now)
	if !d.Active || d.Reason != shutdown.ReasonBadConfig {
		t.Errorf("decision: got %s (%s), want active because of bad-config", d, d.Reason)
	}
	if got := metricValue(t, reg, "ebb_annotation_errors", ""); got != 1 {
		t.Errorf("ebb_annotation_errors: got %g, want 1", got)
	}
	warns := logs.at(slog.LevelWarn)
	if len(warns) != 1 || warns[0].attrs["workload"] != "team-a/web" || !strings.Contains(warns[0].attrs["err"], shutdown.AnnotationKeepAwake) {
		t.Fatalf("warnings: got %+v, want one naming team-a/web and %s", warns, shutdown.AnnotationKeepAwake)
	}

	// A change that leaves ebb's annotations alone is not parsed again.
	ctx := context.Background()
	apps := client.AppsV1().Deployments("team-a")
	relabelled := deployment("team-a", "web", map[string]string{shutdown.AnnotationIdleAfter: "30m", shutdown.AnnotationKeepAwake: badZone})
	relabelled.Labels = map[string]string{"tier": "frontend"}
	relabelled.ResourceVersion = "2" // the fake clientset sets none
	before, _ := w.Target(web)
	if _, err := apps.Update(ctx, relabelled, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the relabelled Deployment", func() bool {
		tg, _ := w.Target(web)
		return tg.ResourceVersion != before.ResourceVersion
	})
	if n := len(logs.at(slog.LevelWarn)); n != 1 {
		t.Errorf("warnings after an unrelated change: got %d, want still 1", n)
	}
	if got := metricValue(t, reg, "ebb_annotation_errors", ""); got != 1 {
		t.Errorf("ebb_annotation_errors after an unrelated change: got %g, want 1", got)
	}

	// Fixed, broken again, then deleted.
	if _, err := apps.Update(ctx, deployment("team-a", "web", map[string]string{shutdown.AnnotationKeepAwake: weekdays}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "fixed annotations", func() bool {
		o, _ := w.Overrides(web)
		return o.Invalid == nil && len(o.KeepAwake) == 1
	})
	if got := metricValue(t, reg, "ebb_annotation_errors", ""); got != 0 {
		t.Errorf("ebb_annotation_errors once fixed: got %g, want 0", got)
	}
	if _, err := apps.Update(ctx, deployment("team-a", "web", map[string]string{shutdown.AnnotationIdleAfter: "soon"}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "broken again", func() bool {
		o, _ := w.Overrides(web)
		return o.Invalid != nil
	})
	if got := metricValue(t, reg, "ebb_annotation_errors", ""); got != 1 {
		t.Errorf("ebb_annotation_errors broken again: got %g, want 1", got)
	}
	if n := len(logs.at(slog.LevelWarn)); n != 2 {
		t.Errorf("warnings: got %d, want 2, one per bad change", n)
	}
	if err := apps.Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "web forgotten", func() bool {
		_, ok := w.Overrides(web)
		return !ok
	})
	if got := metricValue(t, reg, "ebb_annotation_errors", ""); got != 0 {
		t.Errorf("ebb_annotation_errors after delete: got %g, want 0", got)
	}
}

func TestWatcherSharedName(t *testing.T) {
	logs := &logRecorder{}
	client := fake.NewClientset(
		deployment("team-a", "app", map[string]string{shutdown.AnnotationIdleAfter: "10m"}),
		statefulSet("team-a", "app", map[string]string{shutdown.AnnotationIdleAfter: "20m"}),
	)
	w := startWatcher(t, WatcherConfig{Client: client, Logger: slog.New(logs)})
	app := key("team-a", "app")

	if o, _ := w.Overrides(app); o.IdleAfter != 10*time.Minute {
		t.Fatalf("idle-after: got %s, want the Deployment's 10m", o.IdleAfter)
	}
	if tg, _ := w.Target(app); tg.Kind != KindDeployment {
		t.Fatalf("kind: got %s, want Deployment", tg.Kind)
	}
	ctx := context.Background()
	if _, err := client.AppsV1().StatefulSets("team-a").Update(ctx, statefulSet("team-a", "app", map[string]string{shutdown.AnnotationIdleAfter: "25m"}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := client.AppsV1().Deployments("team-a").Delete(ctx, "app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the StatefulSet's annotations", func() bool {
		o, _ := w.Overrides(app)
		tg, _ := w.Target(app)
		return o.IdleAfter == 25*time.Minute && tg.Kind == KindStatefulSet
	})
	if warns := logs.at(slog.LevelWarn); len(warns) != 1 || !strings.Contains(warns[0].msg, "share a name") {
		t.Errorf("warnings: got %+v, want one about the shared name", warns)
	}
}

func TestWatcherNamespaces(t *testing.T) {
	client := fake.NewClientset(
		deployment("team-a", "web", nil),
		deployment("team-b", "web", nil),
		statefulSet("team-c", "db", nil),
	)
	w := startWatcher(t, WatcherConfig{Client: client, Namespaces: []string{"team-c", "team-a", "team-a", ""}})
	for k, want := range map[queries.WorkloadKey]bool{
		key("team-a", "web"): true,
		key("team-b", "web"): false,
		key("team-c", "db"):  true,
	} {
		if _, ok := w.Overrides(k); ok != want {
			t.Errorf("%s: known = %v, want %v", k, ok, want)
		}
	}
}

func TestWatcherListForbidden(t *testing.T) {
	f := func(namespaces []string, wantNS string) {
		t.Helper()
		client := fake.NewClientset()
		client.PrependReactor("list", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "deployments"}, "",
				errors.New(`User "system:serviceaccount:ebb-system:ebb" cannot list resource "deployments" in API group "apps"`))
		})
		w, err := NewWatcher(WatcherConfig{Client: client, Namespaces: namespaces})
		if err != nil {
			t.Fatal(err)
		}
		err = w.Run(context.Background())
		var ae *AccessError
		if !errors.As(err, &ae) || ae.Verb != "list" || ae.Resource != "deployments.apps" || ae.Namespace != wantNS {
			t.Fatalf("got %v, want an *AccessError for list deployments.apps in %q", err, wantNS)
		}
		if !apierrors.IsForbidden(err) {
			t.Errorf("IsForbidden(%v) = false", err)
		}
		for _, s := range []string{"list deployments.apps", rbacFile, "cannot list resource"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not say %q", err, s)
			}
		}
	}
	f(nil, "")
	f([]string{"team-a"}, "team-a")
}

func TestWatcherSyncTimeout(t *testing.T) {
	client := fake.NewClientset()
	client.PrependReactor("list", "statefulsets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInternalError(errors.New("etcdserver: request timed out"))
	})
	w, err := NewWatcher(WatcherConfig{Client: client, SyncTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = w.Run(context.Background())
	var ae *AccessError
	if err == nil || errors.As(err, &ae) || !strings.Contains(err.Error(), "not done after 200ms") {
		t.Fatalf("got %v, want a sync timeout", err)
	}
}

func TestWatcherRunCanceled(t *testing.T) {
	w, err := NewWatcher(WatcherConfig{Client: fake.NewClientset()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want nil or context.Canceled", err)
	}
	if err := w.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second Run: got %v, want already running", err)
	}
}

func TestNewWatcherConfig(t *testing.T) {
	if _, err := NewWatcher(WatcherConfig{}); err == nil || !strings.Contains(err.Error(), "no client") {
		t.Errorf("no client: got %v", err)
	}
	if _, err := NewWatcher(WatcherConfig{Client: fake.NewClientset(), SyncTimeout: -time.Second}); err == nil || !strings.Contains(err.Error(), "sync timeout = -1s") {
		t.Errorf("negative sync timeout: got %v", err)
	}
}

// benchWatcher returns a Watcher that knows n workloads, fed through its
// handlers without informers.
func benchWatcher(b *testing.B, n int) (*Watcher, []queries.WorkloadKey) {
	b.Helper()
	w, err := NewWatcher(WatcherConfig{Client: fake.NewClientset()})
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]queries.WorkloadKey, n)
	for i := range keys {
		d := deployment("team-"+fmt.Sprint(i%50), fmt.Sprintf("svc-%d", i), map[string]string{shutdown.AnnotationIdleAfter: "30m"})
		d.ResourceVersion = "1"
		w.upsert(KindDeployment, d)
		keys[i] = key(d.Namespace, d.Name)
	}
	return w, keys
}

var (
	sinkMu        sync.Mutex
	sinkOverrides shutdown.Overrides
)

func BenchmarkWatcherOverrides(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			w, keys := benchWatcher(b, n)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var o shutdown.Overrides
				i := 0
				for pb.Next() {
					o, _ = w.Overrides(keys[i%len(keys)])
					i++
				}
				sinkMu.Lock()
				sinkOverrides = o
				sinkMu.Unlock()
			})
		})
	}
}
