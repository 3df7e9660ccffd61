package autopilot

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/promapi"
	"github.com/ebbscale/ebb/queries/storetest"
)

// fakeStore answers range queries with answer and records them.
type fakeStore struct {
	calls  []rangeCall
	answer func(c rangeCall) ([]promapi.Series, error)
}

type rangeCall struct {
	expr       string
	start, end time.Time
	step       time.Duration
}

func (f *fakeStore) Range(_ context.Context, expr string, start, end time.Time, step time.Duration) ([]promapi.Series, error) {
	c := rangeCall{expr, start, end, step}
	f.calls = append(f.calls, c)
	if f.answer == nil {
		return nil, nil
	}
	return f.answer(c)
}

var _ RangeQuerier = (*fakeStore)(nil)

// One query per metric and namespace and per chunk, the chunks tiling the
// history; the expressions are the catalog's.
func TestPrometheusReaderBatches(t *testing.T) {
	h := newHistory(t, DefaultConfig(), 50*time.Hour, 5*time.Minute)
	store := &fakeStore{}
	var progress [][2]int
	r := &PrometheusReader{Store: store, Namespaces: []string{"a", "b"}, Chunk: 24 * time.Hour,
		Progress: func(done, total int) { progress = append(progress, [2]int{done, total}) }}
	if err := r.Read(context.Background(), h); err != nil {
		t.Fatal(err)
	}

	cat := DefaultHistoryCatalog()
	expr := func(m HistoryMetric, ns string, w time.Duration) string {
		e, err := cat.Expr(m, ns, w)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	var want []rangeCall
	addAt := func(m HistoryMetric, from, to time.Time, step, w time.Duration) {
		nss := []string{""}
		if m.Namespaced() {
			nss = []string{"a", "b"}
		}
		for _, ns := range nss {
			want = append(want, rangeCall{expr(m, ns, w), from, to, step})
		}
	}
	add := func(m HistoryMetric, from, to time.Time) { addAt(m, from, to, 5*time.Minute, 5*time.Minute) }
	end := h.End()
	for _, m := range []HistoryMetric{HistoryRequests, HistoryLimits, HistoryFramebufferSize} {
		add(m, end, end)
	}
	// The activator's histogram over the whole 50h in three windows of
	// 16h40m; the wakes in the replicas over the last 48h at 30s, offset
	// by one step.
	tile := 16*time.Hour + 40*time.Minute
	addAt(HistoryActivatorWake, end.Add(-2*tile), end, tile, tile)
	addAt(HistoryWakes, end.Add(-48*time.Hour+30*time.Second), end, 30*time.Second, 30*time.Second)
	// (0, 50h] in chunks of 24h: (0, 24h], (24h, 48h], (48h, 50h]; in
	// each, the replicas before the request rate.
	perChunk := []HistoryMetric{
		HistoryCPU, HistoryMemory, HistoryOOMKills, HistoryOOMRestarts,
		HistoryReplicas, HistoryRequestPeak, HistoryRequestRate,
		HistoryGPUUtil, HistoryFramebufferUsed,
		HistoryKVCache, HistoryRequestsWaiting, HistoryTGIKVCache, HistoryTGIQueue,
	}
	if len(perChunk)+5 != len(HistoryMetrics) {
		t.Fatalf("the test reads %d metrics, there are %d", len(perChunk)+5, len(HistoryMetrics))
	}
	for _, c := range [][2]time.Duration{{5 * time.Minute, 24 * time.Hour}, {24*time.Hour + 5*time.Minute, 48 * time.Hour}, {48*time.Hour + 5*time.Minute, 50 * time.Hour}} {
		for _, m := range perChunk {
			add(m, t0.Add(c[0]), t0.Add(c[1]))
		}
	}
	if len(store.calls) != len(want) {
		t.Fatalf("got %d queries, want %d", len(store.calls), len(want))
	}
	for i := range want {
		if store.calls[i] != want[i] {
			t.Errorf("query %d:\n got %+v\nwant %+v", i, store.calls[i], want[i])
		}
	}
	// 7 at the end (requests, limits and the activator twice, framebuffer
	// size once), the wakes twice, then 22 per chunk (9 metrics twice, 4
	// once).
	if n := len(progress); n != 75 || progress[n-1] != [2]int{75, 75} || progress[0] != [2]int{1, 75} {
		t.Errorf("progress %v, want 1/75 to 75/75", progress)
	}
}

// Rates and *_over_time take at least a minute; the OOM restarts take the
// counter's growth over exactly one step, so that each restart counts once.
func TestPrometheusReaderOOMRestartsWindow(t *testing.T) {
	h := newHistory(t, DefaultConfig(), time.Hour, 30*time.Second)
	store := &fakeStore{}
	if err := (&PrometheusReader{Store: store, Namespaces: []string{"a"}}).Read(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	var oom, cpu string
	for _, c := range store.calls {
		switch {
		case strings.Contains(c.expr, "kube_pod_container_status_restarts_total"):
			oom = c.expr
		case strings.Contains(c.expr, "container_cpu_usage_seconds_total"):
			cpu = c.expr
		}
	}
	if !strings.Contains(oom, "offset 30s") || !strings.Contains(oom, "[30s]") || !strings.Contains(cpu, "[1m]") {
		t.Errorf("oom restarts %s, cpu %s: want a 30s window and a 1m one", oom, cpu)
	}
}

func TestPrometheusReaderErrors(t *testing.T) {
	boom := errors.New("boom")
	h := newHistory(t, DefaultConfig(), 2*time.Hour, 5*time.Minute)
	store := &fakeStore{answer: func(c rangeCall) ([]promapi.Series, error) {
		if strings.Contains(c.expr, "max_over_time(container_memory_working_set_bytes") {
			return nil, boom
		}
		return nil, nil
	}}
	err := (&PrometheusReader{Store: store}).Read(context.Background(), h)
	if !errors.Is(err, boom) || err.Error() != "read memory: boom" {
		t.Errorf("got %v, want read memory: boom", err)
	}

	err = (&PrometheusReader{Store: store, Namespaces: []string{"shop", "Bad"}}).Read(context.Background(), h)
	if err == nil || err.Error() != `namespace "Bad": not a valid namespace name (DNS-1123 label)` {
		t.Errorf("got %v", err)
	}

	cat := DefaultHistoryCatalog()
	cat.Containers.CPU = "no such metric"
	err = (&PrometheusReader{Store: store, Catalog: cat}).Read(context.Background(), h)
	if err == nil || err.Error() != `history catalog: containers.cpu: "no such metric" is not a valid metric name` {
		t.Errorf("got %v", err)
	}
}

// The labels that place a row come from the catalog too.
func TestPrometheusReaderCustomLabels(t *testing.T) {
	cat := DefaultHistoryCatalog()
	cat.Containers.NamespaceLabel, cat.Containers.PodLabel, cat.Containers.ContainerLabel = "kns", "kpod", "kcontainer"
	h := newHistory(t, DefaultConfig(), 30*time.Hour, time.Hour)
	store := &fakeStore{answer: func(c rangeCall) ([]promapi.Series, error) {
		if !strings.Contains(c.expr, "rate(container_cpu_usage_seconds_total{kcontainer!=\"\"") {
			return nil, nil
		}
		s := promapi.Series{Labels: map[string]string{"kns": "shop", "kpod": "cart-0", "kcontainer": "app"}}
		for at := c.start; !at.After(c.end); at = at.Add(c.step) {
			s.Points = append(s.Points, promapi.Point{T: at, V: 0.4})
		}
		return []promapi.Series{s}, nil
	}}
	if err := (&PrometheusReader{Store: store, Catalog: cat}).Read(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	c := containerOfReport(t, mustRecommend(t, h), shop, "app")
	if c.CPU.Samples != 30 || c.CPU.Request != 0.46 {
		t.Errorf("cpu: %d samples, request %v; want 30 and 0.46", c.CPU.Samples, c.CPU.Request)
	}
}

// oomAndVLLM is two days of history read every 5m from hs, with samples
// every minute from the epoch (10m before hs):
//
//   - batch/etl (pod etl-0): container worker at 900 MiB with a 1 GiB limit,
//     its last termination OOMKilled from 10h02m to 20h02m and again from
//     40h02m on (two kills), and "Error" throughout (not an OOM kill);
//     container sidecar at 100 MiB without a limit, OOMKilled throughout
//     (one kill, seen in the first sample);
//   - llm/chat (pod chat-0): a vLLM server on two H100s, each at 20%
//     DCGM_FI_DEV_GPU_UTIL with 73000 of 81559 MiB of framebuffer in use,
//     as dcgm-exporter reports them from the gpu-operator namespace (the
//     pod in exported_ labels); KV cache at 25% under vLLM's current name
//     (and 90% under the old one, which it must not read); 7 requests
//     waiting once, at 30h03m;
//   - llm/legacy (pod legacy-0): KV cache at 50% under the old name only;
//   - other/x (pod x-0): KV cache and GPU, outside the namespaces read;
//   - batch/etl container loader at 300 MiB with a 512 MiB limit,
//     OOM-killed three times in a row: its restart counter goes to 1 at
//     12h02m, to 2 at 12h12m and to 3 at 12h13m, its last termination
//     OOMKilled from 12h02m on (one rise of the flag);
//   - llm/tgi (pod tgi-0): text-generation-inference on one A100 at 20%
//     with 36000 of 40960 MiB in use, its running batch holding 8000 of
//     its 32000 max batch total tokens, 5 requests queued once, at 30h03m;
//   - llm/tgi-old (pod tgi-old-0): an older TGI that does not export its
//     max batch total tokens: 4000 tokens held, 2 queued;
//   - replicas: Deployment batch/etl 3 throughout; StatefulSet llm/chat 1,
//     then 2 from 24h02m; Deployment batch/idle 0 throughout, with no
//     other data.
//
// Every change of a gauge falls between two steps of 5m, so that
// Prometheus 2.x's [t-5m, t] and VictoriaMetrics' (t-5m, t] see it at the
// same steps.
func oomAndVLLM(hs time.Time) []storetest.Series {
	end := hs.Add(48 * time.Hour)
	minutes := func(f func(at time.Duration) float64) []storetest.Sample {
		var out []storetest.Sample
		for at := storetest.Epoch; !at.After(end); at = at.Add(time.Minute) {
			out = append(out, storetest.Sample{T: at, V: f(at.Sub(hs))})
		}
		return out
	}
	constant := func(v float64) []storetest.Sample { return minutes(func(time.Duration) float64 { return v }) }
	labels := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	etl := func(container string, kv ...string) map[string]string {
		return labels(append([]string{"namespace", "batch", "pod", "etl-0", "container", container}, kv...)...)
	}
	h := func(hours, minutes int) time.Duration {
		return time.Duration(hours)*time.Hour + time.Duration(minutes)*time.Minute
	}
	workerOOM := minutes(func(at time.Duration) float64 {
		if at >= h(10, 2) && at < h(20, 2) || at >= h(40, 2) {
			return 1
		}
		return 0
	})
	gpu := func(index string) map[string]string {
		return labels("namespace", "gpu-operator", "pod", "nvidia-dcgm-exporter-x7k2p", "exported_namespace", "llm", "exported_pod", "chat-0",
			"gpu", index, "modelName", "NVIDIA H100 80GB HBM3")
	}
	chat := labels("namespace", "llm", "pod", "chat-0", "model_name", "llama")
	loaderRestarts := minutes(func(at time.Duration) float64 {
		switch {
		case at >= h(12, 13):
			return 3
		case at >= h(12, 12):
			return 2
		case at >= h(12, 2):
			return 1
		}
		return 0
	})
	loaderOOM := minutes(func(at time.Duration) float64 {
		if at >= h(12, 2) {
			return 1
		}
		return 0
	})
	tgiGPU := labels("namespace", "llm", "pod", "tgi-0", "gpu", "0", "modelName", "NVIDIA A100-SXM4-40GB")
	tgi := labels("namespace", "llm", "pod", "tgi-0")
	tgiOld := labels("namespace", "llm", "pod", "tgi-old-0")
	chatReplicas := minutes(func(at time.Duration) float64 {
		if at >= h(24, 2) {
			return 2
		}
		return 1
	})
	return []storetest.Series{
		{Metric: "container_memory_working_set_bytes", Labels: etl("loader"), Samples: constant(300 * MiB)},
		{Metric: "kube_pod_container_resource_limits", Labels: etl("loader", "resource", "memory", "unit", "byte"), Samples: constant(512 * MiB)},
		{Metric: "kube_pod_container_status_restarts_total", Labels: etl("loader"), Samples: loaderRestarts},
		{Metric: "kube_pod_container_status_last_terminated_reason", Labels: etl("loader", "reason", "OOMKilled"), Samples: loaderOOM},

		{Metric: "DCGM_FI_DEV_GPU_UTIL", Labels: tgiGPU, Samples: constant(20)},
		{Metric: "DCGM_FI_DEV_FB_USED", Labels: tgiGPU, Samples: constant(36000)},
		{Metric: "DCGM_FI_DEV_FB_FREE", Labels: tgiGPU, Samples: constant(4960)},
		{Metric: "tgi_batch_current_max_tokens", Labels: tgi, Samples: constant(8000)},
		{Metric: "tgi_batch_max_total_tokens", Labels: tgi, Samples: constant(32000)},
		{Metric: "tgi_queue_size", Labels: tgi, Samples: minutes(func(at time.Duration) float64 {
			if at == h(30, 3) {
				return 5
			}
			return 0
		})},
		{Metric: "tgi_batch_current_max_tokens", Labels: tgiOld, Samples: constant(4000)},
		{Metric: "tgi_queue_size", Labels: tgiOld, Samples: constant(2)},

		{Metric: "kube_deployment_status_replicas", Labels: labels("namespace", "batch", "deployment", "etl"), Samples: constant(3)},
		{Metric: "kube_deployment_status_replicas", Labels: labels("namespace", "batch", "deployment", "idle"), Samples: constant(0)},
		{Metric: "kube_statefulset_status_replicas", Labels: labels("namespace", "llm", "statefulset", "chat"), Samples: chatReplicas},

		{Metric: "container_memory_working_set_bytes", Labels: etl("worker"), Samples: constant(900 * MiB)},
		{Metric: "container_memory_working_set_bytes", Labels: etl("sidecar"), Samples: constant(100 * MiB)},
		{Metric: "kube_pod_container_resource_requests", Labels: etl("worker", "resource", "memory", "unit", "byte"), Samples: constant(512 * MiB)},
		{Metric: "kube_pod_container_resource_limits", Labels: etl("worker", "resource", "memory", "unit", "byte"), Samples: constant(GiB)},
		{Metric: "kube_pod_container_status_last_terminated_reason", Labels: etl("worker", "reason", "OOMKilled"), Samples: workerOOM},
		{Metric: "kube_pod_container_status_last_terminated_reason", Labels: etl("worker", "reason", "Error"), Samples: constant(1)},
		{Metric: "kube_pod_container_status_last_terminated_reason", Labels: etl("sidecar", "reason", "OOMKilled"), Samples: constant(1)},

		{Metric: "DCGM_FI_DEV_GPU_UTIL", Labels: gpu("0"), Samples: constant(20)},
		{Metric: "DCGM_FI_DEV_GPU_UTIL", Labels: gpu("1"), Samples: constant(20)},
		{Metric: "DCGM_FI_DEV_FB_USED", Labels: gpu("0"), Samples: constant(73000)},
		{Metric: "DCGM_FI_DEV_FB_USED", Labels: gpu("1"), Samples: constant(73000)},
		{Metric: "DCGM_FI_DEV_FB_FREE", Labels: gpu("0"), Samples: constant(8559)},
		{Metric: "DCGM_FI_DEV_FB_FREE", Labels: gpu("1"), Samples: constant(8559)},
		{Metric: "vllm:kv_cache_usage_perc", Labels: chat, Samples: constant(0.25)},
		{Metric: "vllm:gpu_cache_usage_perc", Labels: chat, Samples: constant(0.9)},
		{Metric: "vllm:num_requests_waiting", Labels: chat, Samples: minutes(func(at time.Duration) float64 {
			if at == h(30, 3) {
				return 7
			}
			return 0
		})},
		{Metric: "vllm:gpu_cache_usage_perc", Labels: labels("namespace", "llm", "pod", "legacy-0"), Samples: constant(0.5)},

		{Metric: "vllm:kv_cache_usage_perc", Labels: labels("namespace", "other", "pod", "x-0"), Samples: constant(0.5)},
		{Metric: "DCGM_FI_DEV_GPU_UTIL", Labels: labels("namespace", "gpu-operator", "pod", "nvidia-dcgm-exporter-x7k2p",
			"exported_namespace", "other", "exported_pod", "x-0", "gpu", "2", "modelName", "Tesla T4"), Samples: constant(50)},
	}
}

// OOM kills and vLLM's KV cache read from a real Prometheus and a real
// VictoriaMetrics give the numbers computed by hand.
func TestPrometheusReaderOOMAndVLLM(t *testing.T) {
	if testing.Short() {
		t.Skip("needs real stores; skipped with -short")
	}
	hs := storetest.Epoch.Add(10 * time.Minute)
	history := oomAndVLLM(hs)
	stores := []struct {
		name  string
		start func(t *testing.T) *storetest.Server
	}{
		{"prometheus", func(t *testing.T) *storetest.Server {
			return storetest.StartPrometheus(t, storetest.PromOptions{History: history})
		}},
		{"victoriametrics", func(t *testing.T) *storetest.Server {
			return storetest.StartVictoriaMetrics(t, storetest.VMOptions{History: history})
		}},
	}
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			srv := s.start(t)
			store, err := promapi.NewPrometheus(promapi.PrometheusConfig{URL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			h, err := NewHistory(DefaultConfig(), hs, hs.Add(48*time.Hour), 5*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			r := &PrometheusReader{Store: store, Namespaces: []string{"batch", "llm"}}
			if err := r.Read(context.Background(), h); err != nil {
				t.Fatal(err)
			}
			checkOOMAndVLLM(t, mustRecommend(t, h))

			// With 16000 max batch total tokens assumed, the older TGI's
			// 4000 tokens are 25%; tgi-0 keeps its own 32000.
			h, err = NewHistory(DefaultConfig(), hs, hs.Add(48*time.Hour), 5*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			r.Catalog = DefaultHistoryCatalog()
			r.Catalog.TGI.AssumedMaxBatchTotalTokens = 16000
			if err := r.Read(context.Background(), h); err != nil {
				t.Fatal(err)
			}
			rep := mustRecommend(t, h)
			if g := workloadOf(t, rep, queries.WorkloadKey{Namespace: "llm", Name: "tgi-old"}).GPU; g == nil || !g.KVCache ||
				g.KVCacheSource != "tgi" || g.KVCacheP95 != 25 || g.KVCacheMax != 25 {
				t.Errorf("llm/tgi-old with 16000 assumed: gpu %+v", g)
			}
			if g := workloadOf(t, rep, queries.WorkloadKey{Namespace: "llm", Name: "tgi"}).GPU; g == nil || g.KVCacheMax != 25 ||
				!strings.Contains(g.Reason, "tokens held by the running batch over its max batch total tokens, 16000 where a pod does not export them") {
				t.Errorf("llm/tgi with 16000 assumed: gpu %+v", g)
			}
		})
	}
}

func checkOOMAndVLLM(t *testing.T, r *Report) {
	t.Helper()
	byName := map[string]WorkloadReport{}
	for _, w := range r.Workloads {
		byName[w.Namespace+"/"+w.Name] = w
	}
	var names []string
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)
	// batch/idle, with replicas only, is no row of the report.
	if want := []string{"batch/etl", "llm/chat", "llm/legacy", "llm/tgi", "llm/tgi-old"}; !slices.Equal(names, want) {
		t.Fatalf("workloads %v, want %v", names, want)
	}

	// The worker rose to OOMKilled twice. Killed at its 1 GiB limit: at
	// least max(1024 + 100, 1024 * 1.2 = 1228.8) MiB, rounded up to
	// 1229 MiB, above its daily peaks' 900 MiB + 15% = 1035 MiB.
	etl := byName["batch/etl"]
	worker := containerOfReport(t, r, queries.WorkloadKey{Namespace: "batch", Name: "etl"}, "worker")
	if worker.OOMKills != 2 || worker.Memory.Request != 1229*MiB || worker.Memory.Limit != 1229*MiB ||
		worker.Memory.CurrentRequest != 512*MiB || worker.Memory.CurrentLimit != GiB {
		t.Errorf("worker: %d OOM kills, memory %+v; want 2 and a request of 1229 MiB", worker.OOMKills, worker.Memory)
	}
	if want := "p95 of 3 daily peaks = 900Mi, +15%; OOM-killed 2 times at 1Gi: max(+100Mi, x1.2) = 1229Mi"; worker.Memory.Basis != want {
		t.Errorf("worker basis %q, want %q", worker.Memory.Basis, want)
	}
	// The sidecar was OOMKilled from its first sample: one kill. Without a
	// limit it was killed at its peak, 100 MiB: max(200, 120) MiB.
	sidecar := containerOfReport(t, r, queries.WorkloadKey{Namespace: "batch", Name: "etl"}, "sidecar")
	if sidecar.OOMKills != 1 || sidecar.Memory.Request != 200*MiB {
		t.Errorf("sidecar: %d OOM kills, memory request %v MiB; want 1 and 200", sidecar.OOMKills, sidecar.Memory.Request/MiB)
	}
	// The loader was OOM-killed three times in a row: its restart counter
	// grew by 1 in the step to 12h05m and by 2 in the step to 12h15m while
	// its last termination said OOMKilled, which rose only once. Killed at
	// its 512 MiB limit: max(612, 614.4) MiB -> 615 MiB.
	loader := containerOfReport(t, r, queries.WorkloadKey{Namespace: "batch", Name: "etl"}, "loader")
	if loader.OOMKills != 3 || loader.OOMKillsFrom != OOMFromRestarts || loader.Memory.Request != 615*MiB {
		t.Errorf("loader: %d OOM kills from %q, memory request %v MiB; want 3 from restarts and 615 MiB",
			loader.OOMKills, loader.OOMKillsFrom, loader.Memory.Request/MiB)
	}
	if worker.OOMKillsFrom != OOMFromReason || sidecar.OOMKillsFrom != OOMFromReason {
		t.Errorf("worker and sidecar counted from %q and %q, want the last terminated reason (no restart counter)", worker.OOMKillsFrom, sidecar.OOMKillsFrom)
	}
	// Replicas: etl 3 over 576 steps of 5m, 144 replica-hours; chat 1 in
	// the 288 steps to 24h, 2 in the 288 after (the change at 24h02m falls
	// in the step to 24h05m): 1.5 on average, 72 replica-hours.
	if rh := etl.ReplicaHistory; rh.Source != ReplicasFromHistory || rh.Mean != 3 || rh.Samples != 576 || rh.Hours != 48 || rh.ReplicaHours != 144 {
		t.Errorf("batch/etl replicas %+v", rh)
	}
	if rh := byName["llm/chat"].ReplicaHistory; rh.Source != ReplicasFromHistory || rh.Mean != 1.5 || rh.Min != 1 || rh.Max != 2 ||
		rh.Samples != 576 || rh.ReplicaHours != 72 {
		t.Errorf("llm/chat replicas %+v", rh)
	}
	if rh := byName["llm/legacy"].ReplicaHistory; rh.Source != ReplicasFromCurrent {
		t.Errorf("llm/legacy replicas %+v, want today's count", rh)
	}
	if etl.Severity != SeverityCritical {
		t.Errorf("batch/etl severity %s, want critical (512 MiB requested, 1229 MiB needed after OOM kills)", etl.Severity)
	}

	// chat: KV cache at 25% (vLLM's current name wins over the old one's
	// 90%), so the framebuffer's 73000 MiB, preallocated, is not the need.
	// Two GPUs at 20% are 2 * 20 / 80 = 0.5 GPUs' work: one GPU. By the
	// framebuffer it would have kept both (2 * 73000 * 1.15 > 81559).
	g := byName["llm/chat"].GPU
	if g == nil {
		t.Fatal("llm/chat: no GPU recommendation")
	}
	if !g.KVCache || g.KVCacheP95 != 25 || g.KVCacheMax != 25 || g.RequestsWaitingMax != 7 ||
		g.GPUsPerReplica != 2 || g.UtilP95 != 20 || g.FramebufferUsedMiB != 73000 || g.FramebufferTotalMiB != 81559 ||
		g.Class != "H100-80GB" || g.Action != GPUFewer || g.GPUs != 1 || g.Recommended != "1 x H100-80GB" {
		t.Errorf("llm/chat gpu %+v", g)
	}
	if want := "KV-cache usage is the measure: p95 25%, peak 25%"; !strings.Contains(g.Reason, want) {
		t.Errorf("llm/chat reason %q does not say %q", g.Reason, want)
	}
	// tgi: 8000 of 32000 tokens, 25%, from TGI; one GPU whose framebuffer
	// is preallocated, kept until TGI's preallocation is lowered.
	if g := byName["llm/tgi"].GPU; g == nil || !g.KVCache || g.KVCacheSource != "tgi" || g.KVCacheP95 != 25 || g.KVCacheMax != 25 ||
		g.RequestsWaitingMax != 5 || g.Action != GPUKeep || g.FramebufferTotalMiB != 40960 ||
		!strings.Contains(g.Reason, "TGI preallocates the framebuffer (36000 of 40960 MiB in use), so KV-cache usage is the measure: p95 25%, peak 25%") ||
		!strings.HasSuffix(g.Reason, "lower TGI's --cuda-memory-fraction to free memory before sharing the GPU") {
		t.Errorf("llm/tgi gpu %+v", g)
	}
	// tgi-old exports no capacity: no KV-cache figure, its queue still read.
	if g := byName["llm/tgi-old"].GPU; g == nil || g.KVCache || g.KVCacheSource != "" || g.RequestsWaitingMax != 2 {
		t.Errorf("llm/tgi-old gpu %+v", g)
	}
	if g.KVCacheSource != "vllm" {
		t.Errorf("llm/chat kv cache from %q, want vllm", g.KVCacheSource)
	}
	// legacy: the old metric name, read where the new one is missing.
	if g := byName["llm/legacy"].GPU; g == nil || !g.KVCache || g.KVCacheP95 != 50 || g.Action != GPUNotEnough {
		t.Errorf("llm/legacy gpu %+v", g)
	}
}

// The activator's histogram is read in windows of at most a day that
// tile the history, never one window of all of it.
func TestWholeHistoryTiles(t *testing.T) {
	t.Parallel()
	end := t0.Add(30 * 24 * time.Hour)
	for _, c := range []struct {
		span, step time.Duration
		n          int
	}{
		{14 * 24 * time.Hour, 24 * time.Hour, 14},
		{50 * time.Hour, 16*time.Hour + 40*time.Minute, 3},
		{24 * time.Hour, 24 * time.Hour, 1},
		{25 * time.Hour, 12*time.Hour + 30*time.Minute, 2},
		{time.Hour, time.Hour, 1},
		{30 * time.Second, time.Minute, 1},
		// 48h1s / 3 = 16h0m0.333s, truncated to the second: the windows
		// start 1s after the history.
		{48*time.Hour + time.Second, 16 * time.Hour, 3},
	} {
		got := wholeHistoryTiles(end.Add(-c.span), end)
		want := tiles{from: end.Add(-time.Duration(c.n-1) * c.step), to: end, step: c.step}
		if got != want {
			t.Errorf("%v: got %+v, want %+v", c.span, got, want)
		}
	}
	odd := wholeHistoryTiles(end.Add(-(24*time.Hour + 10*time.Second)), end)
	if odd.step != 12*time.Hour+5*time.Second || !odd.from.Equal(end.Add(-odd.step)) {
		t.Errorf("24h10s: %+v, want 2 windows of 12h5s", odd)
	}
}
