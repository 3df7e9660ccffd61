package autopilot

import (
	"fmt"
	"math"
	"time"

	"github.com/ebbscale/ebb/backtest"
	"github.com/ebbscale/ebb/shutdown"
)

// ScalingRecommendation is a trigger for ebb's requests signal: the request
// rate one replica has been shown to handle, and the replicas history needs.
type ScalingRecommendation struct {
	// TargetRPS is the per-replica target of the requests signal,
	// Activation the rate above which the workload is active.
	TargetRPS   float64 `json:"targetRPS"`
	Activation  float64 `json:"activation"`
	MinReplicas int     `json:"minReplicas"`
	MaxReplicas int     `json:"maxReplicas"`
	// The workload's total request rate over the history.
	RPSP10  float64 `json:"rpsP10"`
	RPSP95  float64 `json:"rpsP95"`
	RPSMax  float64 `json:"rpsMax"`
	RPSMean float64 `json:"rpsMean"`
	Samples int     `json:"samples"`
	// BurstRPS is the highest rate over BurstWindow, at BurstAt: the
	// burst that sized MaxReplicas (1m where the history has 1-minute
	// peaks, else the step).
	BurstRPS    float64   `json:"burstRPS"`
	BurstAt     time.Time `json:"burstAt"`
	BurstWindow string    `json:"burstWindow"`
	// ReplicasMean is the mean replicas the recommended scaling would have
	// run over the history (without autoshutdown), replayed step by step
	// on each step's burst: ceil(rate / targetRPS) within the bounds.
	ReplicasMean float64 `json:"replicasMean"`
	Basis        string  `json:"basis,omitempty"`
	// NotEnoughData, when set, says why there is no recommendation.
	NotEnoughData string `json:"notEnoughData,omitempty"`
}

// AutoshutdownRecommendation is whether and after how long of idleness a
// workload should be shut down, with the backtest of every candidate.
type AutoshutdownRecommendation struct {
	Recommended bool `json:"recommended"`
	// IdleAfter is the recommended idleAfter, "" when not recommended.
	IdleAfter string `json:"idleAfter,omitempty"`
	// IdleShare is the share of request-rate samples at or below the
	// activation.
	IdleShare float64 `json:"idleShare"`
	// ReplicaHoursUsed and GPUHoursUsed are what the workload ran over the
	// history without autoshutdown, from its replicas over time (see
	// WorkloadReport.ReplicaHistory).
	ReplicaHoursUsed float64    `json:"replicaHoursUsed"`
	GPUHoursUsed     float64    `json:"gpuHoursUsed"`
	Candidates       []Backtest `json:"candidates"`
	// ColdStart is the wake time assumed for each cold start, from
	// ColdStartFrom: measured in the history where it shows wakes ("measured
	// by ebb's activator: mean of 12 wakes", "measured in
	// kube-state-metrics' replicas: median of 3 wakes, to the 30s step"),
	// else the flags' ("default gpu", "default", "cold start of CLASS").
	// ColdStartWakes is the number of wakes measured, 0 for the flags'.
	ColdStart      string `json:"coldStart"`
	ColdStartFrom  string `json:"coldStartFrom"`
	ColdStartWakes int    `json:"coldStartWakes,omitempty"`
	// KeepWarm: autoshutdown would save money, but its cold starts would
	// make callers wait more than the day's budget; keep one replica
	// (minReplicas: 1). KeepWarmMonthly is what that costs against the
	// candidate that would otherwise be chosen, KeepWarmInstead names it.
	KeepWarm        bool    `json:"keepWarm,omitempty"`
	KeepWarmMonthly float64 `json:"keepWarmMonthly,omitempty"`
	KeepWarmInstead string  `json:"keepWarmInstead,omitempty"`
	Reason          string  `json:"reason"`
}

// ReplicaHistory is how many replicas a workload ran over the history.
type ReplicaHistory struct {
	// Source is ReplicasFromHistory when they were read over time, else
	// ReplicasFromCurrent: today's count stands for the whole history.
	Source string `json:"source"`
	// Mean, Min and Max are over the samples, one per step.
	Mean    float64 `json:"mean"`
	Min     float64 `json:"min"`
	Max     float64 `json:"max"`
	Samples int     `json:"samples"`
	// Hours is the time the samples cover, ReplicaHours the replica-hours
	// they add up to.
	Hours        float64 `json:"hours"`
	ReplicaHours float64 `json:"replicaHours"`
	Note         string  `json:"note"`
}

// Where ReplicaHistory's replicas come from.
const (
	ReplicasFromHistory = "kube-state-metrics"
	ReplicasFromCurrent = "current"
)

// Backtest is what one idleAfter would have done over the history, replayed
// through the same idle policy and tracker `ebb serve` uses.
type Backtest struct {
	IdleAfter         string  `json:"idleAfter"`
	ZeroHours         float64 `json:"zeroHours"`
	ZeroShare         float64 `json:"zeroShare"`
	ReplicaHoursSaved float64 `json:"replicaHoursSaved"`
	// ReplicaHoursWith is the replica-hours the workload would have run
	// with this idleAfter: AutoshutdownRecommendation.ReplicaHoursUsed
	// less ReplicaHoursSaved.
	ReplicaHoursWith float64 `json:"replicaHoursWith"`
	GPUHoursSaved    float64 `json:"gpuHoursSaved"`
	ColdStarts       int     `json:"coldStarts"`
	ColdStartsPerDay float64 `json:"coldStartsPerDay"`
	// WaitMinutesPerDay is ColdStartsPerDay times the cold start:
	// what callers would wait a day for wakes.
	WaitMinutesPerDay float64 `json:"waitMinutesPerDay"`
	// MonthlySavings is what this idleAfter saves a month on top of the
	// recommended requests and scaling.
	MonthlySavings float64 `json:"monthlySavings"`
}

// idleReplay replays a request-rate series through the backtest package's
// engine with ebb's fixed idleAfter policy as `ebb serve` runs it (its
// Tracker and Policy, min uptime, KEDA's cooldown after the idle answer),
// one sample a tick: the workload is active at a sample whose rate is above
// the activation. The history's workload is up at its first sample, its
// idle clock recovered there. A gap of more than two steps in the series
// is unknown data: ebb answers KEDA neither active nor idle, and KEDA keeps
// the replicas it has, at zero or up. A cold start is a sample above the
// activation that finds the workload at zero.
//
// The replica-hours saved are the time at zero times the replicas that ran
// then (the last sample at or before each request-rate sample). Time at
// zero before a workload's first replica sample is priced at the end: at
// its current replicas when it has no replica samples at all, else at
// none, as the replica-hours it used count only its samples.
type idleReplay struct {
	idleAfter  time.Duration
	policy     backtest.Ebb
	activation float64
	step       time.Duration
	run        *backtest.Replayer
	prev       time.Time
	zero       time.Duration
	outcome    backtest.Outcome
	finished   bool
	// zeroReplicaHours is the replica-hours at zero where the replicas
	// were known; zeroUnknown the time at zero where they were not.
	zeroReplicaHours float64
	zeroUnknown      time.Duration
	replicas         float64 // in effect at prev
	replicasKnown    bool
}

func newIdleReplay(cfg Config, idleAfter, step time.Duration) *idleReplay {
	// One tick a sample, active while the sample is: the store's rate is
	// the collector's read.
	p := backtest.DefaultEbb(idleAfter)
	p.MinUptime, p.Cooldown, p.Tick, p.Window = cfg.MinUptime, cfg.Cooldown, step, step
	return &idleReplay{idleAfter: idleAfter, policy: p, activation: cfg.Activation, step: step}
}

// addZero adds the part of dt the policy kept the workload at zero, up
// being the rest, with the replicas that ran then.
func (b *idleReplay) addZero(dt, up time.Duration, replicas float64, known bool) {
	dt -= up
	if dt <= 0 {
		return
	}
	b.zero += dt
	if known {
		b.zeroReplicaHours += dt.Hours() * replicas
	} else {
		b.zeroUnknown += dt
	}
}

// observe replays the request rate at t, with the replicas that ran in the
// step that ends at t.
func (b *idleReplay) observe(t time.Time, rps, replicas float64, replicasKnown bool) {
	if b.prev.IsZero() {
		// Nothing is known before the history: take the workload as
		// up and active at its first sample, as a restarted ebb
		// recovers it.
		w := &backtest.Workload{Start: t, Step: b.step, UpAtStart: true}
		b.run = backtest.NewReplayer(w, b.policy, backtest.Options{})
		b.prev, b.replicas, b.replicasKnown = t, replicas, replicasKnown
		return
	}
	if !t.After(b.prev) {
		return
	}
	demand := 0.0
	if rps > b.activation {
		demand = rps * b.step.Seconds()
	}
	from := b.prev
	switch dt := t.Sub(b.prev); {
	case dt > 2*b.step:
		// Unknown: no wake and no shutdown.
		from = t.Add(-b.step)
		b.addZero(from.Sub(b.prev), b.run.Unknown(b.prev, from, 1), replicas, replicasKnown)
	case dt > b.step:
		// One sample missing: nothing happened in it.
		from = t.Add(-b.step)
		b.addZero(from.Sub(b.prev), b.run.Step(b.prev, from, 0, 1), replicas, replicasKnown)
	}
	b.addZero(t.Sub(from), b.run.Step(from, t, demand, 1), replicas, replicasKnown)
	b.prev, b.replicas, b.replicasKnown = t, replicas, replicasKnown
}

func (b *idleReplay) finish(end time.Time) {
	if b.finished || b.run == nil {
		return
	}
	b.finished = true
	if !b.run.Up() && end.After(b.prev) && end.Sub(b.prev) <= 2*b.step {
		b.addZero(end.Sub(b.prev), 0, b.replicas, b.replicasKnown)
	}
	b.outcome = b.run.Finish(b.prev)
}

// result is the replay's outcome: unknown stands for the replicas where
// none were known, used is the replica-hours run without autoshutdown.
func (b *idleReplay) result(unknown float64, gpusPerReplica int, span time.Duration, used float64) Backtest {
	zh := b.zero.Hours()
	saved := b.zeroReplicaHours + b.zeroUnknown.Hours()*unknown
	r := Backtest{
		IdleAfter:         shutdown.FormatDuration(b.idleAfter),
		ZeroHours:         round(zh, 3),
		ReplicaHoursSaved: round(saved, 3),
		ReplicaHoursWith:  round(max(used-saved, 0), 3),
		GPUHoursSaved:     round(saved*float64(gpusPerReplica), 3),
		ColdStarts:        b.outcome.ColdStarts,
	}
	if span > 0 {
		r.ZeroShare = round(b.zero.Seconds()/span.Seconds(), 4)
		r.ColdStartsPerDay = round(float64(r.ColdStarts)/(span.Hours()/24), 3)
	}
	return r
}

// replicaHistory summarizes a workload's replicas over the history; without
// samples, current replicas stand for the whole span.
func replicaHistoryOf(w *workloadHistory, current int, step, span time.Duration) ReplicaHistory {
	if w.replicaN == 0 {
		c := float64(current)
		return ReplicaHistory{
			Source: ReplicasFromCurrent, Mean: c, Min: c, Max: c,
			Hours: round(span.Hours(), 3), ReplicaHours: round(c*span.Hours(), 3),
			Note: fmt.Sprintf("no replicas over time in the history (kube-state-metrics' Deployment and StatefulSet status.replicas): today's %d assumed throughout", current),
		}
	}
	r := ReplicaHistory{
		Source: ReplicasFromHistory, Mean: round(w.replicaSum/float64(w.replicaN), 3),
		Min: w.replicaMin, Max: w.replicaMax, Samples: w.replicaN,
		Hours: round(float64(w.replicaN)*step.Hours(), 3), ReplicaHours: round(w.replicaHours, 3),
	}
	r.Note = fmt.Sprintf("%s to %s replicas, %s on average, over %s hours", number(r.Min), number(r.Max), number(r.Mean), number(r.Hours))
	return r
}

// recommendScaling derives the requests trigger from a workload's history:
// the target from what a replica handled in its 1-minute peaks (else the
// steps' rates), maxReplicas from the highest burst plus headroom,
// minReplicas from the quiet hours (p10), at least 1: autoshutdown, when
// recommended, sets it to 0 afterwards.
func recommendScaling(cfg Config, w *workloadHistory, replicas int, step time.Duration) *ScalingRecommendation {
	if w.rps == nil {
		return nil
	}
	s := &ScalingRecommendation{
		RPSP10:     round(w.rps.Percentile(0.10), 4),
		RPSP95:     round(w.rps.Percentile(0.95), 4),
		RPSMax:     round(w.rps.Max(), 4),
		RPSMean:    round(w.rpsSum/float64(w.rps.Samples()), 4),
		Samples:    w.rps.Samples(),
		Activation: cfg.Activation,
	}
	// Bursts: 1-minute peaks where the history has them.
	perReplica, active, steps := w.rpsPerReplica, w.rpsActive, w.rpsSteps
	s.BurstRPS, s.BurstAt, s.BurstWindow = round(w.rps.Max(), 4), w.rpsMaxAt.UTC(), shutdown.FormatDuration(step)
	what := "request rate"
	if w.peakSteps != nil && w.peakSteps.Samples() > 0 {
		perReplica, active, steps = w.peakPerReplica, w.peakActive, w.peakSteps
		s.BurstRPS, s.BurstAt, s.BurstWindow = round(w.peakMax, 4), w.peakAt.UTC(), "1m"
		what = "1-minute peak rate"
	}
	// The target is what a replica handles while in use: idle samples
	// would drag it to zero for a workload that is mostly idle.
	p := active.Percentile(cfg.ReplicaPercentile)
	if perReplica != nil && perReplica.Samples() > 0 {
		// Each sample divided by the replicas that served it.
		pr := perReplica.Percentile(cfg.ReplicaPercentile)
		s.TargetRPS = significant(pr, 3)
		s.Basis = fmt.Sprintf("p%s of the %s per replica while active (%s req/s), each over the replicas that ran then",
			pct(cfg.ReplicaPercentile), what, number(pr))
	} else {
		switch {
		case replicas <= 0:
			s.NotEnoughData = "no running replicas to measure a per-replica rate"
			return s
		case p <= 0:
			s.NotEnoughData = "no requests in the history"
			return s
		}
		s.TargetRPS = significant(p/float64(replicas), 3)
		s.Basis = fmt.Sprintf("p%s of the %s while active (%s req/s) over today's %s",
			pct(cfg.ReplicaPercentile), what, number(p), plural(replicas, "replica"))
	}
	if s.TargetRPS <= 0 {
		s.NotEnoughData, s.TargetRPS, s.Basis = "no requests in the history", 0, ""
		return s
	}
	// A 1% tolerance keeps the rounding of the target from adding a replica.
	s.MinReplicas = max(1, int(math.Ceil(s.RPSP10/s.TargetRPS-0.01)))
	s.MaxReplicas = max(s.MinReplicas, int(math.Ceil(s.BurstRPS*(1+cfg.ReplicaHeadroom)/s.TargetRPS-0.01)))
	s.Basis += fmt.Sprintf("; maxReplicas from the highest %s rate, %s req/s at %s, +%s headroom",
		s.BurstWindow, number(s.BurstRPS), s.BurstAt.Format("2006-01-02 15:04 MST"), pctOf(cfg.ReplicaHeadroom))
	s.ReplicasMean = round(replayReplicas(steps, s.TargetRPS, s.MinReplicas, s.MaxReplicas), 3)
	return s
}

// replayReplicas is the mean replicas an autoscaler with target, lo and hi
// would have run over the steps counted in h: ceil(rate / target) within
// [lo, hi] at each step, each rate taken at its bucket's upper bound.
func replayReplicas(h *Histogram, target float64, lo, hi int) float64 {
	var sum, n float64
	h.eachBucket(func(v, c float64) {
		r := min(max(int(math.Ceil(v/target-0.01)), lo), hi)
		sum += float64(r) * c
		n += c
	})
	if n == 0 {
		return float64(lo)
	}
	return sum / n
}

// plural renders "1 replica", "3 replicas".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// recommendShutdown picks the idleAfter that keeps the workload at zero the
// longest within the cold-start budget and the day's wait for cold starts
// (wake: the time one takes); current replicas stand in where the history
// has none, rh is its replicas over time. When a candidate fits all but
// the wait, it keeps one replica warm. The reason is written once the
// candidates are priced (explainShutdown).
func recommendShutdown(cfg Config, w *workloadHistory, current, gpus int, span time.Duration, rh ReplicaHistory, wake time.Duration, wakeFrom string) *AutoshutdownRecommendation {
	if len(w.backtests) == 0 {
		return nil
	}
	a := &AutoshutdownRecommendation{
		IdleShare:        round(float64(w.idleN)/float64(w.rps.Samples()), 4),
		ReplicaHoursUsed: rh.ReplicaHours,
		GPUHoursUsed:     round(rh.ReplicaHours*float64(gpus), 3),
		ColdStart:        shutdown.FormatDuration(wake),
		ColdStartFrom:    wakeFrom,
	}
	// Where the replicas are unknown: today's when there is no replica
	// history, else none, as in rh.ReplicaHours.
	unknown := float64(current)
	if rh.Source == ReplicasFromHistory {
		unknown = 0
	}
	best, warm := -1, -1
	for i, b := range w.backtests {
		r := b.result(unknown, gpus, span, rh.ReplicaHours)
		r.WaitMinutesPerDay = round(r.ColdStartsPerDay*wake.Minutes(), 2)
		a.Candidates = append(a.Candidates, r)
		if r.ColdStartsPerDay > cfg.MaxColdStartsPerDay || r.ZeroShare < cfg.MinIdleShare {
			continue
		}
		if r.WaitMinutesPerDay > cfg.MaxWaitPerDay.Minutes() {
			if warm < 0 || r.ZeroHours > a.Candidates[warm].ZeroHours {
				warm = i
			}
			continue
		}
		if best < 0 || r.ZeroHours > a.Candidates[best].ZeroHours {
			best = i
		}
	}
	switch {
	case rh.ReplicaHours <= 0:
	case best >= 0:
		a.Recommended, a.IdleAfter = true, a.Candidates[best].IdleAfter
	case warm >= 0:
		a.KeepWarm, a.KeepWarmInstead = true, a.Candidates[warm].IdleAfter
	}
	return a
}

// explainShutdown writes a's reason, once its candidates are priced.
func explainShutdown(cfg Config, a *AutoshutdownRecommendation, rh ReplicaHistory, current int, currency string) {
	pick := func(idleAfter string) Backtest {
		for _, c := range a.Candidates {
			if c.IdleAfter == idleAfter {
				return c
			}
		}
		return Backtest{}
	}
	switch {
	case rh.ReplicaHours <= 0:
		a.Reason = "no replicas ran in the history: nothing to save"
	case a.Recommended:
		c := pick(a.IdleAfter)
		a.Reason = fmt.Sprintf("idleAfter %s would have kept it at zero %s of the time, saving %s of its %s replica-hours (%s a month), with %s (%s a day, about %s of waiting a day at %s each)",
			c.IdleAfter, pctOf(c.ZeroShare), number(c.ReplicaHoursSaved), number(a.ReplicaHoursUsed), FormatMoney(c.MonthlySavings, currency),
			plural(c.ColdStarts, "cold start"), number(c.ColdStartsPerDay), minutes(c.WaitMinutesPerDay), a.ColdStart)
	case a.KeepWarm:
		c := pick(a.KeepWarmInstead)
		a.Reason = fmt.Sprintf("keep one replica warm (minReplicas: 1): idleAfter %s would save %s a month at zero %s of the time, but its %s cold starts a day at %s each would make callers wait about %s a day, more than %s; keeping one replica warm costs those %s",
			c.IdleAfter, FormatMoney(c.MonthlySavings, currency), pctOf(c.ZeroShare), number(c.ColdStartsPerDay), a.ColdStart,
			minutes(c.WaitMinutesPerDay), shutdown.FormatDuration(cfg.MaxWaitPerDay), FormatMoney(a.KeepWarmMonthly, currency))
	default:
		a.Reason = fmt.Sprintf("no idleAfter keeps the workload at zero %s of the time with at most %s cold starts a day",
			pctOf(cfg.MinIdleShare), number(cfg.MaxColdStartsPerDay))
	}
	if (a.Recommended || a.KeepWarm) && rh.Source == ReplicasFromCurrent {
		a.Reason += fmt.Sprintf("; replicas assumed at today's %d throughout", current)
	}
}

// minutes renders minutes as a duration: "24m", "1h12m", "30s".
func minutes(m float64) string {
	return shutdown.FormatDuration(time.Duration(math.Round(m*60)) * time.Second)
}
