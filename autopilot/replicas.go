package autopilot

import (
	"fmt"
	"math"
	"time"

	"github.com/ebbscale/ebb/shutdown"
)

// ScalingRecommendation is a trigger for ebb's requests signal: the request
// rate one replica has been shown to handle, and the replicas history needs.
type ScalingRecommendation struct {
	// TargetRPS is the per-replica target of the requests signal.
	TargetRPS   float64 `json:"targetRPS"`
	MinReplicas int     `json:"minReplicas"`
	MaxReplicas int     `json:"maxReplicas"`
	// The workload's total request rate over the history.
	RPSP10  float64 `json:"rpsP10"`
	RPSP95  float64 `json:"rpsP95"`
	RPSMax  float64 `json:"rpsMax"`
	RPSMean float64 `json:"rpsMean"`
	Samples int     `json:"samples"`
	Basis   string  `json:"basis,omitempty"`
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
	Reason           string     `json:"reason"`
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
}

// backtest replays a request-rate series through shutdown.Tracker and
// shutdown.Policy as they run in ebb serve, with KEDA's cooldown after the
// policy turns idle. It counts the time at zero replicas and the cold
// starts: traffic arriving while at zero. A gap of more than two steps in
// the series is unknown data: ebb answers KEDA neither active nor idle, and
// KEDA keeps the replicas it has, at zero or up.
//
// The replica-hours saved are the time at zero times the replicas that ran
// then (the last sample at or before each request-rate sample). Time at
// zero before a workload's first replica sample is priced at the end: at
// its current replicas when it has no replica samples at all, else at
// none, as the replica-hours it used count only its samples.
type backtest struct {
	idleAfter  time.Duration
	policy     shutdown.Policy
	activation float64
	cooldown   time.Duration
	step       time.Duration
	tr         shutdown.Tracker
	prev       time.Time
	idleSince  time.Time
	atZero     bool
	zero       time.Duration
	coldStarts int
	finished   bool
	// zeroReplicaHours is the replica-hours at zero where the replicas
	// were known; zeroUnknown the time at zero where they were not.
	zeroReplicaHours float64
	zeroUnknown      time.Duration
	replicas         float64 // in effect at prev
	replicasKnown    bool
}

func newBacktest(cfg Config, idleAfter, step time.Duration) *backtest {
	return &backtest{
		idleAfter:  idleAfter,
		policy:     shutdown.Policy{IdleAfter: idleAfter, MinUptime: cfg.MinUptime},
		activation: cfg.Activation,
		cooldown:   cfg.Cooldown,
		step:       step,
	}
}

// addZero adds dt at zero, with the replicas that ran then.
func (b *backtest) addZero(dt time.Duration, replicas float64, known bool) {
	b.zero += dt
	if known {
		b.zeroReplicaHours += dt.Hours() * replicas
	} else {
		b.zeroUnknown += dt
	}
}

// observe replays the request rate at t, with the replicas that ran in the
// step that ends at t.
func (b *backtest) observe(t time.Time, rps, replicas float64, replicasKnown bool) {
	if b.prev.IsZero() {
		// Nothing is known before the history: take the workload as
		// active at its first sample, as a restarted ebb recovers it.
		b.tr.Recover(t)
	} else if !t.After(b.prev) {
		return
	} else {
		dt := t.Sub(b.prev)
		if dt > 2*b.step {
			// Unknown: no wake and no shutdown.
			b.tr.Observe(0, 0, false, t)
			b.tr.Decide(b.policy, t)
		}
		if b.atZero {
			b.addZero(dt, replicas, replicasKnown)
		}
	}
	b.prev, b.replicas, b.replicasKnown = t, replicas, replicasKnown
	b.tr.Observe(rps, b.activation, true, t)
	d := b.tr.Decide(b.policy, t)
	if d.Active {
		if b.atZero && rps > b.activation {
			b.coldStarts++
		}
		b.atZero, b.idleSince = false, time.Time{}
		return
	}
	if b.idleSince.IsZero() {
		b.idleSince = t
	}
	if t.Sub(b.idleSince) >= b.cooldown {
		b.atZero = true
	}
}

func (b *backtest) finish(end time.Time) {
	if b.finished {
		return
	}
	b.finished = true
	if b.atZero && end.After(b.prev) && end.Sub(b.prev) <= 2*b.step {
		b.addZero(end.Sub(b.prev), b.replicas, b.replicasKnown)
	}
}

// result is the backtest's outcome: unknown stands for the replicas where
// none were known, used is the replica-hours run without autoshutdown.
func (b *backtest) result(unknown float64, gpusPerReplica int, span time.Duration, used float64) Backtest {
	zh := b.zero.Hours()
	saved := b.zeroReplicaHours + b.zeroUnknown.Hours()*unknown
	r := Backtest{
		IdleAfter:         shutdown.FormatDuration(b.idleAfter),
		ZeroHours:         round(zh, 3),
		ReplicaHoursSaved: round(saved, 3),
		ReplicaHoursWith:  round(max(used-saved, 0), 3),
		GPUHoursSaved:     round(saved*float64(gpusPerReplica), 3),
		ColdStarts:        b.coldStarts,
	}
	if span > 0 {
		r.ZeroShare = round(b.zero.Seconds()/span.Seconds(), 4)
		r.ColdStartsPerDay = round(float64(b.coldStarts)/(span.Hours()/24), 3)
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

// recommendScaling derives the requests trigger from a workload's history.
func recommendScaling(cfg Config, w *workloadHistory, replicas int, shutdownRecommended bool) *ScalingRecommendation {
	if w.rps == nil {
		return nil
	}
	s := &ScalingRecommendation{
		RPSP10:  round(w.rps.Percentile(0.10), 4),
		RPSP95:  round(w.rps.Percentile(0.95), 4),
		RPSMax:  round(w.rps.Max(), 4),
		RPSMean: round(w.rpsSum/float64(w.rps.Samples()), 4),
		Samples: w.rps.Samples(),
	}
	// The target is what a replica handles while in use: idle samples
	// would drag it to zero for a workload that is mostly idle.
	p := w.rpsActive.Percentile(cfg.ReplicaPercentile)
	if w.rpsPerReplica != nil && w.rpsPerReplica.Samples() > 0 {
		// Each sample divided by the replicas that served it.
		pr := w.rpsPerReplica.Percentile(cfg.ReplicaPercentile)
		s.TargetRPS = significant(pr, 3)
		s.Basis = fmt.Sprintf("p%s of the request rate per replica while active (%s req/s), each sample over the replicas that ran then",
			pct(cfg.ReplicaPercentile), number(pr))
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
		noun := "replicas"
		if replicas == 1 {
			noun = "replica"
		}
		s.Basis = fmt.Sprintf("p%s of the request rate while active (%s req/s) over today's %d %s",
			pct(cfg.ReplicaPercentile), number(p), replicas, noun)
	}
	if s.TargetRPS <= 0 {
		s.NotEnoughData, s.TargetRPS, s.Basis = "no requests in the history", 0, ""
		return s
	}
	// A 1% tolerance keeps the rounding of the target from adding a replica.
	s.MinReplicas = max(1, int(math.Ceil(s.RPSP10/s.TargetRPS-0.01)))
	if shutdownRecommended {
		s.MinReplicas = 0
	}
	s.MaxReplicas = max(s.MinReplicas, 1, int(math.Ceil(w.rps.Max()*(1+cfg.ReplicaHeadroom)/s.TargetRPS-0.01)))
	s.Basis += fmt.Sprintf("; max %s req/s +%s headroom", number(s.RPSMax), pctOf(cfg.ReplicaHeadroom))
	return s
}

// recommendShutdown picks the idleAfter that keeps the workload at zero the
// longest within the cold-start budget; current replicas stand in where the
// history has none, rh is its replicas over time.
func recommendShutdown(cfg Config, w *workloadHistory, current, gpus int, span time.Duration, rh ReplicaHistory) *AutoshutdownRecommendation {
	if len(w.backtests) == 0 {
		return nil
	}
	a := &AutoshutdownRecommendation{
		IdleShare:        round(float64(w.idleN)/float64(w.rps.Samples()), 4),
		ReplicaHoursUsed: rh.ReplicaHours,
		GPUHoursUsed:     round(rh.ReplicaHours*float64(gpus), 3),
	}
	// Where the replicas are unknown: today's when there is no replica
	// history, else none, as in rh.ReplicaHours.
	unknown := float64(current)
	if rh.Source == ReplicasFromHistory {
		unknown = 0
	}
	best := -1
	for i, b := range w.backtests {
		r := b.result(unknown, gpus, span, rh.ReplicaHours)
		a.Candidates = append(a.Candidates, r)
		if r.ColdStartsPerDay > cfg.MaxColdStartsPerDay || r.ZeroShare < cfg.MinIdleShare {
			continue
		}
		if best < 0 || r.ZeroHours > a.Candidates[best].ZeroHours {
			best = i
		}
	}
	switch {
	case rh.ReplicaHours <= 0:
		a.Reason = "no replicas ran in the history: nothing to save"
	case best < 0:
		a.Reason = fmt.Sprintf("no idleAfter keeps the workload at zero %s of the time with at most %s cold starts a day",
			pctOf(cfg.MinIdleShare), number(cfg.MaxColdStartsPerDay))
	default:
		c := a.Candidates[best]
		a.Recommended, a.IdleAfter = true, c.IdleAfter
		a.Reason = fmt.Sprintf("idleAfter %s would have kept it at zero %s of the time, saving %s of its %s replica-hours, with %d cold starts (%s a day)",
			c.IdleAfter, pctOf(c.ZeroShare), number(c.ReplicaHoursSaved), number(a.ReplicaHoursUsed), c.ColdStarts, number(c.ColdStartsPerDay))
		if rh.Source == ReplicasFromCurrent {
			a.Reason += fmt.Sprintf("; replicas assumed at today's %d throughout", current)
		}
	}
	return a
}
