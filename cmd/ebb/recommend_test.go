package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"

	"github.com/ebbscale/ebb/autopilot"
	"github.com/ebbscale/ebb/kube"
	"github.com/ebbscale/ebb/queries/storetest"
)

func TestRecommendFlagErrors(t *testing.T) {
	deps := recommendDeps{getenv: func(string) string { return "" }}
	tests := []struct {
		args []string
		want string
	}{
		{nil, "--prometheus-url (or EBB_PROMETHEUS_URL) is required; to try it on the embedded simulator, run: ebb recommend --source sim"},
		{[]string{"--source=thanos"}, `--source "thanos": want prometheus, metrics-server, prometheus,metrics-server or sim`},
		{[]string{"--source=sim", "--prometheus-url=http://x"}, "--prometheus-url and --source sim exclude each other"},
		{[]string{"--source=sim", "--history=two weeks"}, `--history "two weeks": want a duration such as 14d, 36h or 1d12h`},
		{[]string{"--source=sim", "--history=1m"}, "--history = 1m, must be at least --step (5m0s)"},
		{[]string{"--source=sim", "--step=1500ms"}, "--step = 1.5s, must be a whole number of seconds, at least 1s"},
		{[]string{"--source=sim", "--format=yaml"}, `--format "yaml": want table, json, csv, markdown, html`},
		{[]string{"--source=sim", "--namespace=Shop"}, `--namespace: namespace "Shop": not a valid namespace name (DNS-1123 label)`},
		{[]string{"--source=sim", "--apply"}, "--apply needs --annotate"},
		{[]string{"--source=sim", "--annotate", "--apply"}, "--apply with --source sim: the simulator's workloads are not in a cluster; --annotate alone prints the patches"},
		{[]string{"--source=sim", "--end=yesterday"}, `--end "yesterday": want RFC 3339, e.g. 2026-11-16T08:00:00Z`},
		{[]string{"--source=sim", "--cpu-percentile=2"}, "cpu percentile = 2, must be in [0, 1]"},
		{[]string{"--source=sim", "--prices=/nonexistent/prices.json"}, "--prices: open /nonexistent/prices.json: no such file or directory"},
		{[]string{"--source=sim", "--tgi-max-batch-total-tokens=-1"}, "--tgi-max-batch-total-tokens = -1, must be 0 (none) or positive"},
		{[]string{"--source=sim", "--tgi-max-batch-total-tokens=32k"}, `--tgi-max-batch-total-tokens "32k": want a whole number`},
		{[]string{"--source=sim", "--cold-start=tpu=1m"}, `--cold-start "tpu=1m": "tpu=1m": unknown kind "tpu"; want gpu, cpu or a GPU class: A100-40GB, A100-80GB, A10G, H100-80GB, L4, T4, V100`},
		{[]string{"--source=sim", "--cold-start=gpu=soon"}, `--cold-start "gpu=soon": "gpu=soon": "soon" is not a duration >= 0 such as 2m or 30s`},
		{[]string{"--source=sim", "--cold-start=gpu"}, `--cold-start "gpu": "gpu": want kind=duration, e.g. gpu=2m`},
		{[]string{"--source=sim", "--warning-share=1.5"}, "warning share = 1.5, must be in [0, 1]"},
		{[]string{"--source=sim", "--warning-amount=-1"}, "warning amount = -1, must be a finite number >= 0"},
		{[]string{"--source=sim", "--max-cold-start-wait=-1m"}, "max wait per day = -1m0s, must not be negative"},
		{[]string{"--source=sim", "--wide", "--format=json"}, "--wide applies to --format table, not json"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			err := recommend(context.Background(), tt.args, &bytes.Buffer{}, &bytes.Buffer{}, deps)
			if err == nil || err.Error() != tt.want {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestParseHistory(t *testing.T) {
	for in, want := range map[string]time.Duration{"14d": 14 * 24 * time.Hour, "1d12h": 36 * time.Hour, "90m": 90 * time.Minute} {
		if got, err := parseHistory(in); err != nil || got != want {
			t.Errorf("parseHistory(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

// The embedded simulator path: deterministic, every workload of the demo.
func TestRecommendSim(t *testing.T) {
	run := func() []byte {
		var out bytes.Buffer
		args := []string{"--source=sim", "--history=3d", "--format=json", "--namespace=notebooks"}
		if err := recommend(context.Background(), args, &out, &bytes.Buffer{}, recommendDeps{getenv: func(string) string { return "" }}); err != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}
	a, b := run(), run()
	if !bytes.Equal(a, b) {
		t.Fatal("two runs differ")
	}
	var r autopilot.Report
	if err := json.Unmarshal(a, &r); err != nil {
		t.Fatal(err)
	}
	got := map[string]autopilot.WorkloadReport{}
	for _, w := range r.Workloads {
		got[w.Namespace+"/"+w.Name] = w
	}
	if len(got) != 2 {
		t.Fatalf("workloads %v, want the two notebooks", got)
	}
	// Bob's notebook is never used: no GPU, shut down after 5m.
	bob := got["notebooks/bob-notebook"]
	if bob.GPU == nil || bob.GPU.Recommended != "no GPU" || bob.Autoshutdown == nil || bob.Autoshutdown.IdleAfter != "5m" {
		t.Errorf("bob: gpu %+v, autoshutdown %+v", bob.GPU, bob.Autoshutdown)
	}
	// Alice works 20 minutes every 2 hours: 12 cold starts a day, each a
	// GPU's 2 minutes, would make her wait 24 minutes a day: one replica
	// is kept warm. With a 30s wake (6 minutes a day), idleAfter 5m.
	alice := got["notebooks/alice-notebook"]
	if a := alice.Autoshutdown; a == nil || a.Recommended || !a.KeepWarm || a.KeepWarmInstead != "5m" || a.ColdStart != "2m" {
		t.Errorf("alice: autoshutdown %+v", a)
	}
	var out bytes.Buffer
	args := []string{"--source=sim", "--history=3d", "--format=json", "--namespace=notebooks", "--cold-start=T4=30s"}
	if err := recommend(context.Background(), args, &out, &bytes.Buffer{}, recommendDeps{getenv: func(string) string { return "" }}); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	for _, w := range r.Workloads {
		if a := w.Autoshutdown; w.Name == "alice-notebook" && (a == nil || !a.Recommended || a.IdleAfter != "5m" || a.ColdStart != "30s" || a.ColdStartFrom != "cold start of T4") {
			t.Errorf("alice with --cold-start=T4=30s: autoshutdown %+v", a)
		}
	}
}

var (
	histStart = storetest.Epoch.Add(10 * time.Minute)
	histEnd   = histStart.Add(72 * time.Hour)
	switchAt  = histStart.Add(48 * time.Hour)
)

// minutes returns a sample every minute from the epoch to histEnd of f.
func minutes(f func(at time.Time) float64) []storetest.Sample {
	var out []storetest.Sample
	for at := storetest.Epoch; !at.After(histEnd); at = at.Add(time.Minute) {
		out = append(out, storetest.Sample{T: at, V: f(at)})
	}
	return out
}

func labels(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// knownHistory is three days of shop/web (CPU at 0.2 cores for two days,
// then 0.5; memory at 300 MiB with one 400 MiB sample on day 1; 10 req/s;
// requests of 1 core and 1 GiB), ml/llm (one A100 at 20% graphics engine
// activity but 90% DCGM_FI_DEV_GPU_UTIL, 6000 MiB of its framebuffer in
// use) and other/x, which --namespace leaves out; and
//   - shop/report, a Deployment of 2 replicas, 4 from 36h02m on, each
//     requesting 0.5 cores and 512 MiB, serving 10 req/s in the first 10
//     minutes of every 4 hours of the history and nothing else;
//   - ml/tgi, text-generation-inference that does not export its max
//     batch total tokens, its batch holding 6000 tokens and 1 request
//     queued; its container at 6 GiB with an 8 GiB limit, OOM-killed
//     three times in a row (restarts at 20h02m, 20h07m and 20h08m, its
//     last termination OOMKilled from 20h02m on).
func knownHistory() []storetest.Series {
	web := func(kv ...string) map[string]string {
		return labels(append([]string{"namespace", "shop", "pod", "web-0", "container", "app"}, kv...)...)
	}
	gpu := labels("namespace", "ml", "pod", "llm-0", "gpu", "0", "modelName", "NVIDIA A100-SXM4-40GB", "UUID", "GPU-1")
	cpu := func(at time.Time) float64 {
		if !at.After(switchAt) {
			return 0.2 * at.Sub(storetest.Epoch).Seconds()
		}
		return 0.2*switchAt.Sub(storetest.Epoch).Seconds() + 0.5*at.Sub(switchAt).Seconds()
	}
	peakAt := histStart.Add(36 * time.Hour)
	mem := func(at time.Time) float64 {
		if at.Equal(peakAt) {
			return 400 * autopilot.MiB
		}
		return 300 * autopilot.MiB
	}
	constant := func(v float64) []storetest.Sample { return minutes(func(time.Time) float64 { return v }) }
	return []storetest.Series{
		{Metric: "container_cpu_usage_seconds_total", Labels: web(), Samples: minutes(cpu)},
		{Metric: "container_memory_working_set_bytes", Labels: web(), Samples: minutes(mem)},
		{Metric: "kube_pod_container_resource_requests", Labels: web("resource", "cpu", "unit", "core"), Samples: constant(1)},
		{Metric: "kube_pod_container_resource_requests", Labels: web("resource", "memory", "unit", "byte"), Samples: constant(autopilot.GiB)},
		{Metric: "kube_pod_container_resource_limits", Labels: web("resource", "memory", "unit", "byte"), Samples: constant(autopilot.GiB)},
		{Metric: "istio_requests_total", Labels: labels("reporter", "destination", "destination_workload_namespace", "shop", "destination_workload", "web"),
			Samples: minutes(func(at time.Time) float64 { return 10 * at.Sub(storetest.Epoch).Seconds() })},
		{Metric: "DCGM_FI_DEV_GPU_UTIL", Labels: gpu, Samples: constant(90)},
		{Metric: "DCGM_FI_PROF_GR_ENGINE_ACTIVE", Labels: gpu, Samples: constant(0.2)},
		{Metric: "DCGM_FI_DEV_FB_USED", Labels: gpu, Samples: constant(6000)},
		{Metric: "DCGM_FI_DEV_FB_FREE", Labels: gpu, Samples: constant(34960)},
		{Metric: "kube_pod_container_resource_requests", Labels: labels("namespace", "ml", "pod", "llm-0", "container", "server", "resource", "nvidia.com/gpu", "unit", "integer"), Samples: constant(1)},
		{Metric: "container_cpu_usage_seconds_total", Labels: labels("namespace", "other", "pod", "x-0", "container", "app"), Samples: minutes(cpu)},

		{Metric: "kube_pod_container_resource_requests", Labels: reportPod("resource", "cpu", "unit", "core"), Samples: constant(0.5)},
		{Metric: "kube_pod_container_resource_requests", Labels: reportPod("resource", "memory", "unit", "byte"), Samples: constant(512 * autopilot.MiB)},
		{Metric: "istio_requests_total", Labels: labels("reporter", "destination", "destination_workload_namespace", "shop", "destination_workload", "report"),
			Samples: minutes(reportRequests)},
		{Metric: "kube_deployment_status_replicas", Labels: labels("namespace", "shop", "deployment", "report"), Samples: minutes(func(at time.Time) float64 {
			if at.Before(histStart.Add(36*time.Hour + 2*time.Minute)) {
				return 2
			}
			return 4
		})},

		{Metric: "ebb_activator_wake_latency_seconds_sum", Labels: activatorReport, Samples: minutes(func(at time.Time) float64 { return reportWakes(at, true) })},
		{Metric: "ebb_activator_wake_latency_seconds_count", Labels: activatorReport, Samples: minutes(func(at time.Time) float64 { return reportWakes(at, false) })},

		{Metric: "tgi_batch_current_max_tokens", Labels: labels("namespace", "ml", "pod", "tgi-0"), Samples: constant(6000)},
		{Metric: "tgi_queue_size", Labels: labels("namespace", "ml", "pod", "tgi-0"), Samples: constant(1)},
		{Metric: "container_memory_working_set_bytes", Labels: tgi(), Samples: constant(6 * autopilot.GiB)},
		{Metric: "kube_pod_container_resource_limits", Labels: tgi("resource", "memory", "unit", "byte"), Samples: constant(8 * autopilot.GiB)},
		{Metric: "kube_pod_container_status_restarts_total", Labels: tgi(), Samples: minutes(func(at time.Time) float64 {
			n := 0.0
			for _, kill := range []time.Duration{20*time.Hour + 2*time.Minute, 20*time.Hour + 7*time.Minute, 20*time.Hour + 8*time.Minute} {
				if !at.Before(histStart.Add(kill)) {
					n++
				}
			}
			return n
		})},
		{Metric: "kube_pod_container_status_last_terminated_reason", Labels: tgi("reason", "OOMKilled"), Samples: minutes(func(at time.Time) float64 {
			if at.Before(histStart.Add(20*time.Hour + 2*time.Minute)) {
				return 0
			}
			return 1
		})},
	}
}

// activatorReport labels ebb's activator's series of shop/report, as a
// scrape with honor_labels keeps them.
var activatorReport = labels("namespace", "shop", "workload", "report", "job", "ebb-activator", "instance", "10.0.5.9:9090")

// reportWakes is ebb's activator's wake histogram of shop/report: its sum
// (sum) or count. Each of its 17 cold starts (the traffic of cycles 1-17,
// see checkKnownReplicasAndTGI) took 9s and 15s in turn, observed two
// minutes after the cycle began (clear of the day windows the histogram is
// read in, whose edges Prometheus 2 and 3 treat differently): 17 wakes, 9
// of 9s and 8 of 15s, 201s, a mean of 11.8s.
func reportWakes(at time.Time, sum bool) float64 {
	n, total := 0.0, 0.0
	for k := 1; k <= 17; k++ {
		if !at.Before(histStart.Add(time.Duration(k)*4*time.Hour + 2*time.Minute)) {
			n++
			total += 9 + 6*float64((k+1)%2)
		}
	}
	if sum {
		return total
	}
	return n
}

func reportPod(kv ...string) map[string]string {
	return labels(append([]string{"namespace", "shop", "pod", "report-0", "container", "app"}, kv...)...)
}

func tgi(kv ...string) map[string]string {
	return labels(append([]string{"namespace", "ml", "pod", "tgi-0", "container", "server"}, kv...)...)
}

// reportRequests is shop/report's request counter: 600 more requests in
// each of the first 10 minutes of every 4 hours from histStart (10 req/s),
// the same before.
func reportRequests(at time.Time) float64 {
	m := int(at.Sub(histStart) / time.Minute)
	if m <= 0 {
		return 0
	}
	cycles, in := m/240, m%240
	return 600 * float64(10*cycles+min(in, 10))
}

// The whole command against a real Prometheus and a real VictoriaMetrics
// loaded with known history: the same numbers from both. The data keeps
// clear of the stores' differences at the edges of a window (Prometheus
// 2.x's [t-w, t] against VictoriaMetrics' (t-w, t] with the sample before
// it for rate): counters grow linearly and gauges are constant, but for
// the one memory peak, which both see within the same day.
func TestRecommendStoreIntegration(t *testing.T) {
	stores := []struct {
		name  string
		start func(t *testing.T) *storetest.Server
	}{
		{"prometheus", func(t *testing.T) *storetest.Server {
			return storetest.StartPrometheus(t, storetest.PromOptions{History: knownHistory()})
		}},
		{"victoriametrics", func(t *testing.T) *storetest.Server {
			return storetest.StartVictoriaMetrics(t, storetest.VMOptions{History: knownHistory()})
		}},
	}
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			srv := s.start(t)
			t.Run("report", func(t *testing.T) { checkKnownReport(t, srv.URL) })
			t.Run("apply", func(t *testing.T) { checkKnownApply(t, srv.URL) })
		})
	}
}

// wantWebAnnotation is the recommendation of shop/web in knownHistory.
const wantWebAnnotation = `{"schema":"ebb.dev/autopilot/v3","generatedAt":"2026-01-04T00:10:00Z","severity":"ok","containers":{"app":{"cpuRequest":"575m","memoryRequest":"460Mi","memoryLimit":"460Mi"}},"minReplicas":1,"maxReplicas":2,"targetRPS":10}`

func checkKnownReport(t *testing.T, url string) {
	dir := t.TempDir()
	out := filepath.Join(dir, "report.json")
	var stdout, stderr bytes.Buffer
	args := []string{
		"--prometheus-url=" + url, "--namespace=shop", "--namespace=ml",
		"--history=3d", "--end=" + histEnd.Format(time.RFC3339),
		"--format=json", "--output=" + out, "--annotate", "--tgi-max-batch-total-tokens=24000",
	}
	deps := recommendDeps{getenv: func(string) string { return "" }, now: func() time.Time {
		t.Fatal("the command read the clock despite --end")
		return time.Time{}
	}}
	if err := recommend(context.Background(), args, &stdout, &stderr, deps); err != nil {
		t.Fatalf("%v\nstderr: %s", err, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var r autopilot.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	byName := map[string]autopilot.WorkloadReport{}
	for _, w := range r.Workloads {
		byName[w.Namespace+"/"+w.Name] = w
	}
	if len(byName) != 4 || byName["shop/web"].Name == "" || byName["ml/llm"].Name == "" || byName["shop/report"].Name == "" || byName["ml/tgi"].Name == "" {
		t.Fatalf("workloads %v, want shop/web, shop/report, ml/llm and ml/tgi only", keys(byName))
	}

	web := byName["shop/web"]
	if len(web.Containers) != 1 || web.Replicas != 1 {
		t.Fatalf("shop/web: %d containers, %d replicas", len(web.Containers), web.Replicas)
	}
	c := web.Containers[0]
	// CPU: 864 points every 5m; 288 at 0.5 cores in the last day hold
	// (2^3 - 2^2) / (2^3 - 1) = 4/7 of the decayed weight, so p90 = 0.5;
	// +15% = 575m. Confidence 3 days: bounds 575m / (4/3) = 432m and
	// 575m * 4/3 = 767m.
	if c.CPU.Samples != 864 || c.CPU.Percentile != 0.5 || c.CPU.Request != 0.575 || c.CPU.Lower != 0.432 ||
		c.CPU.Upper != 0.767 || c.CPU.Confidence != 3 || c.CPU.Limit != 0 || c.CPU.CurrentRequest != 1 {
		t.Errorf("cpu %+v", c.CPU)
	}
	// Memory: daily peaks 300, 400, 300 and 300 MiB; p95 = 400 MiB,
	// +15% = 460 MiB, the limit equal to the request.
	if c.Memory.Percentile != 400*autopilot.MiB || c.Memory.Request != 460*autopilot.MiB ||
		c.Memory.Limit != 460*autopilot.MiB || c.Memory.CurrentRequest != autopilot.GiB || c.Memory.CurrentLimit != autopilot.GiB {
		t.Errorf("memory %+v", c.Memory)
	}
	// 10 req/s on one replica: target 10, 1 to ceil(11.5/10) = 2 replicas,
	// never idle.
	if s := web.Scaling; s == nil || s.TargetRPS != 10 || s.MinReplicas != 1 || s.MaxReplicas != 2 {
		t.Errorf("scaling %+v", web.Scaling)
	}
	if a := web.Autoshutdown; a == nil || a.Recommended || a.IdleShare != 0 {
		t.Errorf("autoshutdown %+v", web.Autoshutdown)
	}
	// 1Gi requested, 460Mi recommended: no risk, and $11.49 a month is
	// less than the $100 of a warning.
	if web.Severity != autopilot.SeverityOK {
		t.Errorf("severity %s", web.Severity)
	}
	// Cost: (1 * 0.0316 + 1 * 0.0042) * 730 = 26.13 now;
	// (0.575 * 0.0316 + 460/1024 * 0.0042) * 730 = 14.64 recommended:
	// 0.425 * 0.0316 * 730 = 9.80 from CPU, 564/1024 * 0.0042 * 730 = 1.69
	// from memory.
	if want := (autopilot.Cost{MonthlyNow: 26.13, MonthlyRecommended: 14.64, MonthlySavings: 11.49,
		SavingsBy: autopilot.Savings{CPU: 9.8, Memory: 1.69}}); web.Cost != want {
		t.Errorf("cost %+v, want %+v", web.Cost, want)
	}

	// The graphics engine's 20% wins over DCGM_FI_DEV_GPU_UTIL's 90%:
	// 20/80 = 0.25 of the GPU, 6000 MiB * 1.15 = 6900 MiB: MIG 2g.10gb.
	g := byName["ml/llm"].GPU
	if g == nil || g.UtilP95 != 20 || g.FramebufferTotalMiB != 40960 || g.FramebufferUsedMiB != 6000 ||
		g.Action != autopilot.GPUMIG || g.Recommended != "MIG 2g.10gb" || math.Abs(g.GPUs-2.0/7) > 1e-9 {
		t.Errorf("gpu %+v", g)
	}

	checkKnownReplicasAndTGI(t, byName)

	wantPatch := `shop/web: {"metadata":{"annotations":{"ebb.dev/recommendation":"{\"schema\":\"ebb.dev/autopilot/v3\",\"generatedAt\":\"2026-01-04T00:10:00Z\",\"severity\":\"ok\",\"containers\":{\"app\":{\"cpuRequest\":\"575m\",\"memoryRequest\":\"460Mi\",\"memoryLimit\":\"460Mi\"}},\"minReplicas\":1,\"maxReplicas\":2,\"targetRPS\":10}"}}}`
	if !strings.Contains(stdout.String(), wantPatch+"\n") {
		t.Errorf("stdout lacks the patch %s:\n%s", wantPatch, stdout.String())
	}
	if want, _ := json.Marshal(wantWebAnnotation); !strings.Contains(wantPatch, string(want)) {
		t.Errorf("the dry run's patch and wantWebAnnotation differ")
	}
}

// checkKnownReplicasAndTGI checks shop/report's backtest against its
// replicas over time, and ml/tgi's KV cache and OOM kills.
func checkKnownReplicasAndTGI(t *testing.T, byName map[string]autopilot.WorkloadReport) {
	t.Helper()
	// shop/report is active (10 req/s) at the steps to 240k+5m and
	// 240k+10m of each 4-hour cycle k. With idleAfter 5m it turns idle at
	// 240k+15m, reaches zero after the 5m cooldown at 240k+20m, and stays
	// there through the step of the next traffic: 45 steps of 5m (240k+25m
	// .. 240(k+1)+5m) in cycles 0-16, 44 in cycle 17 (to 72h), each of
	// cycles 1-17 starting cold: 17*45 + 44 = 809 steps = 67.417 hours,
	// 17 cold starts (5.667 a day).
	//
	// Replicas: 2 in the steps to 36h (2160m), 4 after (the change at
	// 36h02m). At zero: cycles 0-7 at 2 (8*45*2 = 720); cycle 8 (1945m ..
	// 2165m) 44 steps at 2 and one at 4 (92); cycles 9-16 at 4 (1440);
	// cycle 17 at 4 (176): 2428 replica-steps = 202.333 replica-hours of
	// the (432*2 + 432*4) * 5m = 216 used; 13.667 with idleAfter 5m.
	rep := byName["shop/report"]
	if rh := rep.ReplicaHistory; rh.Source != autopilot.ReplicasFromHistory || rh.Mean != 3 || rh.Min != 2 || rh.Max != 4 ||
		rh.Samples != 864 || rh.Hours != 72 || rh.ReplicaHours != 216 {
		t.Errorf("shop/report replicas %+v", rh)
	}
	a := rep.Autoshutdown
	if a == nil || !a.Recommended || a.IdleAfter != "5m" || a.ReplicaHoursUsed != 216 {
		t.Fatalf("shop/report autoshutdown %+v", a)
	}
	// Its wake time is the activator's mean, 201s / 17 = 11.8s, rounded to
	// 12s, not --cold-start's 15s for CPU workloads; shop/web, never woken,
	// keeps the flag's.
	if a.ColdStart != "12s" || a.ColdStartWakes != 17 || a.ColdStartFrom != "measured by ebb's activator: mean of 17 wakes" {
		t.Errorf("shop/report wake time %q from %q (%d wakes)", a.ColdStart, a.ColdStartFrom, a.ColdStartWakes)
	}
	if w := byName["shop/web"].Autoshutdown; w == nil || w.ColdStart != "15s" || w.ColdStartFrom != "default" || w.ColdStartWakes != 0 {
		t.Errorf("shop/web autoshutdown %+v, want --cold-start's 15s", w)
	}
	if c := a.Candidates[0]; c.IdleAfter != "5m" || c.ZeroHours != 67.417 || c.ColdStarts != 17 || c.ColdStartsPerDay != 5.667 ||
		c.ReplicaHoursSaved != 202.333 || c.ReplicaHoursWith != 13.667 || c.GPUHoursSaved != 0 {
		t.Errorf("shop/report idleAfter 5m: %+v", c)
	}
	// Cost: 0.5 cores and 512 MiB per replica, no usage samples (priced
	// as requested): 0.5 * 0.0316 + 0.5 * 0.0042 = 0.0179 an hour, times
	// 3 replicas on average and 730 hours = 39.20 now (today's 1 pod would
	// have said 13.07). Scaling: each replica handled 10/2 or 10/4 req/s,
	// p95 5: target 5, 1 to ceil(11.5/5) = 3 replicas; replayed, the 36
	// active steps of 864 need 2, the others 1: 900/864 = 1.0417 on
	// average, 13.067 * (3 - 1.0417) = 25.59 saved. idleAfter 5m keeps
	// that 1 replica at zero 67.417 of 72 hours: 13.067 * 0.93635 = 12.24
	// saved, 13.067 * 0.10532 = 1.38 left.
	if want := (autopilot.Cost{MonthlyNow: 39.2, MonthlyRecommended: 1.38, MonthlySavings: 37.82,
		SavingsBy: autopilot.Savings{Replicas: 25.59, Autoshutdown: 12.24}}); rep.Cost != want {
		t.Errorf("shop/report cost %+v, want %+v", rep.Cost, want)
	}
	// The store's 1-minute peaks size it: 10 req/s, the first at the step
	// ending 00:15 (the history starts at 00:10), none in the step after a
	// burst (whose range leaves out the minute ending at its start).
	if s := rep.Scaling; s == nil || s.TargetRPS != 5 || s.MinReplicas != 0 || s.MaxReplicas != 3 || s.ReplicasMean != 1.042 ||
		s.BurstRPS != 10 || s.BurstWindow != "1m" || !s.BurstAt.Equal(histStart.Add(5*time.Minute)) {
		t.Errorf("shop/report scaling %+v", rep.Scaling)
	}
	// Not at risk, and $37.82 a month is below a warning's $100.
	if rep.Severity != autopilot.SeverityOK {
		t.Errorf("shop/report severity %s, want ok", rep.Severity)
	}

	// ml/tgi: 6000 tokens of the 24000 --tgi-max-batch-total-tokens
	// assumes: 25%, from TGI.
	g := byName["ml/tgi"].GPU
	if g == nil || !g.KVCache || g.KVCacheSource != "tgi" || g.KVCacheP95 != 25 || g.KVCacheMax != 25 || g.RequestsWaitingMax != 1 {
		t.Errorf("ml/tgi gpu %+v", g)
	}
	// Three OOM kills in a row: restarts in the steps to 20h05m (1) and
	// 20h10m (2). Killed at the 8 GiB limit: max(8192 + 100, 8192 * 1.2 =
	// 9830.4) MiB -> 9831 MiB.
	c := byName["ml/tgi"].Containers
	if len(c) != 1 || c[0].OOMKills != 3 || c[0].OOMKillsFrom != autopilot.OOMFromRestarts || c[0].Memory.Request != 9831*autopilot.MiB {
		t.Errorf("ml/tgi containers %+v", c)
	}
}

// --annotate --apply patches the recommendations onto the workloads: shop/web
// is a Deployment, ml/llm a StatefulSet.
func checkKnownApply(t *testing.T, url string) {
	client := fake.NewClientset(
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Annotations: map[string]string{"team": "shop"}}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ml", Name: "llm"}},
	)
	deps := withoutLiveCluster(recommendDeps{getenv: func(string) string { return "" }, kubeClient: func(kubeconfig string) (kubernetes.Interface, error) {
		if kubeconfig != "/etc/ebb/kubeconfig" {
			t.Errorf("kubeconfig %q, want the flag's", kubeconfig)
		}
		return client, nil
	}})
	args := []string{
		"--prometheus-url=" + url, "--namespace=shop", "--namespace=ml",
		"--history=3d", "--end=" + histEnd.Format(time.RFC3339),
		"--format=json", "--output=" + filepath.Join(t.TempDir(), "report.json"),
		"--annotate", "--apply", "--kubeconfig=/etc/ebb/kubeconfig",
	}
	var stdout, stderr bytes.Buffer
	if err := recommend(context.Background(), args, &stdout, &stderr, deps); err != nil {
		t.Fatalf("%v\nstderr: %s", err, stderr.String())
	}
	for _, line := range []string{"shop/web: patched Deployment\n", "ml/llm: patched StatefulSet\n"} {
		if !strings.Contains(stdout.String(), line) {
			t.Errorf("stdout lacks %q:\n%s", line, stdout.String())
		}
	}
	web, err := client.AppsV1().Deployments("shop").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := web.Annotations; got[autopilot.AnnotationKey] != wantWebAnnotation || got["team"] != "shop" {
		t.Errorf("shop/web annotations %v, want %s and team=shop kept", got, wantWebAnnotation)
	}
	llm, err := client.AppsV1().StatefulSets("ml").Get(context.Background(), "llm", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var a autopilot.Annotation
	if err := json.Unmarshal([]byte(llm.Annotations[autopilot.AnnotationKey]), &a); err != nil || a.GPU != "MIG 2g.10gb" {
		t.Errorf("ml/llm annotation %q (%v), want gpu MIG 2g.10gb", llm.Annotations[autopilot.AnnotationKey], err)
	}
}

func keys(m map[string]autopilot.WorkloadReport) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// withoutLiveCluster keeps recommend_live.go's reading of the cluster out of
// a test of --apply: it finds no cluster, as outside one without a
// kubeconfig, and leaves the report to the store.
func withoutLiveCluster(d recommendDeps) recommendDeps {
	d.live.clients = func(string) (kubernetes.Interface, metricsclient.Interface, error) {
		return nil, nil, kube.ErrNoCluster
	}
	return d
}

// applyPatches reports each workload on its own line: a missing workload
// is skipped, a forbidden one fails the command after all were tried.
func TestRecommendApplyRows(t *testing.T) {
	at := time.Date(2026, 11, 16, 8, 0, 0, 0, time.UTC)
	client := fake.NewClientset(
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ml", Name: "llm"}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "locked", Name: "api"}},
	)
	client.PrependReactor("patch", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetNamespace() != "locked" {
			return false, nil, nil
		}
		gr := a.GetResource().GroupResource()
		return true, nil, apierrors.NewForbidden(gr, a.(k8stesting.PatchAction).GetName(),
			fmt.Errorf(`User "alice" cannot patch resource %q in API group "apps" in the namespace "locked"`, gr.Resource))
	})
	r := &autopilot.Report{Workloads: []autopilot.WorkloadReport{
		{Namespace: "shop", Name: "web", Severity: autopilot.SeverityOK},
		{Namespace: "locked", Name: "api", Severity: autopilot.SeverityWarning},
		{Namespace: "shop", Name: "gone", Severity: autopilot.SeverityOK},
		{Namespace: "ml", Name: "llm", Severity: autopilot.SeverityCritical},
	}}
	var out bytes.Buffer
	err := applyPatches(context.Background(), &out, client, r, at)
	if err == nil || err.Error() != "--apply: 1 of 4 workloads not patched (see above)" {
		t.Errorf("got %v", err)
	}
	want := "\n# --apply: setting ebb.dev/recommendation on each workload\n" +
		"shop/web: patched Deployment\n" +
		`locked/api: not patched: patch deployments.apps in namespace "locked": deployments.apps "api" is forbidden: ` +
		`User "alice" cannot patch resource "deployments" in API group "apps" in the namespace "locked"; ebb's permissions are in deploy/02-rbac.yaml` + "\n" +
		"shop/gone: skipped, no Deployment or StatefulSet of that name\n" +
		"ml/llm: patched StatefulSet\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	llm, err := client.AppsV1().StatefulSets("ml").Get(context.Background(), "llm", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := llm.Annotations[autopilot.AnnotationKey], `{"schema":"ebb.dev/autopilot/v3","generatedAt":"2026-11-16T08:00:00Z","severity":"critical"}`; got != want {
		t.Errorf("ml/llm annotation %s, want %s", got, want)
	}
}

// --apply finds its cluster before it reads any history.
func TestRecommendApplyKubeconfig(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".kube"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".kube", "config"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	errStop := errors.New("stop here")
	f := func(args []string, env map[string]string, connect bool, want string) {
		t.Helper()
		got := "(not called)"
		deps := withoutLiveCluster(recommendDeps{getenv: func(k string) string { return env[k] }})
		if connect {
			deps.kubeClient = func(kubeconfig string) (kubernetes.Interface, error) {
				got = kubeconfig
				return nil, errStop
			}
		}
		// Nothing listens on port 1: reading history would fail otherwise.
		args = append([]string{"--prometheus-url=http://127.0.0.1:1", "--annotate", "--apply"}, args...)
		err := recommend(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{}, deps)
		if connect {
			if !errors.Is(err, errStop) || err.Error() != "--apply: stop here" {
				t.Errorf("%v: got %v, want the client's error", args, err)
			}
			if got != want {
				t.Errorf("%v with %v: kubeconfig %q, want %q", args, env, got, want)
			}
			return
		}
		if err == nil || err.Error() != want {
			t.Errorf("%v: got %v, want %q", args, err, want)
		}
	}
	f([]string{"--kubeconfig=/flag"}, map[string]string{"KUBECONFIG": "/env", "HOME": home}, true, "/flag")
	f(nil, map[string]string{"KUBECONFIG": "/env/a" + string(filepath.ListSeparator) + "/env/b", "HOME": home}, true, "/env/a")
	f(nil, map[string]string{"HOME": home}, true, filepath.Join(home, ".kube", "config"))
	f(nil, map[string]string{"HOME": t.TempDir()}, true, "")
	f(nil, nil, false, "--apply: no cluster access: no kubeconfig given and not running in a cluster; pass --kubeconfig")
	f([]string{"--kubeconfig=/nonexistent/kubeconfig"}, nil, false,
		"--apply: kubeconfig /nonexistent/kubeconfig: stat /nonexistent/kubeconfig: no such file or directory")
}
