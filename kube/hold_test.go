package kube

import (
	"context"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ebbscale/ebb/queries"
)

// withTemplate sets a workload's pod template labels.
func withTemplate(d *appsv1.Deployment, labels map[string]string) *appsv1.Deployment {
	d.Spec.Template.Labels = labels
	return d
}

// holdCalls records a Watcher's OnHoldChange calls.
type holdCalls struct {
	mu    sync.Mutex
	calls []holdCall
}

type holdCall struct {
	key queries.WorkloadKey
	h   Hold
	ok  bool
}

func (c *holdCalls) record(key queries.WorkloadKey, h Hold, ok bool) {
	c.mu.Lock()
	c.calls = append(c.calls, holdCall{key, h, ok})
	c.mu.Unlock()
}

func (c *holdCalls) get() []holdCall {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]holdCall(nil), c.calls...)
}

func TestParseHold(t *testing.T) {
	f := func(raw string, want time.Duration, wantErr string) {
		t.Helper()
		h := parseHold(map[string]string{AnnotationHoldTimeout: raw}, nil)
		if h.Timeout != want || errorText(h.Invalid) != wantErr {
			t.Errorf("%q: got %s, %v; want %s, %q", raw, h.Timeout, h.Invalid, want, wantErr)
		}
	}
	f("10m", 10*time.Minute, "")
	f(" 90s ", 90*time.Second, "")
	f("1h", time.Hour, "")
	f("soon", 0, `ebb.dev/hold-timeout: "soon" is not a duration like 5m`)
	f("0s", 0, "ebb.dev/hold-timeout: 0s must be > 0 and <= 1h0m0s")
	f("2h", 0, "ebb.dev/hold-timeout: 2h0m0s must be > 0 and <= 1h0m0s")
	if h := parseHold(nil, nil); h.Timeout != 0 || h.Invalid != nil {
		t.Errorf("unset: got %+v, want zero", h)
	}
}

func TestWatcherHold(t *testing.T) {
	webLabels := map[string]string{"app": "web", "tier": "frontend"}
	dbLabels := map[string]string{"app": "db"}
	db := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "db",
		Annotations: map[string]string{AnnotationHoldRequests: "true", AnnotationHoldTimeout: "forever"}}}
	db.Spec.Template.Labels = dbLabels
	client := fake.NewClientset(
		withTemplate(deployment("team-a", "web", map[string]string{AnnotationHoldRequests: "true", AnnotationHoldTimeout: "10m"}), webLabels),
		db,
		withTemplate(deployment("team-a", "plain", nil), map[string]string{"app": "plain"}),
	)
	logs := &logRecorder{}
	w, err := NewWatcher(WatcherConfig{Client: client, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	calls := &holdCalls{}
	if err := w.OnHoldChange(calls.record); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	<-w.Synced()
	if err := w.OnHoldChange(calls.record); err == nil || !strings.Contains(err.Error(), "after Run") {
		t.Errorf("OnHoldChange while running: got %v, want an error", err)
	}

	web, dbKey, plain := key("team-a", "web"), key("team-a", "db"), key("team-a", "plain")
	if h, ok := w.Hold(web); !ok || !maps.Equal(h.Labels, webLabels) || h.Timeout != 10*time.Minute || h.Invalid != nil {
		t.Errorf("web: got %+v, %v; want its labels and 10m", h, ok)
	}
	if d := w.HoldTimeout(web); d != 10*time.Minute {
		t.Errorf("web's hold timeout: got %s, want 10m", d)
	}
	h, ok := w.Hold(dbKey)
	if !ok || !maps.Equal(h.Labels, dbLabels) || h.Timeout != 0 || errorText(h.Invalid) != `ebb.dev/hold-timeout: "forever" is not a duration like 5m` {
		t.Errorf("db: got %+v, %v; want its labels and the bad timeout's error", h, ok)
	}
	if d := w.HoldTimeout(dbKey); d != 0 {
		t.Errorf("db's hold timeout: got %s, want 0 (the default applies)", d)
	}
	if d := w.HoldTimeout(plain); d != 0 {
		t.Errorf("plain's hold timeout: got %s, want 0", d)
	}
	if _, ok := w.Hold(plain); ok {
		t.Error("plain: ok = true, want false: it does not hold requests")
	}
	warns := logs.at(slog.LevelWarn)
	if len(warns) != 1 || warns[0].attrs["workload"] != "team-a/db" || !strings.Contains(warns[0].attrs["err"], `"forever"`) {
		t.Errorf("warnings: got %+v, want one about db's hold timeout", warns)
	}
	got := calls.get()
	if len(got) != 2 {
		t.Fatalf("OnHoldChange calls after the first list: got %+v, want web and db", got)
	}
	for _, c := range got {
		if !c.ok || (c.key != web && c.key != dbKey) {
			t.Errorf("call %+v: want web or db, ok", c)
		}
	}

	// The pod template is relabelled, then web opts out, then db is deleted.
	apps := client.AppsV1()
	relabelled := map[string]string{"app": "web", "tier": "backend"}
	if _, err := apps.Deployments("team-a").Update(ctx, withTemplate(deployment("team-a", "web", map[string]string{AnnotationHoldRequests: "true", AnnotationHoldTimeout: "10m"}), relabelled), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the relabelled template", func() bool { return len(calls.get()) == 3 })
	if c := calls.get()[2]; c.key != web || !c.ok || !maps.Equal(c.h.Labels, relabelled) {
		t.Errorf("call after relabelling: got %+v, want web with %v", c, relabelled)
	}
	if _, err := apps.Deployments("team-a").Update(ctx, withTemplate(deployment("team-a", "web", nil), relabelled), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "web opted out", func() bool { return len(calls.get()) == 4 })
	if c := calls.get()[3]; c.key != web || c.ok {
		t.Errorf("call after opting out: got %+v, want web, not ok", c)
	}
	if _, ok := w.Hold(web); ok {
		t.Error("web after opting out: ok = true")
	}
	if err := apps.StatefulSets("team-a").Delete(ctx, "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "db deleted", func() bool { return len(calls.get()) == 5 })
	if c := calls.get()[4]; c.key != dbKey || c.ok {
		t.Errorf("call after deleting db: got %+v, want db, not ok", c)
	}
	// An update that leaves the Hold alone calls nothing.
	if _, err := apps.Deployments("team-a").Update(ctx, withTemplate(deployment("team-a", "plain", map[string]string{"ebb.dev/idle-after": "1h"}), nil), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "plain's new idle-after", func() bool {
		o, _ := w.Overrides(plain)
		return o.IdleAfter == time.Hour
	})
	if n := len(calls.get()); n != 5 {
		t.Errorf("calls after an unrelated change: got %d, want still 5", n)
	}
}

func TestKeepEbbMetaTemplateLabels(t *testing.T) {
	labels := map[string]string{"app": "web"}
	in := withTemplate(deployment("team-a", "web", map[string]string{AnnotationHoldRequests: "true"}), labels)
	out, _ := keepEbbMeta(in)
	if got := out.(*appsv1.Deployment).Spec.Template.Labels; !maps.Equal(got, labels) {
		t.Errorf("opted in: template labels %v, want %v", got, labels)
	}
	out, _ = keepEbbMeta(withTemplate(deployment("team-a", "web", nil), labels))
	if got := out.(*appsv1.Deployment).Spec.Template.Labels; got != nil {
		t.Errorf("not opted in: template labels %v, want none kept", got)
	}
}
