package autopilot

import (
	"encoding/json"
	"math"
	"time"
)

// SchemaVersion names the version of the JSON report's schema. It changes
// when a field is removed or changes meaning; adding a field does not.
const SchemaVersion = "ebb.dev/autopilot/v3"

// Report is the result of a recommendation run: one entry per workload,
// sorted by monthly savings, most first. Its JSON form is the documented,
// versioned schema (see SCHEMA.md).
type Report struct {
	Schema       string    `json:"schema"`
	Source       string    `json:"source"`
	HistoryStart time.Time `json:"historyStart"`
	HistoryEnd   time.Time `json:"historyEnd"`
	Step         string    `json:"step"`
	// Policy explains the choices the recommendations follow, such as the
	// percentiles and the limits.
	Policy    Policy           `json:"policy"`
	Prices    Prices           `json:"prices"`
	Totals    Cost             `json:"totals"`
	Workloads []WorkloadReport `json:"workloads"`
}

// Policy is the recommender's configuration as the report explains it.
type Policy struct {
	CPU          string `json:"cpu"`
	Memory       string `json:"memory"`
	CPULimit     string `json:"cpuLimit"`
	MemoryLimit  string `json:"memoryLimit"`
	Autoshutdown string `json:"autoshutdown"`
}

// Severity grades a workload: is it at risk, is there money worth acting
// on, or neither.
type Severity string

// Severities, from best to worst.
const (
	SeverityUnknown  Severity = "unknown"  // not enough data for any recommendation
	SeverityOK       Severity = "ok"       // neither at risk nor worth acting on
	SeverityWarning  Severity = "warning"  // savings above Config.WarningShare and Config.WarningAmount
	SeverityCritical Severity = "critical" // at risk: CPU used above its request, memory request or limit below its peak, OOM kills
)

func (s Severity) rank() int {
	switch s {
	case SeverityOK:
		return 1
	case SeverityWarning:
		return 2
	case SeverityCritical:
		return 3
	}
	return 0
}

// WorkloadReport is every recommendation for one Deployment or StatefulSet.
type WorkloadReport struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Replicas  int    `json:"replicas"`
	// ReplicaHistory is the replicas it ran over the history; costs and
	// the autoshutdown backtest are computed from it.
	ReplicaHistory ReplicaHistory `json:"replicaHistory"`
	Severity       Severity       `json:"severity"`
	// SeverityReason says why, in words.
	SeverityReason string                      `json:"severityReason"`
	Containers     []ContainerReport           `json:"containers"`
	Scaling        *ScalingRecommendation      `json:"scaling,omitempty"`
	Autoshutdown   *AutoshutdownRecommendation `json:"autoshutdown,omitempty"`
	GPU            *GPURecommendation          `json:"gpu,omitempty"`
	Cost           Cost                        `json:"cost"`
	Chart          Chart                       `json:"chart"`
}

// ContainerReport holds one container's CPU and memory recommendations.
type ContainerReport struct {
	Name     string                 `json:"name"`
	CPU      ResourceRecommendation `json:"cpu"`
	Memory   ResourceRecommendation `json:"memory"`
	OOMKills int                    `json:"oomKills"`
	// OOMKillsFrom says which kube-state-metrics signal OOMKills comes
	// from: OOMFromRestarts, OOMFromReason (the fallback), or both.
	OOMKillsFrom string `json:"oomKillsFrom,omitempty"`
}

// ResourceRecommendation is a request and limit for one resource, in cores
// for CPU and bytes for memory. A zero request or limit means none.
type ResourceRecommendation struct {
	CurrentRequest float64 `json:"currentRequest"`
	CurrentLimit   float64 `json:"currentLimit"`
	// Request, Limit, Lower and Upper are zero when NotEnoughData is set.
	Request float64 `json:"request"`
	Limit   float64 `json:"limit"`
	// Lower and Upper bound the request: they widen as history gets short.
	Lower float64 `json:"lower"`
	Upper float64 `json:"upper"`
	// Percentile is the observed value the request is built on, Max the
	// highest observed.
	Percentile float64 `json:"percentile"`
	Max        float64 `json:"max"`
	Samples    int     `json:"samples"`
	// HistoryHours is the time between the first and last sample.
	HistoryHours float64 `json:"historyHours"`
	// Confidence is in days of evidence: the lesser of the history's span
	// and the samples' worth of time.
	Confidence float64 `json:"confidence"`
	Basis      string  `json:"basis,omitempty"`
	// NotEnoughData, when set, says why there is no recommendation.
	NotEnoughData string `json:"notEnoughData,omitempty"`
}

// Cost is monthly (730 h) cost in the price table's currency.
type Cost struct {
	MonthlyNow         float64 `json:"monthlyNow"`
	MonthlyRecommended float64 `json:"monthlyRecommended"`
	MonthlySavings     float64 `json:"monthlySavings"`
	// SavingsBy splits MonthlySavings by the advice it comes from.
	SavingsBy Savings `json:"savingsBy"`
}

// Savings is monthly savings by the advice they come from, applied in
// this order: the CPU, memory and GPU requests at the replicas of the
// history, then the recommended scaling replayed over the history (less
// than 0 where bursts need more replicas than ran), then autoshutdown.
// They add up to Cost.MonthlySavings.
type Savings struct {
	CPU          float64 `json:"cpu"`
	Memory       float64 `json:"memory"`
	GPU          float64 `json:"gpu"`
	Replicas     float64 `json:"replicas"`
	Autoshutdown float64 `json:"autoshutdown"`
}

func (s Savings) add(o Savings) Savings {
	return Savings{CPU: s.CPU + o.CPU, Memory: s.Memory + o.Memory, GPU: s.GPU + o.GPU,
		Replicas: s.Replicas + o.Replicas, Autoshutdown: s.Autoshutdown + o.Autoshutdown}
}

func (s Savings) rounded() Savings {
	return Savings{CPU: round(s.CPU, 2), Memory: round(s.Memory, 2), GPU: round(s.GPU, 2),
		Replicas: round(s.Replicas, 2), Autoshutdown: round(s.Autoshutdown, 2)}
}

// Chart is a workload's usage over the history in ChartBins fixed bins
// from Start, for the HTML report's charts. A series is absent where the
// history has none of it.
type Chart struct {
	Start      time.Time `json:"start"`
	BinSeconds float64   `json:"binSeconds"`
	// Container is the container of the CPU and memory series: the one
	// with the highest recommended CPU.
	Container string `json:"container,omitempty"`
	// CPU is the highest per-pod CPU of each bin, CPUP50 and CPUP90 the
	// bin's percentiles over its pods' samples, in cores.
	CPU        ChartValues `json:"cpu"`
	CPUP50     ChartValues `json:"cpuP50,omitempty"`
	CPUP90     ChartValues `json:"cpuP90,omitempty"`
	CPURequest float64     `json:"cpuRequest"`
	CPUTarget  float64     `json:"cpuRecommended"`
	CPULimit   float64     `json:"cpuLimit"`
	// Memory is the highest per-pod working set of each bin, in bytes,
	// OOMKills the kills in each bin (absent without any).
	Memory            ChartValues `json:"memory,omitempty"`
	MemoryRequest     float64     `json:"memoryRequest"`
	MemoryLimit       float64     `json:"memoryLimit"`
	MemoryRecommended float64     `json:"memoryRecommended"`
	OOMKills          []int       `json:"oomKills,omitempty"`
	// RequestRate is the highest step rate of each bin, RequestRateMean
	// the bin's mean, RequestPeak its highest 1-minute rate; Replicas the
	// most replicas of each bin.
	RequestRate     ChartValues `json:"requestRate,omitempty"`
	RequestRateMean ChartValues `json:"requestRateMean,omitempty"`
	RequestPeak     ChartValues `json:"requestRatePeak,omitempty"`
	Replicas        ChartValues `json:"replicas,omitempty"`
	// GPUUtil is the mean GPU utilization of each bin and GPUUtilMax its
	// highest, KVCache the highest KV-cache usage, in percent;
	// FramebufferMiB the highest framebuffer in use on one GPU.
	GPUUtil        ChartValues `json:"gpuUtil,omitempty"`
	GPUUtilMax     ChartValues `json:"gpuUtilMax,omitempty"`
	KVCache        ChartValues `json:"kvCache,omitempty"`
	FramebufferMiB ChartValues `json:"framebufferMiB,omitempty"`
}

// ChartValues are a chart's points; a bin without samples is NaN in Go and
// null in JSON.
type ChartValues []float64

// MarshalJSON writes NaN as null.
func (v ChartValues) MarshalJSON() ([]byte, error) {
	if v == nil {
		return []byte("null"), nil
	}
	b := []byte{'['}
	for i, x := range v {
		if i > 0 {
			b = append(b, ',')
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			b = append(b, "null"...)
			continue
		}
		xb, _ := json.Marshal(round(x, 4))
		b = append(b, xb...)
	}
	return append(b, ']'), nil
}

// UnmarshalJSON reads null as NaN.
func (v *ChartValues) UnmarshalJSON(b []byte) error {
	var raw []*float64
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if raw == nil {
		*v = nil
		return nil
	}
	out := make(ChartValues, len(raw))
	for i, p := range raw {
		out[i] = math.NaN()
		if p != nil {
			out[i] = *p
		}
	}
	*v = out
	return nil
}
