package live

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"

	"github.com/ebbscale/ebb/autopilot"
	"github.com/ebbscale/ebb/kube"
)

// Four samples 15 s apart, each list answering other numbers: every sample
// of every pod lands in the histograms, and the recommendation is computed
// by hand from them.
func TestSamplerFourSamples(t *testing.T) {
	client := fake.NewClientset(shop()...)
	a, b := "web-7d9f8b6c5d-x2x4z", "web-7d9f8b6c5d-q8w7v"
	cpuA, cpuB := []float64{0.1, 0.3, 0.2, 0.4}, []float64{0.2, 0.2, 0.6, 0.1}
	memA, memB := []float64{100, 120, 110, 130}, []float64{200, 180, 190, 170}
	mock := newMock()
	ms := metricsServer(func(n int, ns string) ([]metricsv1beta1.PodMetrics, error) {
		if ns != "shop" || n > 4 {
			t.Errorf("list %d in namespace %q", n, ns)
			return nil, nil
		}
		// db-0 has no metrics yet.
		return []metricsv1beta1.PodMetrics{
			podMetrics("shop", a, mock.Now(), usage{"app", cpuA[n-1], memA[n-1]}),
			podMetrics("shop", b, mock.Now(), usage{"app", cpuB[n-1], memB[n-1]}),
		}, nil
	})
	inv := ReadInventory(context.Background(), client, []string{"shop"})
	if p := inv.Problems(); len(p) != 0 {
		t.Fatalf("problems %v", p)
	}
	cfg := autopilot.DefaultConfig()
	cfg.CPUPercentile, cfg.MinHistory = 0.5, 30*time.Second
	h := history(t, cfg, t0, t0.Add(45*time.Second), 15*time.Second)
	s := &Sampler{Kube: client, Metrics: ms, Inventory: inv, Every: 15 * time.Second, Samples: 4}
	if err := run(t, s, h, mock); err != nil {
		t.Fatal(err)
	}
	if n, span := s.Taken(); n != 4 || span != 45*time.Second {
		t.Errorf("taken %d over %v, want 4 over 45s", n, span)
	}
	inv.Apply(h)
	rep := recommend(t, h)
	Explain(rep, inv, s)

	web := row(t, rep, "shop", "web")
	if web.Replicas != 2 || len(web.Containers) != 1 {
		t.Fatalf("web: %d replicas, containers %+v", web.Replicas, web.Containers)
	}
	c := web.Containers[0]
	// CPU: 8 samples of nearly equal weight (15 s of a 24 h half-life);
	// sorted 0.1 0.1 0.2 0.2 0.2 0.3 0.4 0.6. The median falls in the
	// bucket of 0.2, which ends at 0.001 * (1.05^50 - 1) / 0.05 = 0.20935;
	// +15% = 0.24075, rounded up to 241m.
	wantP := 0.001 * (math.Pow(1.05, 50) - 1) / 0.05
	if c.CPU.Samples != 8 || c.CPU.Max != 0.6 || c.CPU.Percentile != math.Round(wantP*1e4)/1e4 ||
		c.CPU.Request != 0.241 || c.CPU.CurrentRequest != 1 || c.CPU.HistoryHours != 0.01 || c.CPU.NotEnoughData != "" {
		t.Errorf("cpu %+v", c.CPU)
	}
	// Memory: one day, so one peak per pod: 130 and 200 MiB; p95 needs
	// both, 200 MiB; +15% = 230 MiB.
	if c.Memory.Samples != 8 || c.Memory.Max != 200*autopilot.MiB || c.Memory.Percentile != 200*autopilot.MiB ||
		c.Memory.Request != 230*autopilot.MiB || c.Memory.CurrentLimit != autopilot.GiB {
		t.Errorf("memory %+v", c.Memory)
	}
	// 45 s is about 0.0005 days of evidence: the confidence rounds to 0.
	if c.CPU.Confidence != 0 || !strings.HasPrefix(c.CPU.Basis, "p50 of 8 samples") {
		t.Errorf("cpu confidence %v, basis %q", c.CPU.Confidence, c.CPU.Basis)
	}

	db := row(t, rep, "shop", "db")
	want := "1 pod, none with metrics yet (metrics-server reports a pod about a minute after it starts)"
	if db.Replicas != 1 || len(db.Containers) != 1 || db.Containers[0].CPU.NotEnoughData != want ||
		db.Containers[0].Memory.NotEnoughData != want || db.Containers[0].CPU.CurrentRequest != 2 {
		t.Errorf("db %+v", db)
	}
}

// With a step of 5 m, the samples of each step make one point: the mean
// CPU and the highest memory; those at or before After are dropped.
func TestSamplerOnePointPerStep(t *testing.T) {
	client := fake.NewClientset(shop()...)
	mock := newMock()
	ms := metricsServer(func(n int, _ string) ([]metricsv1beta1.PodMetrics, error) {
		// Call 1 is at t0 (dropped), 2 to 21 in (t0, t0+5m], 22 to 41 in
		// (t0+5m, t0+10m].
		cpu, mem := 0.5, 120.0
		if n <= 21 {
			cpu = []float64{0.1, 0.3}[n%2]
			mem = 100
			if n == 7 {
				mem = 150
			}
		}
		if n == 1 {
			cpu, mem = 9, 900
		}
		return []metricsv1beta1.PodMetrics{podMetrics("shop", "db-0", mock.Now(), usage{"postgres", cpu, mem})}, nil
	})
	inv := ReadInventory(context.Background(), client, nil)
	cfg := autopilot.DefaultConfig()
	cfg.MinHistory = time.Minute
	h := history(t, cfg, t0.Add(-time.Hour), t0.Add(10*time.Minute), 5*time.Minute)
	s := &Sampler{Kube: client, Metrics: ms, Inventory: inv, Every: 15 * time.Second, Samples: 41, After: t0}
	if err := run(t, s, h, mock); err != nil {
		t.Fatal(err)
	}
	rep := recommend(t, h)
	c := row(t, rep, "shop", "db").Containers[0]
	// Two points: 0.2 (the mean of 0.1 and 0.3) and 0.5; memory 150 and
	// 120 MiB.
	if c.CPU.Samples != 2 || c.CPU.Max != 0.5 || c.CPU.HistoryHours != round2(5.0/60) ||
		c.Memory.Samples != 2 || c.Memory.Max != 150*autopilot.MiB {
		t.Errorf("cpu %+v\nmemory %+v", c.CPU, c.Memory)
	}
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// A PodMetrics whose timestamp has not moved is the same measurement: it
// counts once.
func TestSamplerSkipsRepeatedMeasurements(t *testing.T) {
	client := fake.NewClientset(shop()...)
	ms := metricsServer(func(n int, _ string) ([]metricsv1beta1.PodMetrics, error) {
		at := t0.Add(time.Duration((n-1)/2) * time.Minute) // each measurement answered twice
		return []metricsv1beta1.PodMetrics{podMetrics("shop", "db-0", at, usage{"postgres", 0.5, 100})}, nil
	})
	inv := ReadInventory(context.Background(), client, []string{"shop"})
	h := history(t, autopilot.DefaultConfig(), t0, t0.Add(3*time.Minute), 30*time.Second)
	s := &Sampler{Kube: client, Metrics: ms, Inventory: inv, Every: 30 * time.Second, Samples: 6}
	if err := run(t, s, h, newMock()); err != nil {
		t.Fatal(err)
	}
	if c := row(t, recommend(t, h), "shop", "db").Containers[0]; c.CPU.Samples != 3 {
		t.Errorf("cpu samples %d, want 3", c.CPU.Samples)
	}
}

// Each error a user can act on ends as the reason of the rows it concerns,
// and none stops the others.
func TestSamplerErrors(t *testing.T) {
	type result struct {
		s   *Sampler
		rep *autopilot.Report
	}
	sample := func(t *testing.T, client *fake.Clientset, namespaces []string, answer func(n int, ns string) ([]metricsv1beta1.PodMetrics, error)) result {
		t.Helper()
		inv := ReadInventory(context.Background(), client, namespaces)
		cfg := autopilot.DefaultConfig()
		cfg.MinHistory = 30 * time.Second
		h := history(t, cfg, t0, t0.Add(45*time.Second), 15*time.Second)
		s := &Sampler{Kube: client, Metrics: metricsServer(answer), Inventory: inv, Every: 15 * time.Second, Samples: 4}
		if err := run(t, s, h, newMock()); err != nil {
			t.Fatal(err)
		}
		inv.Refresh(context.Background())
		inv.Apply(h)
		rep := recommend(t, h)
		Explain(rep, inv, s)
		return result{s, rep}
	}
	webMetrics := func(n int, ns string) ([]metricsv1beta1.PodMetrics, error) {
		at := t0.Add(time.Duration(n) * 15 * time.Second)
		return []metricsv1beta1.PodMetrics{
			podMetrics("shop", "web-7d9f8b6c5d-x2x4z", at, usage{"app", 0.2, 100}),
			podMetrics("shop", "db-0", at, usage{"postgres", 1, 1000}),
		}, nil
	}
	reason := func(t *testing.T, w autopilot.WorkloadReport) string {
		t.Helper()
		if len(w.Containers) == 0 || w.Containers[0].CPU.NotEnoughData != w.Containers[0].Memory.NotEnoughData {
			t.Fatalf("%s/%s: containers %+v", w.Namespace, w.Name, w.Containers)
		}
		return w.Containers[0].CPU.NotEnoughData
	}

	t.Run("metrics.k8s.io missing", func(t *testing.T) {
		calls := 0
		r := sample(t, fake.NewClientset(shop()...), nil, func(int, string) ([]metricsv1beta1.PodMetrics, error) {
			calls++
			return nil, noMetricsAPI()
		})
		if calls != 1 {
			t.Errorf("%d lists, want 1: a missing API does not come back within the sample", calls)
		}
		for _, name := range []string{"web", "db"} {
			if got := reason(t, row(t, r.rep, "shop", name)); got != ErrNoMetricsAPI.Error() {
				t.Errorf("%s: %q", name, got)
			}
		}
		if p := r.s.Problems(); len(p) != 1 || !errors.Is(p[0].Err, ErrNoMetricsAPI) || p[0].Namespace != "" {
			t.Errorf("problems %v", p)
		}
	})

	t.Run("metrics forbidden", func(t *testing.T) {
		client := fake.NewClientset(append(shop(), namespace("ops"), deployment("ops", "cron", 1, app("app", "100m", "64Mi")),
			pod("ops", "cron-0", "x", "y"))...)
		ms := func(n int, ns string) ([]metricsv1beta1.PodMetrics, error) {
			if ns == "shop" {
				return nil, apiForbidden("list", "metrics.k8s.io", "pods", ns)
			}
			return nil, nil
		}
		r := sample(t, client, []string{"shop", "ops"}, ms)
		var denied *kube.AccessError
		p := r.s.Problems()
		if len(p) != 1 || p[0].Namespace != "shop" || !errors.As(p[0].Err, &denied) ||
			denied.Verb != "list" || denied.Resource != "pods.metrics.k8s.io" || denied.Namespace != "shop" {
			t.Fatalf("problems %v", p)
		}
		want := `list pods.metrics.k8s.io in namespace "shop": pods.metrics.k8s.io is forbidden: User "system:serviceaccount:ebb-system:ebb" cannot list resource "pods" in API group "metrics.k8s.io" in the namespace "shop"; ebb's permissions are in deploy/02-rbac.yaml`
		if got := reason(t, row(t, r.rep, "shop", "web")); got != want {
			t.Errorf("web: %q\nwant %q", got, want)
		}
		// ops goes on being sampled: its pod has no metrics.
		if got := reason(t, row(t, r.rep, "ops", "cron")); got != "no running pods to sample" {
			t.Errorf("cron: %q", got)
		}
	})

	t.Run("pods forbidden", func(t *testing.T) {
		client := fake.NewClientset(shop()...)
		refuse(client, "list", "", "pods")
		r := sample(t, client, []string{"shop"}, webMetrics)
		var denied *kube.AccessError
		w := r.s.Warnings()
		if len(w) != 1 || !errors.As(w[0], &denied) || denied.Verb != "list" || denied.Resource != "pods" {
			t.Fatalf("warnings %v", w)
		}
		// Pods are mapped by name instead: web and db are sampled.
		for _, name := range []string{"web", "db"} {
			if c := row(t, r.rep, "shop", name).Containers[0]; c.CPU.Samples != 4 || c.CPU.NotEnoughData != "" {
				t.Errorf("%s: cpu %+v", name, c.CPU)
			}
		}
	})

	t.Run("replicasets forbidden", func(t *testing.T) {
		client := fake.NewClientset(shop()...)
		refuse(client, "list", "apps", "replicasets")
		r := sample(t, client, []string{"shop"}, webMetrics)
		if len(r.s.Warnings()) != 1 || !strings.Contains(r.s.Warnings()[0].Error(), "list replicasets.apps") {
			t.Errorf("warnings %v", r.s.Warnings())
		}
		if c := row(t, r.rep, "shop", "web").Containers[0]; c.CPU.Samples != 4 {
			t.Errorf("web: cpu %+v", c.CPU)
		}
	})

	t.Run("namespace missing", func(t *testing.T) {
		var asked []string
		r := sample(t, fake.NewClientset(shop()...), []string{"shop", "ghost"}, func(n int, ns string) ([]metricsv1beta1.PodMetrics, error) {
			asked = append(asked, ns)
			return webMetrics(n, ns)
		})
		if got := reason(t, row(t, r.rep, "ghost", AllNamespaces)); got != `namespace "ghost" does not exist` {
			t.Errorf("ghost: %q", got)
		}
		if c := row(t, r.rep, "shop", "web").Containers[0]; c.CPU.Samples != 4 {
			t.Errorf("web: cpu %+v", c.CPU)
		}
		for _, ns := range asked {
			if ns != "shop" {
				t.Errorf("sampled namespace %q", ns)
			}
		}
	})

	t.Run("deployments forbidden", func(t *testing.T) {
		client := fake.NewClientset(shop()...)
		refuse(client, "list", "apps", "deployments")
		r := sample(t, client, []string{"shop"}, webMetrics)
		// db, a StatefulSet, is read and sampled; web is not known, and
		// no row says more than the namespace's problem: shop has rows.
		if c := row(t, r.rep, "shop", "db").Containers[0]; c.CPU.Samples != 4 {
			t.Errorf("db: cpu %+v", c.CPU)
		}
		for _, w := range r.rep.Workloads {
			if w.Name == "web" {
				t.Errorf("web sampled without its Deployment: %+v", w)
			}
		}
		var denied *kube.AccessError
		p := ReadInventory(context.Background(), client, []string{"shop"}).Problems()
		if len(p) != 1 || !errors.As(p[0].Err, &denied) || denied.Resource != "deployments.apps" || denied.Verb != "list" {
			t.Errorf("problems %v", p)
		}
	})

	t.Run("everything forbidden", func(t *testing.T) {
		client := fake.NewClientset(shop()...)
		refuse(client, "list", "apps", "deployments")
		refuse(client, "list", "apps", "statefulsets")
		r := sample(t, client, []string{"shop"}, webMetrics)
		got := reason(t, row(t, r.rep, "shop", AllNamespaces))
		if !strings.HasPrefix(got, `list deployments.apps in namespace "shop": deployments.apps is forbidden`) ||
			!strings.Contains(got, `; list statefulsets.apps in namespace "shop": statefulsets.apps is forbidden`) ||
			!strings.HasSuffix(got, "ebb's permissions are in deploy/02-rbac.yaml") {
			t.Errorf("shop: %q", got)
		}
	})
}

// A workload scaled to zero while it is sampled: its samples stop, and its
// row says so instead of a recommendation; another at zero from the start
// has none at all.
func TestSamplerScaledToZero(t *testing.T) {
	client := fake.NewClientset(append(shop(), deployment("shop", "batch", 0, app("job", "1", "1Gi")))...)
	ms := metricsServer(func(n int, ns string) ([]metricsv1beta1.PodMetrics, error) {
		at := t0.Add(time.Duration(n-1) * 15 * time.Second)
		if n == 3 {
			// Scaled to zero between the second and the third sample.
			d, err := client.AppsV1().Deployments("shop").Get(context.Background(), "web", metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			d.Spec.Replicas = ptr(int32(0))
			if _, err := client.AppsV1().Deployments("shop").Update(context.Background(), d, metav1.UpdateOptions{}); err != nil {
				return nil, err
			}
		}
		out := []metricsv1beta1.PodMetrics{podMetrics("shop", "db-0", at, usage{"postgres", 1, 1000})}
		if n < 3 {
			out = append(out, podMetrics("shop", "web-7d9f8b6c5d-x2x4z", at, usage{"app", 0.2, 100}))
		}
		return out, nil
	})
	inv := ReadInventory(context.Background(), client, []string{"shop"})
	cfg := autopilot.DefaultConfig()
	cfg.MinHistory = 30 * time.Second
	h := history(t, cfg, t0, t0.Add(45*time.Second), 15*time.Second)
	s := &Sampler{Kube: client, Metrics: ms, Inventory: inv, Every: 15 * time.Second, Samples: 4}
	if err := run(t, s, h, newMock()); err != nil {
		t.Fatal(err)
	}
	inv.Refresh(context.Background())
	inv.Apply(h)
	rep := recommend(t, h)
	Explain(rep, inv, s)

	web := row(t, rep, "shop", "web")
	want := "scaled to zero during the sample: no pods since 12:00:15 UTC; CPU history covers 15s, need 30s"
	if web.Replicas != 0 || web.Containers[0].CPU.NotEnoughData != want || web.Containers[0].CPU.Samples != 2 {
		t.Errorf("web: %d replicas, cpu %+v", web.Replicas, web.Containers[0].CPU)
	}
	batch := row(t, rep, "shop", "batch")
	if batch.Replicas != 0 || batch.Containers[0].CPU.NotEnoughData != "scaled to zero: no pods to sample" {
		t.Errorf("batch: %+v", batch)
	}
	if db := row(t, rep, "shop", "db"); db.Containers[0].CPU.Samples != 4 || db.Containers[0].CPU.NotEnoughData != "" {
		t.Errorf("db: %+v", db.Containers[0].CPU)
	}
}
