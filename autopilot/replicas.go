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
	IdleShare  float64    `json:"idleShare"`
	Candidates []Backtest `json:"candidates"`
	Reason     string     `json:"reason"`
}

// Backtest is what one idleAfter would have done over the history, replayed
// through the same idle policy and tracker `ebb serve` uses.
type Backtest struct {
	IdleAfter         string  `json:"idleAfter"`
	ZeroHours         float64 `json:"zeroHours"`
	ZeroShare         float64 `json:"zeroShare"`
	ReplicaHoursSaved float64 `json:"replicaHoursSaved"`
	GPUHoursSaved     float64 `json:"gpuHoursSaved"`
	ColdStarts        int     `json:"coldStarts"`
	ColdStartsPerDay  float64 `json:"coldStartsPerDay"`
}

// backtest replays a request-rate series through shutdown.Tracker and
// shutdown.Policy as they run in ebb serve, with KEDA's cooldown after the
// policy turns idle. It counts the time at zero replicas and the cold
// starts: traffic arriving while at zero. A gap of more than two steps in
// the series is unknown data: the fail-safe keeps the workload up.
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

func (b *backtest) observe(t time.Time, rps float64) {
	if b.prev.IsZero() {
		// Nothing is known before the history: take the workload as
		// active at its first sample, as a restarted ebb recovers it.
		b.tr.Recover(t)
	} else if !t.After(b.prev) {
		return
	} else {
		dt := t.Sub(b.prev)
		if dt > 2*b.step {
			b.tr.Observe(0, 0, false, t)
			b.tr.Decide(b.policy, t) // unknown: active, never a cold start
			b.atZero, b.idleSince = false, time.Time{}
		} else if b.atZero {
			b.zero += dt
		}
	}
	b.prev = t
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
		b.zero += end.Sub(b.prev)
	}
}

func (b *backtest) result(replicas, gpusPerReplica int, span time.Duration) Backtest {
	zh := b.zero.Hours()
	r := Backtest{
		IdleAfter:         FormatDuration(b.idleAfter),
		ZeroHours:         round(zh, 3),
		ReplicaHoursSaved: round(zh*float64(replicas), 3),
		GPUHoursSaved:     round(zh*float64(replicas*gpusPerReplica), 3),
		ColdStarts:        b.coldStarts,
	}
	if span > 0 {
		r.ZeroShare = round(b.zero.Seconds()/span.Seconds(), 4)
		r.ColdStartsPerDay = round(float64(b.coldStarts)/(span.Hours()/24), 3)
	}
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
	switch {
	case replicas <= 0:
		s.NotEnoughData = "no running replicas to measure a per-replica rate"
		return s
	case p <= 0:
		s.NotEnoughData = "no requests in the history"
		return s
	}
	s.TargetRPS = significant(p/float64(replicas), 3)
	// A 1% tolerance keeps the rounding of the target from adding a replica.
	s.MinReplicas = max(1, int(math.Ceil(s.RPSP10/s.TargetRPS-0.01)))
	if shutdownRecommended {
		s.MinReplicas = 0
	}
	s.MaxReplicas = max(s.MinReplicas, 1, int(math.Ceil(w.rps.Max()*(1+cfg.ReplicaHeadroom)/s.TargetRPS-0.01)))
	s.Basis = fmt.Sprintf("p%s of the request rate while active (%s req/s) over %d replicas; max %s req/s +%s headroom",
		pct(cfg.ReplicaPercentile), number(p), replicas, number(s.RPSMax), pctOf(cfg.ReplicaHeadroom))
	return s
}

// recommendShutdown picks the idleAfter that keeps the workload at zero the
// longest within the cold-start budget.
func recommendShutdown(cfg Config, w *workloadHistory, replicas, gpus int, span time.Duration) *AutoshutdownRecommendation {
	if len(w.backtests) == 0 {
		return nil
	}
	a := &AutoshutdownRecommendation{IdleShare: round(float64(w.idleN)/float64(w.rps.Samples()), 4)}
	best := -1
	for i, b := range w.backtests {
		r := b.result(replicas, gpus, span)
		a.Candidates = append(a.Candidates, r)
		if r.ColdStartsPerDay > cfg.MaxColdStartsPerDay || r.ZeroShare < cfg.MinIdleShare {
			continue
		}
		if best < 0 || r.ZeroHours > a.Candidates[best].ZeroHours {
			best = i
		}
	}
	switch {
	case replicas <= 0:
		a.Reason = "no running replicas: nothing to save"
	case best < 0:
		a.Reason = fmt.Sprintf("no idleAfter keeps the workload at zero %s of the time with at most %s cold starts a day",
			pctOf(cfg.MinIdleShare), number(cfg.MaxColdStartsPerDay))
	default:
		c := a.Candidates[best]
		a.Recommended, a.IdleAfter = true, c.IdleAfter
		a.Reason = fmt.Sprintf("idleAfter %s would have kept it at zero %s of the time (%s replica-hours) with %d cold starts (%s a day)",
			c.IdleAfter, pctOf(c.ZeroShare), number(c.ReplicaHoursSaved), c.ColdStarts, number(c.ColdStartsPerDay))
	}
	return a
}
