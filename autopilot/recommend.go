package autopilot

import (
	"cmp"
	"fmt"
	"slices"
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
	}
	r.Totals = costOf(r.Totals.MonthlyNow, r.Totals.MonthlyRecommended)
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
		Autoshutdown: fmt.Sprintf("idleAfter backtested with ebb's idle policy (min uptime %s) plus a %s KEDA cooldown; the longest time at zero with at most %s cold starts a day and at least %s of the time at zero",
			shutdown.FormatDuration(cfg.MinUptime), shutdown.FormatDuration(cfg.Cooldown), number(cfg.MaxColdStartsPerDay), pctOf(cfg.MinIdleShare)),
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
	var hourlyNow, hourlyRec float64
	severity := SeverityUnknown
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
		hourlyNow += prices.containerHourly(c.current.CPURequest, c.current.MemoryRequest)
		hourlyRec += prices.containerHourly(recommendedOr(cr.CPU), recommendedOr(cr.Memory))
		severity = worse(severity, severityOf(cr.CPU, false))
		severity = worse(severity, severityOf(cr.Memory, cr.OOMKills > 0))
	}

	gpus := 0
	gpuNow, gpuRec := 0.0, 0.0
	if w.gpu != nil {
		out.GPU = recommendGPU(cfg, w.gpu, cfg.MinHistory.Hours(), h.tgiAssumed)
		gpus = out.GPU.GPUsPerReplica
		gpuNow = float64(gpus) * prices.GPU(out.GPU.Class)
		gpuRec = out.GPU.GPUs * prices.GPU(out.GPU.RecommendedClass)
		switch out.GPU.Action {
		case GPUNotEnough:
		case GPUKeep:
			severity = worse(severity, SeverityOK)
		default:
			severity = worse(severity, SeverityWarning)
			if out.GPU.UtilP95 < 20 {
				severity = worse(severity, SeverityCritical)
			}
		}
	}
	span := h.end.Sub(h.start)
	out.ReplicaHistory = replicaHistoryOf(w, replicas, h.step, span)
	out.Autoshutdown = recommendShutdown(cfg, w, replicas, gpus, span, out.ReplicaHistory)
	shutdownOn := out.Autoshutdown != nil && out.Autoshutdown.Recommended
	out.Scaling = recommendScaling(cfg, w, replicas, shutdownOn)
	// runShare is the share of the replica-hours that would still run,
	// timeShare the share of the time the workload would be up.
	runShare, timeShare := 1.0, 1.0
	if shutdownOn {
		for _, c := range out.Autoshutdown.Candidates {
			if c.IdleAfter == out.Autoshutdown.IdleAfter {
				timeShare = 1 - c.ZeroShare
				if used := out.Autoshutdown.ReplicaHoursUsed; used > 0 {
					runShare = min(max(c.ReplicaHoursWith/used, 0), 1)
				}
			}
		}
		severity = worse(severity, SeverityWarning)
		if timeShare < 0.5 {
			severity = worse(severity, SeverityCritical)
		}
	}
	// A month of the replicas the history ran, on average.
	hours := HoursPerMonth * meanReplicas(w, replicas)
	out.Cost = costOf((hourlyNow+gpuNow)*hours, (hourlyRec+gpuRec)*hours*runShare)
	out.Severity = severity
	out.Chart = h.chartOf(w, out.Containers)
	return out
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

// severityOf grades one resource: critical when the current request is at
// least twice or at most half the recommendation, or below it after OOM
// kills; warning when off by more than 25% or not set; ok otherwise.
func severityOf(r ResourceRecommendation, oomKilled bool) Severity {
	if r.NotEnoughData != "" || r.Request <= 0 {
		return SeverityUnknown
	}
	cur := r.CurrentRequest
	switch {
	case cur <= 0:
		return SeverityWarning
	case cur >= 2*r.Request || cur <= 0.5*r.Request || oomKilled && cur < r.Request:
		return SeverityCritical
	case cur >= 1.25*r.Request || cur <= 0.8*r.Request:
		return SeverityWarning
	}
	return SeverityOK
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

// chartOf picks the container with the highest CPU recommendation.
func (h *History) chartOf(w *workloadHistory, cs []ContainerReport) Chart {
	ch := Chart{BinSeconds: h.end.Sub(h.start).Seconds() / float64(h.cfg.ChartBins)}
	best := -1
	for i, c := range cs {
		if best < 0 || recommendedOr(c.CPU) > recommendedOr(cs[best].CPU) {
			best = i
		}
	}
	if best >= 0 {
		c := cs[best]
		ch.Container = c.Name
		ch.CPU = ChartValues(w.containers[c.Name].cpuChart)
		ch.CPURequest = c.CPU.CurrentRequest
		ch.CPUTarget = c.CPU.Request
	}
	if w.rpsChart != nil {
		ch.RequestRate = ChartValues(w.rpsChart)
	}
	return ch
}
