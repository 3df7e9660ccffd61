package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ebbscale/ebb/kube"
	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/queriestest"
	"github.com/ebbscale/ebb/scaler"
	"github.com/ebbscale/ebb/shutdown"
)

func deployment(ns, name string, annotations map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations}}
}

// TestClusterWiring runs the collector with the annotation watcher and the
// state writer on client-go's fake clientset, as `ebb serve` wires them.
func TestClusterWiring(t *testing.T) {
	client := fake.NewClientset(
		deployment("notebooks", "bob", nil),
		deployment("notebooks", "keep", map[string]string{shutdown.AnnotationAutoshutdown: "false"}),
	)
	reg := prometheus.NewRegistry()
	m := kube.NewMetrics(reg)
	w, err := kube.NewWatcher(kube.WatcherConfig{Client: client, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewMock()
	clk.Set(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	sw, err := kube.NewStateWriter(kube.StateWriterConfig{Client: client, Targets: w, Clock: clk, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{watcher: w, writer: sw, logger: slog.New(slog.DiscardHandler)}

	// Before the watcher has read the cluster, every workload's state is
	// unknown: neither woken nor shut down.
	if o, _ := c.overrides().Overrides(queries.WorkloadKey{Namespace: "notebooks", Name: "bob"}); o.Unknown != notSynced {
		t.Fatalf("before sync: %+v, want unknown: %s", o, notSynced)
	}

	src := &queriestest.FakeSource{}
	shape := queries.Shape{Signal: queries.SignalRequests, Window: time.Minute}
	src.Set(shape) // no traffic anywhere
	col, err := scaler.NewCollector(scaler.Config{Source: src, Clock: clk, Overrides: c.overrides(), States: c.states()})
	if err != nil {
		t.Fatal(err)
	}
	bob := col.Register(shape, queries.WorkloadKey{Namespace: "notebooks", Name: "bob"}, 0, 0)
	keep := col.Register(shape, queries.WorkloadKey{Namespace: "notebooks", Name: "keep"}, 0, 0)
	col.Refresh(context.Background())
	for _, in := range []*scaler.Interest{bob, keep} {
		if a := col.Snapshot().Activity(in); a != scaler.Unknown {
			t.Errorf("%s before sync: %s, want unknown", in.Workload(), a)
		}
		if o, _ := col.Snapshot().Lookup(in); o.Reason != shutdown.ReasonUnknown || o.Why != notSynced {
			t.Errorf("%s before sync: %v (%q), want unknown (%q)", in.Workload(), o.Reason, o.Why, notSynced)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	select {
	case <-w.Synced():
	case <-time.After(20 * time.Second):
		t.Fatal("watcher did not sync")
	}
	clk.Add(5 * time.Second)
	col.Refresh(context.Background())
	if o, _ := col.Snapshot().Lookup(bob); o.Active {
		t.Errorf("bob, no traffic ever: active (%v), want idle", o.Reason)
	}
	if o, _ := col.Snapshot().Lookup(keep); !o.Active || o.Reason != shutdown.ReasonOptOut {
		t.Errorf("keep, ebb.dev/autoshutdown false: active %v (%v), want active (opt-out)", o.Active, o.Reason)
	}

	// The writer patches bob's state onto the Deployment.
	deadline := time.Now().Add(20 * time.Second)
	for {
		d, err := client.AppsV1().Deployments("notebooks").Get(context.Background(), "bob", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if st := d.Annotations[shutdown.AnnotationState]; strings.HasPrefix(st, "idle") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob's annotations %v: no idle ebb.dev/state written", d.Annotations)
		}
		time.Sleep(10 * time.Millisecond) // the informer and writer deliver asynchronously
	}
}
