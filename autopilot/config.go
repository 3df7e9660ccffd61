package autopilot

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/ebbscale/ebb/shutdown"
)

// Units used throughout: CPU in cores, memory in bytes, GPU utilization in
// percent, framebuffer in MiB, request rates in requests per second.
const (
	MiB = 1 << 20
	GiB = 1 << 30
)

// Config holds every knob of the recommender; DefaultConfig documents the
// defaults.
type Config struct {
	// CPU is the shape of the CPU usage histograms (cores).
	CPU HistogramOptions
	// Memory is the shape of the histograms of daily memory peaks (bytes).
	Memory HistogramOptions
	// CPUPercentile is the share of CPU samples the request covers.
	CPUPercentile float64
	// MemoryPercentile is the share of daily memory peaks the request covers.
	MemoryPercentile float64
	// Margin is added on top of both percentiles: 0.15 is +15%.
	Margin float64
	// MinCPU and MinMemory are the floors of any request.
	MinCPU    float64
	MinMemory float64
	// After an OOM kill the memory request is at least the memory the
	// container was killed at (its limit, else its highest peak) plus
	// OOMMinBump, and at least that times OOMFactor.
	OOMMinBump float64
	OOMFactor  float64
	// MinHistory is the least history a resource needs for a
	// recommendation; with less it is reported as not enough data.
	MinHistory time.Duration
	// CPULimitFactor sets the CPU limit to the request times this factor;
	// 0 (the default) recommends no CPU limit.
	CPULimitFactor float64
	// MemoryLimitFactor sets the memory limit to the request times this
	// factor; 1 (the default) makes it equal to the request, 0 recommends
	// no limit.
	MemoryLimitFactor float64

	// Activation is the request rate above which a workload is active, as
	// the activation of ebb's requests signal.
	Activation float64
	// IdleAfterCandidates are the idleAfter values the autoshutdown
	// backtest tries.
	IdleAfterCandidates []time.Duration
	// Cooldown is KEDA's cooldownPeriod: a workload goes to zero this long
	// after it turned idle.
	Cooldown time.Duration
	// MinUptime is the idle policy's minimum uptime after a wake.
	MinUptime time.Duration
	// MaxColdStartsPerDay bounds the cold starts an idleAfter may cause.
	MaxColdStartsPerDay float64
	// MinIdleShare is the least share of time at zero for autoshutdown to be
	// worth recommending.
	MinIdleShare float64
	// ReplicaPercentile is the share of per-replica request rates the RPS
	// target covers; ReplicaHeadroom is added to the peak for maxReplicas.
	ReplicaPercentile float64
	ReplicaHeadroom   float64

	// ColdStart is how long a wake from zero takes, by kind of workload;
	// MaxWaitPerDay is the most a day's cold starts may make callers wait
	// (wakes a day times the wake time) before one replica is better kept
	// warm than shut down.
	ColdStart     ColdStarts
	MaxWaitPerDay time.Duration

	// WarningShare and WarningAmount make a workload's severity a warning
	// when its monthly savings are at least both this share of its cost
	// and this amount of money.
	WarningShare  float64
	WarningAmount float64

	// GPUTargetUtil is the utilization, in percent, a right-sized GPU
	// share may run at its p95.
	GPUTargetUtil float64

	// ChartBins is the number of points of each workload's usage chart.
	ChartBins int
}

// DefaultConfig returns the defaults: VPA's histogram scheme (5% bucket
// growth, 24 h half-life), CPU at p90 + 15%, memory at p95 of daily peaks
// + 15%, floors of 10m CPU and 64 MiB, an OOM bump of max(+100 MiB, x1.2),
// at least 24 h of history, no CPU limit and a memory limit equal to the
// request; idleAfter tried from 5 m to 4 h with KEDA's default cooldown of
// 5 m, at most 12 cold starts a day and at most 15 m a day of waiting for
// them (a wake takes 2 m for a GPU model server, 15 s for others); a
// warning from savings of 5% and 100 a month.
func DefaultConfig() Config {
	return Config{
		CPU:                 HistogramOptions{FirstBucket: 0.001, MaxValue: 1000, Growth: 1.05, HalfLife: 24 * time.Hour},
		Memory:              HistogramOptions{FirstBucket: 1e7, MaxValue: 1e13, Growth: 1.05, HalfLife: 24 * time.Hour},
		CPUPercentile:       0.9,
		MemoryPercentile:    0.95,
		Margin:              0.15,
		MinCPU:              0.010,
		MinMemory:           64 * MiB,
		OOMMinBump:          100 * MiB,
		OOMFactor:           1.2,
		MinHistory:          24 * time.Hour,
		CPULimitFactor:      0,
		MemoryLimitFactor:   1,
		Activation:          0,
		IdleAfterCandidates: []time.Duration{5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour},
		Cooldown:            5 * time.Minute,
		MinUptime:           shutdown.DefaultMinUptime,
		MaxColdStartsPerDay: 12,
		MinIdleShare:        0.10,
		ReplicaPercentile:   0.95,
		ReplicaHeadroom:     0.15,
		ColdStart:           ColdStarts{GPU: 2 * time.Minute, Other: 15 * time.Second},
		MaxWaitPerDay:       15 * time.Minute,
		WarningShare:        0.05,
		WarningAmount:       100,
		GPUTargetUtil:       80,
		ChartBins:           96,
	}
}

// Validate reports every field out of range, one line per field.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if err := c.CPU.Validate(); err != nil {
		bad("cpu histogram: %v", err)
	}
	if err := c.Memory.Validate(); err != nil {
		bad("memory histogram: %v", err)
	}
	share := func(name string, v float64) {
		if !(v >= 0 && v <= 1) {
			bad("%s = %v, must be in [0, 1]", name, v)
		}
	}
	nonNeg := func(name string, v float64) {
		if !(v >= 0) || math.IsInf(v, 0) {
			bad("%s = %v, must be a finite number >= 0", name, v)
		}
	}
	share("cpu percentile", c.CPUPercentile)
	share("memory percentile", c.MemoryPercentile)
	nonNeg("margin", c.Margin)
	nonNeg("min cpu", c.MinCPU)
	nonNeg("min memory", c.MinMemory)
	nonNeg("oom min bump", c.OOMMinBump)
	if !(c.OOMFactor >= 1) || math.IsInf(c.OOMFactor, 0) {
		bad("oom factor = %v, must be >= 1", c.OOMFactor)
	}
	if c.MinHistory < 0 {
		bad("min history = %v, must not be negative", c.MinHistory)
	}
	if c.CPULimitFactor != 0 && !(c.CPULimitFactor >= 1) {
		bad("cpu limit factor = %v, must be 0 (no limit) or >= 1", c.CPULimitFactor)
	}
	if c.MemoryLimitFactor != 0 && !(c.MemoryLimitFactor >= 1) {
		bad("memory limit factor = %v, must be 0 (no limit) or >= 1", c.MemoryLimitFactor)
	}
	nonNeg("activation", c.Activation)
	if len(c.IdleAfterCandidates) == 0 {
		bad("idle-after candidates: empty")
	} else if !slices.IsSorted(c.IdleAfterCandidates) || c.IdleAfterCandidates[0] <= 0 {
		bad("idle-after candidates = %v, must be positive and ascending", c.IdleAfterCandidates)
	}
	if c.Cooldown < 0 {
		bad("cooldown = %v, must not be negative", c.Cooldown)
	}
	if c.MinUptime < 0 {
		bad("min uptime = %v, must not be negative", c.MinUptime)
	}
	nonNeg("max cold starts per day", c.MaxColdStartsPerDay)
	share("min idle share", c.MinIdleShare)
	share("replica percentile", c.ReplicaPercentile)
	nonNeg("replica headroom", c.ReplicaHeadroom)
	if err := c.ColdStart.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxWaitPerDay < 0 {
		bad("max wait per day = %v, must not be negative", c.MaxWaitPerDay)
	}
	share("warning share", c.WarningShare)
	nonNeg("warning amount", c.WarningAmount)
	if !(c.GPUTargetUtil > 0 && c.GPUTargetUtil <= 100) {
		bad("gpu target utilization = %v, must be in (0, 100]", c.GPUTargetUtil)
	}
	if c.ChartBins < 2 || c.ChartBins > 10000 {
		bad("chart bins = %d, must be in [2, 10000]", c.ChartBins)
	}
	return errors.Join(errs...)
}

// ColdStarts are wake times from zero replicas: GPU for workloads with
// GPUs (a model server loads its weights), Other for the rest, and ByClass
// for a GPU class (GPUClass's names: "H100-80GB") over GPU.
type ColdStarts struct {
	GPU     time.Duration
	Other   time.Duration
	ByClass map[string]time.Duration
}

// For returns the wake time of a workload with GPUs of class (gpus > 0),
// or without.
func (c ColdStarts) For(class string, gpus int) time.Duration {
	if gpus <= 0 {
		return c.Other
	}
	if d, ok := c.ByClass[class]; ok {
		return d
	}
	return c.GPU
}

func (c ColdStarts) validate() error {
	var errs []error
	if c.GPU < 0 {
		errs = append(errs, fmt.Errorf("cold start gpu = %v, must not be negative", c.GPU))
	}
	if c.Other < 0 {
		errs = append(errs, fmt.Errorf("cold start cpu = %v, must not be negative", c.Other))
	}
	keys := make([]string, 0, len(c.ByClass))
	for k := range c.ByClass {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if c.ByClass[k] < 0 {
			errs = append(errs, fmt.Errorf("cold start %s = %v, must not be negative", k, c.ByClass[k]))
		}
	}
	return errors.Join(errs...)
}
