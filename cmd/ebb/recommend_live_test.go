package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
	metricsfake "k8s.io/metrics/pkg/client/clientset/versioned/fake"

	"github.com/ebbscale/ebb/autopilot"
	"github.com/ebbscale/ebb/kube"
	"github.com/ebbscale/ebb/queries/promapi"
	"github.com/ebbscale/ebb/queries/storetest"
)

// msStart is when the tests' sampling starts.
var msStart = time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)

func msContainer(name, cpu, memory string) corev1.Container {
	q := resource.MustParse
	return corev1.Container{Name: name, Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: q(cpu), corev1.ResourceMemory: q(memory)},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: q(memory)},
	}}
}

func msOwner(kind, name string) []metav1.OwnerReference {
	yes := true
	return []metav1.OwnerReference{{Kind: kind, Name: name, Controller: &yes}}
}

// msShop is the namespace shop: the Deployment web (2 pods), the
// StatefulSet db (1 pod) and the Deployment batch, scaled to zero.
func msShop() []runtime.Object {
	two, one, zero := int32(2), int32(1), int32(0)
	tmpl := func(c corev1.Container) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{c}}}
	}
	web, db := msContainer("app", "1", "1Gi"), msContainer("postgres", "2", "4Gi")
	pod := func(name, kind, owner string, c corev1.Container) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, OwnerReferences: msOwner(kind, owner)},
			Spec: corev1.PodSpec{Containers: []corev1.Container{c}}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	}
	return []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}, Spec: appsv1.DeploymentSpec{Replicas: &two, Template: tmpl(web)}},
		&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-7d9f8b6c5d", OwnerReferences: msOwner("Deployment", "web")}},
		pod("web-7d9f8b6c5d-x2x4z", "ReplicaSet", "web-7d9f8b6c5d", web),
		pod("web-7d9f8b6c5d-q8w7v", "ReplicaSet", "web-7d9f8b6c5d", web),
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db"}, Spec: appsv1.StatefulSetSpec{Replicas: &one, Template: tmpl(db)}},
		pod("db-0", "StatefulSet", "db", db),
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "batch"}, Spec: appsv1.DeploymentSpec{Replicas: &zero, Template: tmpl(web)}},
	}
}

type msUsage struct {
	pod, container string
	cpu, mib       float64
}

// msMetrics is a fake metrics.k8s.io answering the n-th list (from 1) in a
// namespace with answer(n, namespace).
func msMetrics(answer func(n int, ns string) ([]msUsage, error), clk clock.Clock) *metricsfake.Clientset {
	c := metricsfake.NewSimpleClientset()
	calls := map[string]int{}
	c.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ns := a.GetNamespace()
		calls[ns]++
		us, err := answer(calls[ns], ns)
		if err != nil {
			return true, nil, err
		}
		l := &metricsv1beta1.PodMetricsList{}
		for _, u := range us {
			l.Items = append(l.Items, metricsv1beta1.PodMetrics{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: u.pod}, Timestamp: metav1.NewTime(clk.Now()),
				Containers: []metricsv1beta1.ContainerMetrics{{Name: u.container, Usage: corev1.ResourceList{
					corev1.ResourceCPU:    *resource.NewMilliQuantity(int64(u.cpu*1000), resource.DecimalSI),
					corev1.ResourceMemory: *resource.NewQuantity(int64(u.mib*autopilot.MiB), resource.BinarySI),
				}}},
			})
		}
		return true, l, nil
	})
	return c
}

func msForbidden(verb, group, res, ns string) error {
	return apierrors.NewForbidden(schema.GroupResource{Group: group, Resource: res}, "", forbiddenText(
		`User "system:serviceaccount:ebb-system:ebb" cannot `+verb+` resource "`+res+`" in API group "`+group+`" in the namespace "`+ns+`"`))
}

type forbiddenText string

func (f forbiddenText) Error() string { return string(f) }

// msDeps connects the command to the fake clusters and the mock clock.
func msDeps(k kubernetes.Interface, m metricsclient.Interface, mock *clock.Mock) recommendDeps {
	return recommendDeps{
		getenv: func(string) string { return "" },
		now:    mock.Now,
		live: liveDeps{clock: mock, clients: func(string) (kubernetes.Interface, metricsclient.Interface, error) {
			return k, m, nil
		}},
	}
}

// msRun runs the command, advancing the mock clock by every after each
// sample.
func msRun(t *testing.T, args []string, deps recommendDeps, mock *clock.Mock, every time.Duration) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	sampled := make(chan struct{})
	deps.live.sampled = func(int, int) { sampled <- struct{}{} }
	done := make(chan error, 1)
	go func() { done <- recommend(context.Background(), args, &out, &errOut, deps) }()
	for {
		select {
		case <-sampled:
			mock.Add(every)
		case err := <-done:
			return out.String(), errOut.String(), err
		}
	}
}

func msMock(at time.Time) *clock.Mock {
	m := clock.NewMock()
	m.Set(at)
	return m
}

func msReport(t *testing.T, stdout string) (*autopilot.Report, map[string]autopilot.WorkloadReport) {
	t.Helper()
	var r autopilot.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	rows := map[string]autopilot.WorkloadReport{}
	for _, w := range r.Workloads {
		rows[w.Namespace+"/"+w.Name] = w
	}
	return &r, rows
}

// reason returns why a one-container row has no recommendation, the same
// for CPU and memory.
func msReason(t *testing.T, rows map[string]autopilot.WorkloadReport, name string) string {
	t.Helper()
	w, ok := rows[name]
	if !ok || len(w.Containers) != 1 || w.Containers[0].CPU.NotEnoughData != w.Containers[0].Memory.NotEnoughData {
		t.Fatalf("row %s: %+v", name, w)
	}
	return w.Containers[0].CPU.NotEnoughData
}

func TestRecommendMetricsServerFlagErrors(t *testing.T) {
	mock := msMock(msStart)
	deps := msDeps(fake.NewClientset(), metricsfake.NewSimpleClientset(), mock)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--source=metrics-server", "--end=2026-01-01T00:00:00Z"}, "--end: metrics-server is sampled now, from now on; --end is for --source prometheus and sim"},
		{[]string{"--source=metrics-server", "--every=1500ms"}, "--every = 1.5s, must be a whole number of seconds, at least 1s"},
		{[]string{"--source=metrics-server", "--sample=10s"}, "--sample = 10s, must be at least --every (15s)"},
		{[]string{"--source=metrics-server", "--sample=5m"}, "--sample = 5m, must be at least 10m: a shorter sample is too little evidence for any recommendation"},
		{[]string{"--source=metrics-server", "--min-history=1m"}, "--min-history = 1m, must be at least 10m with --source metrics-server: a shorter history has a confidence of 0 days"},
		{[]string{"--source=metrics-server", "--prometheus-url=http://x"}, "--prometheus-url with --source metrics-server: to merge Prometheus' history, use --source prometheus,metrics-server"},
		{[]string{"--source=metrics-server", "--history=1d"}, "--history and --step are for Prometheus; with --source metrics-server, --sample and --every set the history"},
		{[]string{"--source=prometheus,metrics-server"}, "--prometheus-url (or EBB_PROMETHEUS_URL) is required; to try it on the embedded simulator, run: ebb recommend --source sim"},
		{[]string{"--source=sim", "--sample=20m"}, "--sample and --every sample metrics-server: add --source metrics-server or prometheus,metrics-server"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			err := recommend(context.Background(), tt.args, &bytes.Buffer{}, &bytes.Buffer{}, deps)
			if err == nil || err.Error() != tt.want {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}

	t.Run("no cluster", func(t *testing.T) {
		deps := deps
		deps.live.clients = func(string) (kubernetes.Interface, metricsclient.Interface, error) {
			return nil, nil, kube.ErrNoCluster
		}
		err := recommend(context.Background(), []string{"--source=metrics-server"}, &bytes.Buffer{}, &bytes.Buffer{}, deps)
		want := "--source metrics-server needs a cluster: pass --kubeconfig, set KUBECONFIG, or run ebb in the cluster"
		if err == nil || err.Error() != want {
			t.Errorf("got %v, want %q", err, want)
		}
	})
}

// 15 minutes of samples every 15 s: the report recommends from them with
// the confidence they deserve, and every row without a recommendation
// says why.
func TestRecommendMetricsServer(t *testing.T) {
	for _, format := range []string{"json", "table"} {
		t.Run(format, func(t *testing.T) {
			mock := msMock(msStart)
			ms := msMetrics(func(n int, ns string) ([]msUsage, error) {
				if ns != "shop" {
					t.Errorf("sampled namespace %q", ns)
				}
				// One web pod alternates 0.2 and 0.4 cores, the other
				// stays at 0.3; db-0 has no metrics yet.
				return []msUsage{
					{"web-7d9f8b6c5d-x2x4z", "app", []float64{0.4, 0.2}[n%2], 200},
					{"web-7d9f8b6c5d-q8w7v", "app", 0.3, 300},
				}, nil
			}, mock)
			args := []string{"--source=metrics-server", "--sample=15m", "--every=15s", "--namespace=shop", "--namespace=ghost", "--format=" + format}
			deps := msDeps(fake.NewClientset(msShop()...), ms, mock)
			bar := true
			deps.progress = &bar
			stdout, stderr, err := msRun(t, args, deps, mock, 15*time.Second)
			if err != nil {
				t.Fatalf("%v\nstderr: %s", err, stderr)
			}
			if want := "\rsampling metrics-server [##############################] 61/61\r\033[K"; !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks the full bar: %q", stderr)
			}
			if format == "table" {
				// Each row's words, whatever the columns' widths.
				for _, want := range [][]string{
					{"ok", "shop/web", "1→460m", "1Gi→345Mi", "$28.98"},
					{"unknown", "shop/db", "2→?", "4Gi→?"},
					{"shop/db postgres: CPU and memory: 1 pod, none with metrics yet (metrics-server reports a pod about a minute after it"},
					{"starts)"},
					{"shop/batch app: CPU and memory: scaled to zero: no pods to sample"},
					{"ghost/*: CPU and memory: namespace \"ghost\" does not exist"},
					{"Evidence: 61 samples of metrics-server over 15m;"},
					{"  shop/web app: CPU 122 samples over 0.25h, 0.01 days of evidence (range 10m-46460m), memory 122 samples over 0.25h, 0.01 days of evidence (range 64Mi-34845Mi)"},
				} {
					if !msHasLine(stdout, want) {
						t.Errorf("table lacks a line with %q:\n%s", want, stdout)
					}
				}
				return
			}
			r, rows := msReport(t, stdout)
			if r.Source != "metrics-server every 15s for 15m" || !r.HistoryStart.Equal(msStart) ||
				!r.HistoryEnd.Equal(msStart.Add(15*time.Minute)) || r.Step != "15s" {
				t.Errorf("report %s, %v to %v, step %s", r.Source, r.HistoryStart, r.HistoryEnd, r.Step)
			}
			web := rows["shop/web"]
			if web.Replicas != 2 || len(web.Containers) != 1 {
				t.Fatalf("web %+v", web)
			}
			c := web.Containers[0]
			// 61 samples of 2 pods: 31 at 0.2, 61 at 0.3, 30 at 0.4 of
			// nearly equal weight (15 m of a 24 h half-life): the p90 is
			// the top, 0.4 cores, +15% = 460m. 15 m is 0.01 days of
			// evidence: the range is 460m / 101 (raised to the 10m floor)
			// to 460m x 101.
			if c.CPU.Samples != 122 || c.CPU.Percentile != 0.4 || c.CPU.Request != 0.46 || c.CPU.Confidence != 0.01 ||
				c.CPU.HistoryHours != 0.25 || c.CPU.Lower != 0.01 || c.CPU.Upper != 46.46 || c.CPU.CurrentRequest != 1 ||
				c.CPU.Basis != "p90 of 122 samples = 0.4 cores, +15%" {
				t.Errorf("cpu %+v", c.CPU)
			}
			// One day, so one peak per pod: 200 and 300 MiB; p95 = 300 MiB,
			// +15% = 345 MiB.
			if c.Memory.Samples != 122 || c.Memory.Percentile != 300*autopilot.MiB || c.Memory.Request != 345*autopilot.MiB ||
				c.Memory.Confidence != 0.01 || c.Memory.CurrentRequest != autopilot.GiB {
				t.Errorf("memory %+v", c.Memory)
			}
			if got := msReason(t, rows, "shop/db"); got != "1 pod, none with metrics yet (metrics-server reports a pod about a minute after it starts)" {
				t.Errorf("db: %q", got)
			}
			if got := msReason(t, rows, "shop/batch"); got != "scaled to zero: no pods to sample" || rows["shop/batch"].Replicas != 0 {
				t.Errorf("batch: %q", got)
			}
			if got := msReason(t, rows, "ghost/*"); got != `namespace "ghost" does not exist` {
				t.Errorf("ghost: %q", got)
			}
			if len(rows) != 4 {
				t.Errorf("rows %v", msKeys(rows))
			}
		})
	}
}

// metrics.k8s.io is not installed: one list tells, the command does not
// wait out --sample, and every row says so.
func TestRecommendMetricsServerNotInstalled(t *testing.T) {
	mock := msMock(msStart)
	calls := 0
	ms := msMetrics(func(int, string) ([]msUsage, error) {
		calls++
		return nil, apierrors.NewGenericServerResponse(404, "get", schema.GroupResource{Group: "metrics.k8s.io", Resource: "pods"}, "", "", 0, false)
	}, mock)
	stdout, stderr, err := msRun(t, []string{"--source=metrics-server", "--format=json"}, msDeps(fake.NewClientset(msShop()...), ms, mock), mock, 15*time.Second)
	if err != nil {
		t.Fatalf("%v\nstderr: %s", err, stderr)
	}
	const want = "metrics-server is not installed (no metrics.k8s.io API)"
	_, rows := msReport(t, stdout)
	for _, name := range []string{"shop/web", "shop/db", "shop/batch"} {
		if got := msReason(t, rows, name); got != want {
			t.Errorf("%s: %q", name, got)
		}
	}
	if calls != 1 || !strings.Contains(stderr, "warning: "+want+"\n") {
		t.Errorf("%d lists; stderr %q", calls, stderr)
	}
}

// Without the permission to list pods, pods are mapped to their workloads
// by name, and a warning says which permission is missing; without the
// permission to list PodMetrics in a namespace, its rows say so.
func TestRecommendMetricsServerForbidden(t *testing.T) {
	mock := msMock(msStart)
	one := int32(1)
	k := fake.NewClientset(append(msShop(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ops"}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "ops", Name: "cron"}, Spec: appsv1.DeploymentSpec{
			Replicas: &one, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{msContainer("app", "100m", "64Mi")}}},
		}})...)
	k.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, msForbidden("list", "", "pods", a.GetNamespace())
	})
	ms := msMetrics(func(n int, ns string) ([]msUsage, error) {
		if ns == "ops" {
			return nil, msForbidden("list", "metrics.k8s.io", "pods", ns)
		}
		return []msUsage{{"web-7d9f8b6c5d-x2x4z", "app", 0.3, 200}, {"db-0", "postgres", 1, 1000}}, nil
	}, mock)
	args := []string{"--source=metrics-server", "--sample=10m", "--every=1m", "--namespace=shop", "--namespace=ops", "--format=json"}
	stdout, stderr, err := msRun(t, args, msDeps(k, ms, mock), mock, time.Minute)
	if err != nil {
		t.Fatalf("%v\nstderr: %s", err, stderr)
	}
	_, rows := msReport(t, stdout)
	for _, name := range []string{"shop/web", "shop/db"} {
		if c := rows[name].Containers[0]; c.CPU.Samples != 11 || c.CPU.NotEnoughData != "" {
			t.Errorf("%s: cpu %+v", name, c.CPU)
		}
	}
	wantOps := `list pods.metrics.k8s.io in namespace "ops": pods.metrics.k8s.io is forbidden: User "system:serviceaccount:ebb-system:ebb" cannot list resource "pods" in API group "metrics.k8s.io" in the namespace "ops"; ebb's permissions are in deploy/02-rbac.yaml`
	if got := msReason(t, rows, "ops/cron"); got != wantOps {
		t.Errorf("ops/cron: %q\nwant %q", got, wantOps)
	}
	for _, want := range []string{
		`warning: list pods in namespace "shop": pods is forbidden: User "system:serviceaccount:ebb-system:ebb" cannot list resource "pods" in API group "" in the namespace "shop"; ebb's permissions are in deploy/02-rbac.yaml; pods are mapped to workloads by name` + "\n",
		"warning: " + wantOps + "\n",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

// --source prometheus,metrics-server: three days of history from a real
// Prometheus, then 15 minutes of metrics-server, in the same histograms;
// the API server says what exists and what it requests.
func TestRecommendLiveMergesPrometheus(t *testing.T) {
	start := storetest.Epoch.Add(10 * time.Minute)
	cut := start.Add(72 * time.Hour)
	everyMinute := func(v func(at time.Time) float64) []storetest.Sample {
		var out []storetest.Sample
		for at := storetest.Epoch; !at.After(cut); at = at.Add(time.Minute) {
			out = append(out, storetest.Sample{T: at, V: v(at)})
		}
		return out
	}
	lbl := func(pod string, kv ...string) map[string]string {
		m := map[string]string{"namespace": "shop", "pod": pod, "container": "app"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cpu := func(at time.Time) float64 { return 0.2 * at.Sub(storetest.Epoch).Seconds() }
	prom := storetest.StartPrometheus(t, storetest.PromOptions{History: []storetest.Series{
		{Metric: "container_cpu_usage_seconds_total", Labels: lbl("web-0"), Samples: everyMinute(cpu)},
		{Metric: "container_memory_working_set_bytes", Labels: lbl("web-0"), Samples: everyMinute(func(time.Time) float64 { return 300 * autopilot.MiB })},
		{Metric: "kube_pod_container_resource_requests", Labels: lbl("web-0", "resource", "cpu", "unit", "core"), Samples: everyMinute(func(time.Time) float64 { return 1 })},
		// old is in Prometheus' history only: it no longer exists.
		{Metric: "container_cpu_usage_seconds_total", Labels: lbl("old-0"), Samples: everyMinute(cpu)},
	}})

	one := int32(1)
	app := msContainer("app", "500m", "1Gi")
	k := fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}, Spec: appsv1.StatefulSetSpec{
			Replicas: &one, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{app}}},
		}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-0", OwnerReferences: msOwner("StatefulSet", "web")},
			Spec: corev1.PodSpec{Containers: []corev1.Container{app}}, Status: corev1.PodStatus{Phase: corev1.PodRunning}},
	)
	mock := msMock(cut)
	ms := msMetrics(func(int, string) ([]msUsage, error) { return []msUsage{{"web-0", "app", 0.8, 500}}, nil }, mock)
	args := []string{"--source=prometheus,metrics-server", "--prometheus-url=" + prom.URL, "--namespace=shop",
		"--history=3d", "--sample=15m", "--every=15s", "--format=json"}
	stdout, stderr, err := msRun(t, args, msDeps(k, ms, mock), mock, 15*time.Second)
	if err != nil {
		t.Fatalf("%v\nstderr: %s", err, stderr)
	}
	r, rows := msReport(t, stdout)
	if len(rows) != 1 || r.Source != prom.URL+" + metrics-server every 15s for 15m" ||
		!r.HistoryStart.Equal(start) || !r.HistoryEnd.Equal(cut.Add(15*time.Minute)) {
		t.Fatalf("report %s, %v to %v, rows %v", r.Source, r.HistoryStart, r.HistoryEnd, msKeys(rows))
	}
	c := rows["shop/web"].Containers[0]
	// CPU: 864 points at 0.2 cores every 5 m from Prometheus, then 3 at 0.8
	// from metrics-server (the means of 20 samples each; the sample at the
	// cut is Prometheus'). The 3 weigh about 2^3 each of some 2,930: p90
	// stays in the bucket of 0.2, which ends at 0.20935; +15% = 241m. The
	// request is the API server's 500m, not kube-state-metrics' 1.
	if c.CPU.Samples != 867 || c.CPU.Max != 0.8 || c.CPU.Percentile != 0.2093 || c.CPU.Request != 0.241 ||
		c.CPU.Confidence != 3.01 || c.CPU.CurrentRequest != 0.5 {
		t.Errorf("cpu %+v", c.CPU)
	}
	// Memory: daily peaks of 300 MiB on days 0 to 2, and 500 MiB on day 3
	// from metrics-server, which weighs about 8 of 15: p95 = 500 MiB,
	// +15% = 575 MiB.
	if c.Memory.Samples != 867 || c.Memory.Percentile != 500*autopilot.MiB || c.Memory.Request != 575*autopilot.MiB ||
		c.Memory.CurrentRequest != autopilot.GiB {
		t.Errorf("memory %+v", c.Memory)
	}
}

// --source prometheus with a reachable cluster: the API server says what
// exists and what it requests; kube-state-metrics is the fallback where it
// cannot be read.
func TestRecommendLivePrometheusWithCluster(t *testing.T) {
	prom := storetest.StartPrometheus(t, storetest.PromOptions{History: knownHistory()})
	k := fake.NewClientset(append(msShop(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ml"}})...)
	k.PrependReactor("list", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetNamespace() == "ml" {
			return true, nil, msForbidden("list", "apps", "deployments", "ml")
		}
		return false, nil, nil
	})
	deps := msDeps(k, nil, msMock(histEnd))
	var stdout, stderr bytes.Buffer
	args := []string{"--prometheus-url=" + prom.URL, "--namespace=shop", "--namespace=ml", "--history=3d",
		"--end=" + histEnd.Format(time.RFC3339), "--format=json"}
	if err := recommend(context.Background(), args, &stdout, &stderr, deps); err != nil {
		t.Fatalf("%v\nstderr: %s", err, stderr.String())
	}
	_, rows := msReport(t, stdout.String())
	// shop/web is the Deployment with 2 replicas; ml/llm and ml/tgi, whose
	// namespace could not be listed, stay as kube-state-metrics has them;
	// shop/report is not in the cluster.
	if w := rows["shop/web"]; w.Replicas != 2 || w.Containers[0].CPU.Samples != 864 || w.Containers[0].CPU.CurrentRequest != 1 {
		t.Errorf("shop/web: %+v", w)
	}
	if got := rows["shop/db"].Containers[0].CPU.NotEnoughData; got != "no CPU usage samples" {
		t.Errorf("shop/db: %q", got)
	}
	if _, ok := rows["ml/llm"]; !ok || rows["ml/tgi"].Name == "" || len(rows) != 5 {
		t.Errorf("rows %v", msKeys(rows))
	}
	if want := `warning: list deployments.apps in namespace "ml": deployments.apps is forbidden`; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
	}
}

func msKeys(m map[string]autopilot.WorkloadReport) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// msHasLine reports whether a line of s holds every part, in order.
func msHasLine(s string, parts []string) bool {
	for _, line := range strings.Split(s, "\n") {
		rest, ok := line, true
		for _, p := range parts {
			i := strings.Index(rest, p)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(p):]
		}
		if ok {
			return true
		}
	}
	return false
}

type msStore struct{ calls [][2]time.Time }

func (s *msStore) Range(_ context.Context, _ string, start, end time.Time, _ time.Duration) ([]promapi.Series, error) {
	s.calls = append(s.calls, [2]time.Time{start, end})
	return nil, nil
}

// Merged, the Prometheus reader reads nothing after the cut: an instant
// query at the history's end is asked at the cut, a range across it ends
// there, and one after it is not sent.
func TestLiveClipsPrometheusAtTheCut(t *testing.T) {
	cut := msStart
	store := &msStore{}
	clipped := (&liveRun{cut: cut}).clip(store)
	at := func(m int) time.Time { return cut.Add(time.Duration(m) * time.Minute) }
	for _, q := range [][2]time.Time{{at(15), at(15)}, {at(-60), at(15)}, {at(5), at(15)}, {at(-60), at(-5)}} {
		if _, err := clipped.Range(context.Background(), "up", q[0], q[1], 5*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	want := [][2]time.Time{{cut, cut}, {at(-60), cut}, {at(-60), at(-5)}}
	if len(store.calls) != len(want) {
		t.Fatalf("calls %v, want %v", store.calls, want)
	}
	for i := range want {
		if !store.calls[i][0].Equal(want[i][0]) || !store.calls[i][1].Equal(want[i][1]) {
			t.Errorf("call %d: %v, want %v", i, store.calls[i], want[i])
		}
	}
	if (*liveRun)(nil).clip(store) != autopilot.RangeQuerier(store) {
		t.Error("no live run: the store is not the same")
	}
}
