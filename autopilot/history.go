package autopilot

import (
	"fmt"
	"math"
	"time"

	"github.com/ebbscale/ebb/queries"
)

// ContainerRef names one container of one pod of a workload.
type ContainerRef struct {
	Workload  queries.WorkloadKey
	Pod       string
	Container string
}

// GPURef names one GPU of one pod of a workload, with its model as
// dcgm-exporter reports it ("NVIDIA A100-SXM4-40GB").
type GPURef struct {
	Workload queries.WorkloadKey
	Pod      string
	GPU      string
	Model    string
}

// History accumulates workloads' usage between Start and End as it is read,
// in a size that depends on the number of workloads, containers and pods,
// never on the length of the history: samples go into decaying histograms,
// daily peaks, streaming autoshutdown backtests and fixed-size chart bins.
//
// Samples of one series must be added in time order; series may interleave.
// The autoshutdown backtest takes a workload's replicas at the time of each
// request-rate sample, so Replicas of a time go in before RequestRate of the
// same time (PrometheusReader reads each chunk's replicas first).
// A History is not safe for concurrent use.
type History struct {
	cfg        Config
	start, end time.Time
	step       time.Duration
	workloads  map[queries.WorkloadKey]*workloadHistory
	finished   bool
	// tgiAssumed is the max batch total tokens assumed for TGI pods that
	// do not export theirs (TGIMetrics.AssumedMaxBatchTotalTokens).
	tgiAssumed int64
}

// ModelServer names the inference server a KV-cache or queue figure
// comes from.
type ModelServer string

// The model servers whose metrics autopilot reads.
const (
	VLLM ModelServer = "vllm" // vLLM
	TGI  ModelServer = "tgi"  // Hugging Face text-generation-inference
)

type workloadHistory struct {
	key        queries.WorkloadKey
	containers map[string]*containerHistory
	pods       map[string]bool // pods with current requests
	replicas   int             // set by SetReplicas; -1: count pods
	rps        *Histogram
	rpsActive  *Histogram // samples above the activation
	// rpsPerReplica is the active samples divided by the replicas that ran
	// then, where the history has replicas over time.
	rpsPerReplica *Histogram
	rpsChart      []float64
	rpsBinSum     []float64 // per chart bin, for its mean
	rpsBinN       []float64
	rpsSum        float64
	rpsMaxAt      time.Time // when the highest step rate was
	// rpsSteps counts every step's rate without decay, for the replay of
	// a recommended scaling.
	rpsSteps *Histogram
	// The highest 1-minute rate of each step (RequestPeak): per replica
	// while active, every step's without decay, the highest and when,
	// and per chart bin.
	peakPerReplica *Histogram
	peakActive     *Histogram
	peakSteps      *Histogram
	peakMax        float64
	peakAt         time.Time
	peakChart      []float64
	idleN          int // samples at or below the activation
	backtests      []*idleReplay
	gpu            *gpuHistory

	// Replicas over time, one sample per step (kube-state-metrics).
	replicaN       int
	replicaSum     float64 // of the samples
	replicaHours   float64 // the samples times the step
	replicaMin     float64
	replicaMax     float64
	replicaPending []replicaPoint // changes the request rate has not reached, in time order
	replicaNow     float64        // in effect at the last request-rate sample
	replicaKnown   bool           // replicaNow comes from a sample
	replicaChart   []float64      // the most replicas per chart bin

	wake wakeHistory // wake times from zero (wake.go)
}

// replicaPoint is a change of a workload's replicas.
type replicaPoint struct {
	t time.Time
	n float64
}

type containerHistory struct {
	cpu      *Histogram
	memPeaks *Histogram // one sample per pod and day: its peak
	memMax   float64
	memN     int
	memFirst time.Time
	memLast  time.Time
	day      map[string]*dayPeak // per pod: the peak of its current day
	oom      map[string]*podOOM  // per pod
	ooms     int                 // set by finish
	oomFrom  string              // set by finish: the signals the count comes from
	current  Resources
	cpuChart []float64
	cpuBins  *binSampler // for each bin's p50 and p90
	memChart []float64
}

// podOOM is what one pod's container says of OOM kills.
type podOOM struct {
	flag     bool // the last value of the "last terminated: OOMKilled" flag
	flagSeen bool
	rises    int  // rises of the flag, and a flag up at the first sample
	restarts int  // restarts while the last termination was an OOM kill
	counted  bool // the restart counter was read: restarts is the count
	// The chart bins of the rises and of the restarts.
	riseBins, restartBins map[int]int
}

// kills is the pod's OOM kills: its restarts while OOMKilled where the
// restart counter was read, else the rises of the flag, which count
// several kills in a row as one.
func (p *podOOM) kills() int {
	if p.counted {
		return p.restarts
	}
	return p.rises
}

type dayPeak struct {
	day  int
	peak float64
	at   time.Time
}

// Resources are a container's requests and limits; 0 means not set.
type Resources struct {
	CPURequest    float64 `json:"cpuRequestCores"`
	CPULimit      float64 `json:"cpuLimitCores"`
	MemoryRequest float64 `json:"memoryRequestBytes"`
	MemoryLimit   float64 `json:"memoryLimitBytes"`
	GPUs          float64 `json:"gpus"`
}

type gpuHistory struct {
	util      *Histogram // per GPU, percent
	model     string
	fbUsed    float64 // highest framebuffer in use on one GPU, MiB
	fbTotal   float64 // framebuffer of one GPU, MiB
	gpusOfPod map[string]map[string]bool
	kv        *Histogram // percent
	kvMax     float64
	kvFrom    map[ModelServer]bool // the servers the KV-cache samples come from
	waiting   float64              // highest queue: vLLM's requests waiting, TGI's queue size
	tgi       bool                 // a TGI server reported its queue
	// Per chart bin: the sum and count of utilization samples, the
	// highest utilization, KV-cache usage and framebuffer in use.
	utilSum, utilN, utilMax, kvChart, fbChart []float64
}

// NewHistory returns an empty history of (start, end] read every step.
func NewHistory(cfg Config, start, end time.Time, step time.Duration) (*History, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case !end.After(start):
		return nil, fmt.Errorf("history: end %v is not after start %v", end, start)
	case step <= 0 || step > end.Sub(start):
		return nil, fmt.Errorf("history: step = %v, must be in (0, %v]", step, end.Sub(start))
	}
	return &History{cfg: cfg, start: start, end: end, step: step, workloads: map[queries.WorkloadKey]*workloadHistory{}}, nil
}

// Start, End and Step return what the history covers.
func (h *History) Start() time.Time    { return h.start }
func (h *History) End() time.Time      { return h.end }
func (h *History) Step() time.Duration { return h.step }

func (h *History) workload(k queries.WorkloadKey) *workloadHistory {
	w := h.workloads[k]
	if w == nil {
		w = &workloadHistory{key: k, containers: map[string]*containerHistory{}, pods: map[string]bool{}, replicas: -1}
		h.workloads[k] = w
	}
	return w
}

func (h *History) container(r ContainerRef) *containerHistory {
	w := h.workload(r.Workload)
	c := w.containers[r.Container]
	if c == nil {
		// The options were validated by NewHistory.
		cpu, _ := NewHistogram(h.cfg.CPU, h.start)
		mem, _ := NewHistogram(h.cfg.Memory, h.start)
		c = &containerHistory{
			cpu: cpu, memPeaks: mem,
			day: map[string]*dayPeak{}, oom: map[string]*podOOM{},
			cpuChart: h.newChart(), memChart: h.newChart(),
			cpuBins: newBinSampler(h.cfg.ChartBins),
		}
		w.containers[r.Container] = c
	}
	return c
}

func (h *History) newChart() []float64 {
	c := make([]float64, h.cfg.ChartBins)
	for i := range c {
		c[i] = math.NaN()
	}
	return c
}

// bin returns the chart bin of t, -1 outside the history.
func (h *History) bin(t time.Time) int {
	if t.Before(h.start) || t.After(h.end) {
		return -1
	}
	i := int(int64(t.Sub(h.start)) * int64(h.cfg.ChartBins) / int64(h.end.Sub(h.start)))
	return min(i, h.cfg.ChartBins-1)
}

func chartMax(c []float64, i int, v float64) {
	if i >= 0 && !(c[i] >= v) {
		c[i] = v
	}
}

func valid(v float64) bool { return v >= 0 && !math.IsInf(v, 0) }

// CPU adds a container's CPU usage in cores at t.
func (h *History) CPU(r ContainerRef, t time.Time, cores float64) {
	if !valid(cores) {
		return
	}
	c := h.container(r)
	c.cpu.Add(cores, 1, t)
	chartMax(c.cpuChart, h.bin(t), cores)
	c.cpuBins.add(h.bin(t), cores)
}

// Memory adds a container's working set in bytes at t. The recommender uses
// each pod's peak of each day (24 h from Start).
func (h *History) Memory(r ContainerRef, t time.Time, bytes float64) {
	if !valid(bytes) {
		return
	}
	c := h.container(r)
	c.memMax = max(c.memMax, bytes)
	c.memN++
	if c.memFirst.IsZero() || t.Before(c.memFirst) {
		c.memFirst = t
	}
	if t.After(c.memLast) {
		c.memLast = t
	}
	chartMax(c.memChart, h.bin(t), bytes)
	day := int(t.Sub(h.start) / (24 * time.Hour))
	p := c.day[r.Pod]
	switch {
	case p == nil:
		c.day[r.Pod] = &dayPeak{day: day, peak: bytes, at: t}
	case p.day != day:
		c.memPeaks.Add(p.peak, 1, p.at)
		*p = dayPeak{day: day, peak: bytes, at: t}
	case bytes > p.peak:
		p.peak, p.at = bytes, t
	}
}

func (c *containerHistory) podOOM(pod string) *podOOM {
	p := c.oom[pod]
	if p == nil {
		p = &podOOM{}
		c.oom[pod] = p
	}
	return p
}

// OOMKilled adds the state of a container's "last terminated because
// OOMKilled" flag at t. It is the fallback for pods without OOMRestarts:
// every rise of the flag, and a flag already up in the first sample of a
// pod, counts as one OOM kill, so kills in a row count once.
func (h *History) OOMKilled(r ContainerRef, t time.Time, killed bool) {
	p := h.container(r).podOOM(r.Pod)
	if killed && (!p.flagSeen || !p.flag) {
		p.rises++
		p.riseBins = addBin(p.riseBins, h.bin(t), 1)
	}
	p.flag, p.flagSeen = killed, true
}

// OOMRestarts adds how often a container restarted in the step that ends
// at t while its last termination was an OOM kill: its OOM kills in the
// step. Once a pod's container has any, they are its count of OOM kills,
// and OOMKilled's flag is no longer used for it.
func (h *History) OOMRestarts(r ContainerRef, t time.Time, n float64) {
	p := h.container(r).podOOM(r.Pod)
	p.counted = true
	if valid(n) {
		p.restarts += int(math.Round(n))
		p.restartBins = addBin(p.restartBins, h.bin(t), int(math.Round(n)))
	}
}

// SetResources records a container's current requests and limits; the pod
// counts as a current replica of its workload.
func (h *History) SetResources(r ContainerRef, res Resources) {
	c := h.container(r)
	c.current = res
	h.workload(r.Workload).pods[r.Pod] = true
}

// SetReplicas sets a workload's current replicas; without it the replicas
// are the pods given to SetResources.
func (h *History) SetReplicas(w queries.WorkloadKey, n int) {
	h.workload(w).replicas = n
}

// Replicas adds a workload's replicas at t, the most it ran in the step
// that ends at t (kube-state-metrics' status.replicas of its Deployment or
// StatefulSet). A workload with none is taken to have run its current
// replicas throughout; one with some, none before its first.
func (h *History) Replicas(k queries.WorkloadKey, t time.Time, n float64) {
	if !valid(n) {
		return
	}
	w := h.workload(k)
	if w.replicaN == 0 {
		w.replicaMin, w.replicaMax = n, n
	}
	w.replicaN++
	w.replicaSum += n
	w.replicaHours += n * h.step.Hours()
	w.replicaMin, w.replicaMax = min(w.replicaMin, n), max(w.replicaMax, n)
	if w.replicaChart == nil {
		w.replicaChart = h.newChart()
	}
	chartMax(w.replicaChart, h.bin(t), n)
	// Only changes are kept until the request rate reaches them.
	last, known := w.replicaNow, w.replicaKnown
	if p := w.replicaPending; len(p) > 0 {
		last, known = p[len(p)-1].n, true
	}
	if !known || last != n {
		w.replicaPending = append(w.replicaPending, replicaPoint{t: t, n: n})
	}
}

// replicasAt returns the replicas in effect at t, and whether they come
// from a sample, and forgets the changes before.
func (w *workloadHistory) replicasAt(t time.Time) (float64, bool) {
	i := 0
	for ; i < len(w.replicaPending) && !w.replicaPending[i].t.After(t); i++ {
		w.replicaNow, w.replicaKnown = w.replicaPending[i].n, true
	}
	if i == len(w.replicaPending) {
		w.replicaPending = w.replicaPending[:0]
	} else {
		w.replicaPending = w.replicaPending[i:]
	}
	return w.replicaNow, w.replicaKnown
}

// settleReplicas forgets every workload's replica changes up to t, keeping
// the one in effect: memory holds at most the changes of one chunk of
// history, also for workloads without a request rate.
func (h *History) settleReplicas(t time.Time) {
	for _, w := range h.workloads {
		if len(w.replicaPending) > 0 {
			w.replicasAt(t)
		}
	}
}

// RequestRate adds a workload's total request rate at t.
func (h *History) RequestRate(k queries.WorkloadKey, t time.Time, rps float64) {
	if !valid(rps) {
		return
	}
	w := h.workload(k)
	if w.rps == nil {
		o := HistogramOptions{FirstBucket: 0.001, MaxValue: 1e7, Growth: h.cfg.CPU.Growth, HalfLife: h.cfg.CPU.HalfLife}
		w.rps, _ = NewHistogram(o, h.start)
		w.rpsActive, _ = NewHistogram(o, h.start)
		w.rpsSteps, _ = NewHistogram(stepOptions, h.start)
		w.rpsChart = h.newChart()
		w.rpsBinSum, w.rpsBinN = make([]float64, h.cfg.ChartBins), make([]float64, h.cfg.ChartBins)
		for _, c := range h.cfg.IdleAfterCandidates {
			w.backtests = append(w.backtests, newIdleReplay(h.cfg, c, h.step))
		}
	}
	if rps > w.rps.Max() || w.rpsMaxAt.IsZero() {
		w.rpsMaxAt = t
	}
	w.rps.Add(rps, 1, t)
	w.rpsSteps.Add(rps, 1, t)
	w.rpsSum += rps
	replicas, known := w.replicasAt(t)
	if rps <= h.cfg.Activation {
		w.idleN++
	} else {
		w.rpsActive.Add(rps, 1, t)
		if known && replicas > 0 {
			// What each replica handled then: an autoscaled workload's
			// replicas today say nothing about yesterday's peak.
			if w.rpsPerReplica == nil {
				o := HistogramOptions{FirstBucket: 0.001, MaxValue: 1e7, Growth: h.cfg.CPU.Growth, HalfLife: h.cfg.CPU.HalfLife}
				w.rpsPerReplica, _ = NewHistogram(o, h.start)
			}
			w.rpsPerReplica.Add(rps/replicas, 1, t)
		}
	}
	chartMax(w.rpsChart, h.bin(t), rps)
	if i := h.bin(t); i >= 0 {
		w.rpsBinSum[i] += rps
		w.rpsBinN[i]++
	}
	for _, b := range w.backtests {
		b.observe(t, rps, replicas, known)
	}
}

func (h *History) gpu(k queries.WorkloadKey) *gpuHistory {
	w := h.workload(k)
	if w.gpu == nil {
		util, _ := NewHistogram(HistogramOptions{FirstBucket: 0.1, MaxValue: 100, Growth: h.cfg.CPU.Growth, HalfLife: h.cfg.CPU.HalfLife}, h.start)
		kv, _ := NewHistogram(HistogramOptions{FirstBucket: 0.1, MaxValue: 100, Growth: h.cfg.CPU.Growth, HalfLife: h.cfg.CPU.HalfLife}, h.start)
		w.gpu = &gpuHistory{util: util, kv: kv, gpusOfPod: map[string]map[string]bool{}, kvFrom: map[ModelServer]bool{},
			utilSum: make([]float64, h.cfg.ChartBins), utilN: make([]float64, h.cfg.ChartBins),
			utilMax: h.newChart(), kvChart: h.newChart(), fbChart: h.newChart()}
	}
	return w.gpu
}

func (g *gpuHistory) see(r GPURef) {
	if r.Model != "" {
		g.model = r.Model
	}
	s := g.gpusOfPod[r.Pod]
	if s == nil {
		s = map[string]bool{}
		g.gpusOfPod[r.Pod] = s
	}
	s[r.GPU] = true
}

// GPUUtil adds one GPU's utilization in percent at t.
func (h *History) GPUUtil(r GPURef, t time.Time, percent float64) {
	if !valid(percent) {
		return
	}
	g := h.gpu(r.Workload)
	g.see(r)
	g.util.Add(min(percent, 100), 1, t)
	if i := h.bin(t); i >= 0 {
		g.utilSum[i] += min(percent, 100)
		g.utilN[i]++
		chartMax(g.utilMax, i, min(percent, 100))
	}
}

// Framebuffer adds one GPU's framebuffer in use at t and its total size
// (used + free; 0 if unknown), in MiB.
func (h *History) Framebuffer(r GPURef, t time.Time, usedMiB, totalMiB float64) {
	g := h.gpu(r.Workload)
	g.see(r)
	if valid(usedMiB) {
		g.fbUsed = max(g.fbUsed, usedMiB)
		if usedMiB > 0 {
			chartMax(g.fbChart, h.bin(t), usedMiB)
		}
	}
	if valid(totalMiB) {
		g.fbTotal = max(g.fbTotal, totalMiB)
	}
}

// KVCache adds a model server's KV-cache usage (0 to 1) at t: vLLM's
// kv_cache_usage_perc, or TGI's tokens held by the running batch over its
// max batch total tokens.
func (h *History) KVCache(k queries.WorkloadKey, server ModelServer, t time.Time, usage float64) {
	if !valid(usage) {
		return
	}
	g := h.gpu(k)
	g.kv.Add(min(usage, 1)*100, 1, t)
	g.kvMax = max(g.kvMax, min(usage, 1)*100)
	g.kvFrom[server] = true
	chartMax(g.kvChart, h.bin(t), min(usage, 1)*100)
}

// RequestsWaiting adds a model server's queue length at t: vLLM's requests
// waiting, TGI's queue size. A TGI queue marks the workload as served by
// TGI, whose framebuffer is preallocated even when its KV-cache usage is
// unknown.
func (h *History) RequestsWaiting(k queries.WorkloadKey, server ModelServer, t time.Time, n float64) {
	if valid(n) {
		g := h.gpu(k)
		g.waiting = max(g.waiting, n)
		g.tgi = g.tgi || server == TGI
	}
}

// finish folds the pending daily peaks into the histograms; it is
// idempotent. A workload without request-rate series gets no scaling or
// autoshutdown advice: its traffic is not visible to the requests signal
// (it is not in the mesh, or not scraped), so "no series" cannot be read as
// "no traffic" — a database outside the mesh must never be advised to shut
// down.
func (h *History) finish() {
	if h.finished {
		return
	}
	h.finished = true
	for _, w := range h.workloads {
		for _, c := range w.containers {
			for pod, p := range c.day {
				c.memPeaks.Add(p.peak, 1, p.at)
				delete(c.day, pod)
			}
			c.ooms, c.oomFrom = c.oomKills()
		}
		for _, b := range w.backtests {
			b.finish(h.end)
		}
	}
}

// oomKills sums the OOM kills of the container's pods and says which
// signals they come from: "restarts", "last-terminated-reason" (the
// fallback), or both.
func (c *containerHistory) oomKills() (int, string) {
	n, counted, flagged := 0, false, false
	for _, p := range c.oom {
		k := p.kills()
		n += k
		if k > 0 && p.counted {
			counted = true
		} else if k > 0 {
			flagged = true
		}
	}
	switch {
	case counted && flagged:
		return n, OOMFromRestarts + ", " + OOMFromReason
	case counted:
		return n, OOMFromRestarts
	case flagged:
		return n, OOMFromReason
	}
	return n, ""
}

// The signals OOM kills are counted from, in ContainerReport.OOMKillsFrom.
const (
	// OOMFromRestarts: restarts of the container while its last
	// termination was an OOM kill; every kill counts.
	OOMFromRestarts = "restarts"
	// OOMFromReason: rises of the "last terminated: OOMKilled" flag, where
	// the restart counter is missing; kills in a row count once.
	OOMFromReason = "last-terminated-reason"
)

// stepOptions shape the histograms that count every step without decay,
// for replays: 2% buckets up to 10 million requests per second.
var stepOptions = HistogramOptions{FirstBucket: 0.001, MaxValue: 1e7, Growth: 1.02}

// RequestPeak adds a workload's highest 1-minute request rate in the step
// that ends at t: maxReplicas and the per-replica target are sized on
// these bursts, which a step's mean hides. Without any, they are sized on
// RequestRate's step rates.
func (h *History) RequestPeak(k queries.WorkloadKey, t time.Time, rps float64) {
	if !valid(rps) {
		return
	}
	w := h.workload(k)
	if w.peakSteps == nil {
		o := HistogramOptions{FirstBucket: 0.001, MaxValue: 1e7, Growth: h.cfg.CPU.Growth, HalfLife: h.cfg.CPU.HalfLife}
		w.peakPerReplica, _ = NewHistogram(o, h.start)
		w.peakActive, _ = NewHistogram(o, h.start)
		w.peakSteps, _ = NewHistogram(stepOptions, h.start)
		w.peakChart = h.newChart()
	}
	w.peakSteps.Add(rps, 1, t)
	chartMax(w.peakChart, h.bin(t), rps)
	if rps > w.peakMax || w.peakAt.IsZero() {
		w.peakMax, w.peakAt = rps, t
	}
	if rps <= h.cfg.Activation {
		return
	}
	w.peakActive.Add(rps, 1, t)
	if n, known := w.replicasPeek(t); known && n > 0 {
		w.peakPerReplica.Add(rps/n, 1, t)
	}
}

// replicasPeek returns the replicas in effect at t without forgetting any
// change, so that it may run ahead of RequestRate.
func (w *workloadHistory) replicasPeek(t time.Time) (float64, bool) {
	n, known := w.replicaNow, w.replicaKnown
	for _, p := range w.replicaPending {
		if p.t.After(t) {
			break
		}
		n, known = p.n, true
	}
	return n, known
}
