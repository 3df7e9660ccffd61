package autopilot

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/shutdown"
)

// Recommend turns the history into a report priced with prices; source
// names where the history came from. It folds pending daily peaks into h, so
// nothing should be added to h afterwards.
func Recommend(h *History, prices Prices, source string) (*Report, error) {
	if err := prices.Validate(); err != nil {
		return nil, err
	}
	h.finish()
	cfg := h.cfg
	r := &Report{
		Schema:       SchemaVersion,
		Source:       source,
		HistoryStart: h.start.UTC(),
		HistoryEnd:   h.end.UTC(),
		Step:         shutdown.FormatDuration(h.step),
		Policy:       policyOf(cfg),
		Prices:       prices,
		Workloads:    []WorkloadReport{},
	}
	keys := make([]queries.WorkloadKey, 0, len(h.workloads))
	for k := range h.workloads {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b queries.WorkloadKey) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	for _, k := range keys {
		if wh := h.workloads[k]; len(wh.containers) == 0 && wh.rps == nil && wh.gpu == nil {
			continue // only replicas: a workload without usage to recommend on
		}
		w := h.recommendWorkload(h.workloads[k], prices)
		r.Workloads = append(r.Workloads, w)
		r.Totals.MonthlyNow += w.Cost.MonthlyNow
		r.Totals.MonthlyRecommended += w.Cost.MonthlyRecommended
		r.Totals.SavingsBy = r.Totals.SavingsBy.add(w.Cost.SavingsBy)
	}
	by := r.Totals.SavingsBy.rounded()
	r.Totals = costOf(r.Totals.MonthlyNow, r.Totals.MonthlyRecommended)
	r.Totals.SavingsBy = by
	slices.SortStableFunc(r.Workloads, func(a, b WorkloadReport) int {
		return cmp.Compare(b.Cost.MonthlySavings, a.Cost.MonthlySavings)
	})
	return r, nil
}

func policyOf(cfg Config) Policy {
	p := Policy{
		CPU: fmt.Sprintf("request = p%s of CPU usage +%s, at least %s; histograms with %s bucket growth and a %s half-life",
			pct(cfg.CPUPercentile), pctOf(cfg.Margin), FormatCPU(cfg.MinCPU), pctOf(cfg.CPU.Growth-1), shutdown.FormatDuration(cfg.CPU.HalfLife)),
		Memory: fmt.Sprintf("request = p%s of daily peaks +%s, at least %s; after an OOM kill at least max(+%s, x%s) of the memory it was killed at",
			pct(cfg.MemoryPercentile), pctOf(cfg.Margin), FormatMemory(cfg.MinMemory), FormatMemory(cfg.OOMMinBump), number(cfg.OOMFactor)),
		CPULimit:    "none: a CPU limit throttles a container even when the node has idle CPU; the request already guarantees its share",
		MemoryLimit: "equal to the request: memory cannot be throttled, only OOM-killed, and a limit above the request lets a container take memory the scheduler did not reserve",
		Autoshutdown: fmt.Sprintf("idleAfter backtested with ebb's idle policy (min uptime %s) plus a %s KEDA cooldown; the longest time at zero with at most %s cold starts a day, at least %s of the time at zero, and at most %s a day of waiting for cold starts (%s each for GPU model servers, %s for others), else one replica kept warm",
			shutdown.FormatDuration(cfg.MinUptime), shutdown.FormatDuration(cfg.Cooldown), number(cfg.MaxColdStartsPerDay), pctOf(cfg.MinIdleShare),
			shutdown.FormatDuration(cfg.MaxWaitPerDay), shutdown.FormatDuration(cfg.ColdStart.GPU), shutdown.FormatDuration(cfg.ColdStart.Other)),
	}
	if cfg.CPULimitFactor > 0 {
		p.CPULimit = fmt.Sprintf("the request x%s, as configured", number(cfg.CPULimitFactor))
	}
	switch {
	case cfg.MemoryLimitFactor == 0:
		p.MemoryLimit = "none, as configured: a container may use free node memory and is evicted first under pressure"
	case cfg.MemoryLimitFactor != 1:
		p.MemoryLimit = fmt.Sprintf("the request x%s, as configured", number(cfg.MemoryLimitFactor))
	}
	return p
}

func costOf(now, rec float64) Cost {
	now, rec = round(now, 2), round(rec, 2)
	return Cost{MonthlyNow: now, MonthlyRecommended: rec, MonthlySavings: round(now-rec, 2)}
}

func (h *History) recommendWorkload(w *workloadHistory, prices Prices) WorkloadReport {
	cfg := h.cfg
	replicas := w.replicas
	if replicas < 0 {
		replicas = len(w.pods)
	}
	out := WorkloadReport{Namespace: w.key.Namespace, Name: w.key.Name, Replicas: replicas, Containers: []ContainerReport{}}
	names := make([]string, 0, len(w.containers))
	for n := range w.containers {
		names = append(names, n)
	}
	slices.Sort(names)
	// Hourly prices of one replica: now and recommended, by resource.
	var cpuNow, cpuRec, memNow, memRec float64
	var risks []string
	known := false
	for _, n := range names {
		c := w.containers[n]
		cr := ContainerReport{
			Name:         n,
			CPU:          recommendCPU(cfg, c, h.step),
			Memory:       recommendMemory(cfg, c),
			OOMKills:     c.ooms,
			OOMKillsFrom: c.oomFrom,
		}
		out.Containers = append(out.Containers, cr)
		cpuNow += prices.containerHourly(c.current.CPURequest, 0)
		cpuRec += prices.containerHourly(recommendedOr(cr.CPU), 0)
		memNow += prices.containerHourly(0, c.current.MemoryRequest)
		memRec += prices.containerHourly(0, recommendedOr(cr.Memory))
		risks = append(risks, risksOf(cr)...)
		known = known || cr.CPU.NotEnoughData == "" || cr.Memory.NotEnoughData == ""
	}

	gpus := 0
	gpuNow, gpuRec := 0.0, 0.0
	class := ""
	if w.gpu != nil {
		out.GPU = recommendGPU(cfg, w.gpu, cfg.MinHistory.Hours(), h.tgiAssumed)
		gpus, class = out.GPU.GPUsPerReplica, out.GPU.Class
		gpuNow = float64(gpus) * prices.GPU(out.GPU.Class)
		gpuRec = out.GPU.GPUs * prices.GPU(out.GPU.RecommendedClass)
		known = known || out.GPU.Action != GPUNotEnough
	}
	span := h.end.Sub(h.start)
	out.ReplicaHistory = replicaHistoryOf(w, replicas, h.step, span)
	out.Scaling = recommendScaling(cfg, w, replicas, h.step)
	scaled := out.Scaling != nil && out.Scaling.NotEnoughData == ""
	known = known || scaled
	wake, wakeFrom := cfg.ColdStart.For(class, gpus), "default"
	if gpus > 0 {
		wakeFrom = "default gpu"
		if _, ok := cfg.ColdStart.ByClass[class]; ok {
			wakeFrom = "cold start of " + class
		}
	}
	// A wake time the history shows wins over the flags' default.
	measured, mFrom, wakes, ok := w.wake.measured()
	if ok {
		wake, wakeFrom = measured, mFrom
	}
	out.Autoshutdown = recommendShutdown(cfg, w, replicas, gpus, span, out.ReplicaHistory, wake, wakeFrom)
	if a := out.Autoshutdown; a != nil && ok {
		a.ColdStartWakes = wakes
	}

	// Prices: the recommended requests at the replicas of the history,
	// then the recommended scaling replayed, then autoshutdown.
	month := float64(HoursPerMonth)
	meanNow := meanReplicas(w, replicas)
	hourlyRec := cpuRec + memRec + gpuRec
	meanScaled, warm := meanNow, 1.0
	if scaled {
		meanScaled, warm = out.Scaling.ReplicasMean, float64(out.Scaling.MinReplicas)
	}
	meanFinal := meanScaled
	if a := out.Autoshutdown; a != nil {
		// The replicas a candidate saves on average: the warm minimum
		// while at zero where the scaling is replayed, else a share of
		// the replicas of the history.
		saved := func(c Backtest) float64 {
			switch {
			case scaled && span > 0:
				return c.ZeroHours * warm / span.Hours()
			case a.ReplicaHoursUsed > 0:
				return meanNow * c.ReplicaHoursSaved / a.ReplicaHoursUsed
			}
			return 0
		}
		for i := range a.Candidates {
			a.Candidates[i].MonthlySavings = round(hourlyRec*month*saved(a.Candidates[i]), 2)
			switch a.Candidates[i].IdleAfter {
			case a.IdleAfter:
				meanFinal = max(meanScaled-saved(a.Candidates[i]), 0)
			case a.KeepWarmInstead:
				a.KeepWarmMonthly = a.Candidates[i].MonthlySavings
			}
		}
		explainShutdown(cfg, a, out.ReplicaHistory, replicas, prices.Currency)
		if a.Recommended && scaled {
			out.Scaling.MinReplicas = 0
		}
		known = known || a.Recommended || a.KeepWarm
	}
	out.Cost = costOf((cpuNow+memNow+gpuNow)*meanNow*month, hourlyRec*meanFinal*month)
	out.Cost.SavingsBy = Savings{
		CPU:          (cpuNow - cpuRec) * meanNow * month,
		Memory:       (memNow - memRec) * meanNow * month,
		GPU:          (gpuNow - gpuRec) * meanNow * month,
		Replicas:     hourlyRec * month * (meanNow - meanScaled),
		Autoshutdown: hourlyRec * month * (meanScaled - meanFinal),
	}.rounded()
	out.Severity, out.SeverityReason = severityOf(cfg, known, risks, out.Cost, prices.Currency)
	out.Chart = h.chartOf(w, out.Containers)
	return out
}

// risksOf lists what puts a container at risk today: CPU used above its
// request (it is throttled when the node is busy, or by its limit), memory
// requested or limited below its peak, OOM kills.
func risksOf(c ContainerReport) []string {
	var out []string
	cpu, mem := c.CPU, c.Memory
	if cpu.NotEnoughData == "" && cpu.CurrentRequest > 0 && cpu.Percentile > cpu.CurrentRequest {
		out = append(out, fmt.Sprintf("%s uses more CPU than it requests (p%s %s cores, request %s): it is throttled whenever the node is busy",
			c.Name, "90", number(cpu.Percentile), FormatCPU(cpu.CurrentRequest)))
	}
	if cpu.CurrentLimit > 0 && cpu.Max >= 0.95*cpu.CurrentLimit {
		out = append(out, fmt.Sprintf("%s reaches its CPU limit (max %s cores, limit %s): it is throttled", c.Name, number(cpu.Max), FormatCPU(cpu.CurrentLimit)))
	}
	switch {
	case mem.CurrentLimit > 0 && mem.Max > mem.CurrentLimit:
		out = append(out, fmt.Sprintf("%s's memory peak %s is above its limit %s", c.Name, FormatMemory(mem.Max), FormatMemory(mem.CurrentLimit)))
	case mem.CurrentRequest > 0 && mem.Max > mem.CurrentRequest:
		out = append(out, fmt.Sprintf("%s's memory request %s is below its peak %s: it is evicted first when the node runs short", c.Name, FormatMemory(mem.CurrentRequest), FormatMemory(mem.Max)))
	}
	if c.OOMKills > 0 {
		out = append(out, fmt.Sprintf("%s was OOM-killed %s", c.Name, plural(c.OOMKills, "time")))
	}
	return out
}

// severityOf grades a workload: critical when at risk, warning when its
// savings reach both WarningShare of its cost and WarningAmount, unknown
// when nothing could be recommended, ok otherwise. It says why.
func severityOf(cfg Config, known bool, risks []string, c Cost, currency string) (Severity, string) {
	switch {
	case len(risks) > 0:
		return SeverityCritical, strings.Join(risks, "; ")
	case !known:
		return SeverityUnknown, "not enough data for any recommendation"
	case c.MonthlySavings >= cfg.WarningAmount && c.MonthlyNow > 0 && c.MonthlySavings >= cfg.WarningShare*c.MonthlyNow:
		return SeverityWarning, fmt.Sprintf("saves %s a month (%s of its cost), at least %s and %s", FormatMoney(c.MonthlySavings, currency),
			pctOf(round(c.MonthlySavings/c.MonthlyNow, 3)), FormatMoney(cfg.WarningAmount, currency), pctOf(cfg.WarningShare))
	}
	return SeverityOK, fmt.Sprintf("no risk, and savings of %s a month are below %s or %s of its cost", FormatMoney(c.MonthlySavings, currency),
		FormatMoney(cfg.WarningAmount, currency), pctOf(cfg.WarningShare))
}

// meanReplicas is the mean of a workload's replicas over the history, else
// its current replicas.
func meanReplicas(w *workloadHistory, current int) float64 {
	if w.replicaN == 0 {
		return float64(current)
	}
	return w.replicaSum / float64(w.replicaN)
}

// recommendedOr returns the recommended request, or the current one when
// there is not enough data.
func recommendedOr(r ResourceRecommendation) float64 {
	if r.NotEnoughData != "" {
		return r.CurrentRequest
	}
	return r.Request
}

func worse(a, b Severity) Severity {
	if b.rank() > a.rank() {
		return b
	}
	return a
}

// confidence returns days of evidence: the lesser of the span and the
// samples' worth of time.
func confidence(span time.Duration, samples int, each time.Duration) float64 {
	return min(span.Hours()/24, float64(samples)*each.Hours()/24)
}

// bounds returns the range a request may be in given the confidence in
// days: target x (1 + 1/confidence) above, target / (1 + 1/confidence)
// below, so two weeks of evidence give about ±7% and one day x2 and /2.
func bounds(target, conf float64) (lower, upper float64) {
	// Confidence is rounded to 0.01 days; below that the bounds are as wide
	// as at 0.01 (×/÷ 101), and always finite so that every format can
	// carry them.
	f := 1 + 1/max(conf, 0.01)
	return target / f, target * f
}

func recommendCPU(cfg Config, c *containerHistory, step time.Duration) ResourceRecommendation {
	r := ResourceRecommendation{
		CurrentRequest: c.current.CPURequest,
		CurrentLimit:   c.current.CPULimit,
		Samples:        c.cpu.Samples(),
		Max:            round(c.cpu.Max(), 4),
		HistoryHours:   round(c.cpu.Span().Hours(), 2),
	}
	switch {
	case r.Samples == 0:
		r.NotEnoughData = "no CPU usage samples"
		return r
	case c.cpu.Span() < cfg.MinHistory:
		r.NotEnoughData = fmt.Sprintf("CPU history covers %s, need %s", shutdown.FormatDuration(c.cpu.Span()), shutdown.FormatDuration(cfg.MinHistory))
		return r
	}
	p := c.cpu.Percentile(cfg.CPUPercentile)
	r.Percentile = round(p, 4)
	r.Confidence = round(confidence(c.cpu.Span(), r.Samples, step), 2)
	target := p * (1 + cfg.Margin)
	lo, hi := bounds(target, r.Confidence)
	r.Request = ceilTo(max(target, cfg.MinCPU), 0.001)
	r.Lower = ceilTo(max(lo, cfg.MinCPU), 0.001)
	r.Upper = ceilTo(max(hi, cfg.MinCPU), 0.001)
	if cfg.CPULimitFactor > 0 {
		r.Limit = ceilTo(r.Request*cfg.CPULimitFactor, 0.001)
	}
	r.Basis = fmt.Sprintf("p%s of %d samples = %s cores, +%s", pct(cfg.CPUPercentile), r.Samples, number(p), pctOf(cfg.Margin))
	if target < cfg.MinCPU {
		r.Basis += ", raised to the floor of " + FormatCPU(cfg.MinCPU)
	}
	return r
}

// historyLack says why a resource's usage history alone cannot support a
// recommendation.
type historyLack int

const (
	lackNone    historyLack = iota // enough
	lackSamples                    // no samples at all
	lackHistory                    // samples over less than MinHistory
)

// memoryDecision is what a memory recommendation rests on, in numbers:
// decideMemory computes it, memoryBasis and memoryLack explain it.
type memoryDecision struct {
	span time.Duration // from the first to the last sample
	lack historyLack
	// With enough history: the percentile of the daily peaks, their
	// number, and the confidence in days.
	p          float64
	peaks      int
	confidence float64
	// After OOM kills: how many, the memory the container was killed at
	// (its limit, else its highest peak), and the least it needs (bump).
	ooms           int
	killedAt, bump float64
	bumped         bool    // bump is above what the peaks ask for
	target         float64 // bytes, before the floor
}

func decideMemory(cfg Config, c *containerHistory) memoryDecision {
	d := memoryDecision{span: c.memLast.Sub(c.memFirst), ooms: c.ooms}
	if c.ooms > 0 {
		d.killedAt = c.current.MemoryLimit
		if d.killedAt <= 0 {
			d.killedAt = c.memMax
		}
		d.bump = max(d.killedAt+cfg.OOMMinBump, d.killedAt*cfg.OOMFactor)
	}
	switch {
	case c.memN == 0:
		d.lack = lackSamples
	case d.span < cfg.MinHistory:
		d.lack = lackHistory
	}
	if d.lack == lackNone {
		d.p = c.memPeaks.Percentile(cfg.MemoryPercentile)
		d.peaks = c.memPeaks.Samples()
		d.confidence = round(min(d.span.Hours()/24, float64(d.peaks)), 2)
		d.target = d.p * (1 + cfg.Margin)
	}
	if d.bump > d.target {
		d.target, d.bumped = d.bump, true
	}
	return d
}

func recommendMemory(cfg Config, c *containerHistory) ResourceRecommendation {
	d := decideMemory(cfg, c)
	r := ResourceRecommendation{
		CurrentRequest: c.current.MemoryRequest,
		CurrentLimit:   c.current.MemoryLimit,
		Samples:        c.memN,
		Max:            c.memMax,
		HistoryHours:   round(d.span.Hours(), 2),
	}
	if d.lack != lackNone && d.bump == 0 {
		r.NotEnoughData = memoryLack(cfg, d)
		return r
	}
	if d.lack == lackNone {
		r.Percentile, r.Confidence = d.p, d.confidence
	}
	lo, hi := bounds(d.target, r.Confidence)
	if r.Confidence == 0 {
		lo, hi = d.target, d.target
	}
	r.Request = ceilTo(max(d.target, cfg.MinMemory), MiB)
	r.Lower = ceilTo(max(lo, cfg.MinMemory), MiB)
	r.Upper = ceilTo(max(hi, cfg.MinMemory), MiB)
	if cfg.MemoryLimitFactor > 0 {
		r.Limit = ceilTo(r.Request*cfg.MemoryLimitFactor, MiB)
	}
	r.Basis = memoryBasis(cfg, d)
	return r
}

// memoryLack says why the memory history is not enough.
func memoryLack(cfg Config, d memoryDecision) string {
	if d.lack == lackSamples {
		return "no memory samples"
	}
	return fmt.Sprintf("memory history covers %s, need %s", shutdown.FormatDuration(d.span), shutdown.FormatDuration(cfg.MinHistory))
}

// memoryBasis explains how d's target came about.
func memoryBasis(cfg Config, d memoryDecision) string {
	var b string
	if d.lack == lackNone {
		b = fmt.Sprintf("p%s of %d daily peaks = %s, +%s", pct(cfg.MemoryPercentile), d.peaks, FormatMemory(d.p), pctOf(cfg.Margin))
	} else {
		b = memoryLack(cfg, d)
	}
	if d.bumped {
		b += fmt.Sprintf("; OOM-killed %d times at %s: max(+%s, x%s) = %s",
			d.ooms, FormatMemory(d.killedAt), FormatMemory(cfg.OOMMinBump), number(cfg.OOMFactor), FormatMemory(d.bump))
	}
	if d.target < cfg.MinMemory {
		b += ", raised to the floor of " + FormatMemory(cfg.MinMemory)
	}
	return b
}

// chartOf draws the workload's history: the CPU and memory of the
// container with the highest CPU recommendation, its request rate and
// replicas, and its GPUs.
func (h *History) chartOf(w *workloadHistory, cs []ContainerReport) Chart {
	ch := Chart{Start: h.start.UTC(), BinSeconds: h.end.Sub(h.start).Seconds() / float64(h.cfg.ChartBins)}
	best := -1
	for i, c := range cs {
		if best < 0 || recommendedOr(c.CPU) > recommendedOr(cs[best].CPU) {
			best = i
		}
	}
	if best >= 0 {
		c := cs[best]
		ch.Container = c.Name
		hc := w.containers[c.Name]
		ch.CPU = ChartValues(hc.cpuChart)
		ch.CPUP50, ch.CPUP90 = hc.cpuBins.percentile(0.5), hc.cpuBins.percentile(0.9)
		ch.CPURequest, ch.CPUTarget, ch.CPULimit = c.CPU.CurrentRequest, c.CPU.Request, c.CPU.CurrentLimit
		ch.Memory = ChartValues(hc.memChart)
		ch.MemoryRequest, ch.MemoryLimit, ch.MemoryRecommended = c.Memory.CurrentRequest, c.Memory.CurrentLimit, c.Memory.Request
		ch.OOMKills = oomBins(hc, h.cfg.ChartBins)
	}
	if w.rpsChart != nil {
		ch.RequestRate = ChartValues(w.rpsChart)
		ch.RequestRateMean = meanBins(w.rpsBinSum, w.rpsBinN)
	}
	if w.peakChart != nil {
		ch.RequestPeak = ChartValues(w.peakChart)
	}
	if w.replicaChart != nil {
		ch.Replicas = ChartValues(w.replicaChart)
	}
	if g := w.gpu; g != nil && g.util.Samples() > 0 {
		ch.GPUUtil, ch.GPUUtilMax = meanBins(g.utilSum, g.utilN), ChartValues(g.utilMax)
		if g.kv.Samples() > 0 {
			ch.KVCache = ChartValues(g.kvChart)
		} else if g.fbUsed > 0 {
			ch.FramebufferMiB = ChartValues(g.fbChart)
		}
	}
	return ch
}

// oomBins counts a container's OOM kills per chart bin as oomKills counts
// them: restarts where a pod has the counter, else rises of the flag; nil
// without any.
func oomBins(c *containerHistory, bins int) []int {
	var out []int
	for _, p := range c.oom {
		from := p.riseBins
		if p.counted {
			from = p.restartBins
		}
		for i, n := range from {
			if out == nil {
				out = make([]int, bins)
			}
			out[i] += n
		}
	}
	return out
}
