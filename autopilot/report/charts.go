package report

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/ebbscale/ebb/autopilot"
)

// Colours of the charts.
const (
	colUse     = "#1f5fbf" // usage: max, mean
	colUseP90  = "#5b8fd9"
	colUseP50  = "#a9c4ec"
	colCurrent = "#c0392b" // today's request
	colLimit   = "#e67e22"
	colRec     = "#1b7a1b" // recommended
	colPeak    = "#8e44ad"
	colOOM     = "#c0392b"
)

// Chart kinds, in each svg's data-kind.
const (
	ChartCPU      = "cpu"
	ChartMemory   = "memory"
	ChartGPU      = "gpu"
	ChartRequests = "requests"
)

// ChartKinds returns the charts the HTML report draws for a workload:
// CPU and memory where it has a container with usage, GPU where it has
// GPU samples, requests where it has a request rate; the resources by
// what they cost today, most first, then the requests.
func ChartKinds(wl autopilot.WorkloadReport, p autopilot.Prices) []string {
	type costed struct {
		kind string
		cost float64
	}
	var rs []costed
	ch := wl.Chart
	if hasValues(ch.CPU) {
		rs = append(rs, costed{ChartCPU, ch.CPURequest * p.CPUCoreHour})
	}
	if hasValues(ch.Memory) {
		rs = append(rs, costed{ChartMemory, ch.MemoryRequest / autopilot.GiB * p.MemoryGiBHour})
	}
	if hasValues(ch.GPUUtil) && wl.GPU != nil {
		rs = append(rs, costed{ChartGPU, float64(wl.GPU.GPUsPerReplica) * p.GPU(wl.GPU.Class)})
	}
	slices.SortStableFunc(rs, func(a, b costed) int { return cmp.Compare(b.cost, a.cost) })
	var out []string
	for _, r := range rs {
		out = append(out, r.kind)
	}
	if hasValues(ch.RequestRate) {
		out = append(out, ChartRequests)
	}
	return out
}

func hasValues(v autopilot.ChartValues) bool {
	for _, x := range v {
		if !math.IsNaN(x) {
			return true
		}
	}
	return false
}

// chartsOf builds a workload's charts in ChartKinds' order.
func chartsOf(wl autopilot.WorkloadReport, p autopilot.Prices) []*svgChart {
	ch := wl.Chart
	base := func(kind, title string, left axis) *svgChart {
		return &svgChart{kind: kind, title: title, start: ch.Start, bin: time.Duration(ch.BinSeconds * float64(time.Second)), left: left}
	}
	var out []*svgChart
	for _, k := range ChartKinds(wl, p) {
		switch k {
		case ChartCPU:
			c := base(k, "CPU of container "+ch.Container+" per pod, in cores", axis{label: "CPU (cores)", format: coresTick})
			c.series = []series{
				{name: "p50", color: colUseP50, width: 1.5, values: ch.CPUP50},
				{name: "p90", color: colUseP90, width: 1.5, values: ch.CPUP90},
				{name: "max", color: colUse, width: 1.5, values: ch.CPU},
			}
			if ch.CPURequest > 0 {
				c.levels = append(c.levels, level{name: "request " + autopilot.FormatCPU(ch.CPURequest), color: colCurrent, dash: "6 4", value: ch.CPURequest})
			}
			if ch.CPULimit > 0 {
				c.levels = append(c.levels, level{name: "limit " + autopilot.FormatCPU(ch.CPULimit), color: colLimit, dash: "2 3", value: ch.CPULimit})
			}
			if ch.CPUTarget > 0 {
				c.levels = append(c.levels, level{name: "recommended " + autopilot.FormatCPU(ch.CPUTarget), color: colRec, value: ch.CPUTarget})
			}
			out = append(out, c)
		case ChartMemory:
			c := base(k, "Memory of container "+ch.Container+": highest working set per pod", axis{label: "memory (MiB)", format: mibTick})
			c.series = []series{{name: "working set (max)", color: colUse, width: 1.5, values: scaled(ch.Memory, 1/float64(autopilot.MiB))}}
			mi := func(v float64) float64 { return v / autopilot.MiB }
			switch {
			case ch.MemoryRequest > 0 && ch.MemoryRequest == ch.MemoryLimit:
				c.levels = append(c.levels, level{name: "request = limit " + autopilot.FormatMemory(ch.MemoryRequest), color: colCurrent, dash: "6 4", value: mi(ch.MemoryRequest)})
			default:
				if ch.MemoryRequest > 0 {
					c.levels = append(c.levels, level{name: "request " + autopilot.FormatMemory(ch.MemoryRequest), color: colCurrent, dash: "6 4", value: mi(ch.MemoryRequest)})
				}
				if ch.MemoryLimit > 0 {
					c.levels = append(c.levels, level{name: "limit " + autopilot.FormatMemory(ch.MemoryLimit), color: colLimit, dash: "2 3", value: mi(ch.MemoryLimit)})
				}
			}
			if ch.MemoryRecommended > 0 {
				c.levels = append(c.levels, level{name: "recommended " + autopilot.FormatMemory(ch.MemoryRecommended), color: colRec, value: mi(ch.MemoryRecommended)})
			}
			if len(ch.OOMKills) > 0 {
				c.marks = &marks{name: "OOM kill", color: colOOM, counts: ch.OOMKills}
			}
			out = append(out, c)
		case ChartGPU:
			g := wl.GPU
			c := base(k, "GPU utilization per GPU ("+g.Class+")", axis{label: "percent", format: pctTick, max: 100})
			c.series = []series{
				{name: "utilization (mean)", color: colUse, width: 1.5, values: ch.GPUUtil},
				{name: "utilization (max)", color: colUseP50, width: 1.2, values: ch.GPUUtilMax},
			}
			switch {
			case hasValues(ch.KVCache):
				c.title += " and KV-cache usage"
				c.series = append(c.series, series{name: "KV cache (max)", color: colPeak, width: 1.5, values: ch.KVCache})
			case hasValues(ch.FramebufferMiB) && g.FramebufferTotalMiB > 0:
				c.title += " and framebuffer in use"
				c.series = append(c.series, series{name: "framebuffer (% of " + thousands(g.FramebufferTotalMiB) + " MiB)", color: colPeak, width: 1.5,
					values: scaled(ch.FramebufferMiB, 100/g.FramebufferTotalMiB)})
			}
			out = append(out, c)
		case ChartRequests:
			c := base(k, "Request rate and replicas", axis{label: "requests/s", format: numTick})
			c.right = &axis{label: "replicas", format: numTick}
			c.series = []series{{name: "mean rate", color: colUseP50, width: 1.5, values: ch.RequestRateMean}}
			if hasValues(ch.RequestPeak) {
				c.series = append(c.series, series{name: "highest 1-minute rate", color: colUse, width: 1.5, values: ch.RequestPeak})
			} else {
				c.series = append(c.series, series{name: "highest " + stepName(wl) + " rate", color: colUse, width: 1.5, values: ch.RequestRate})
			}
			if hasValues(ch.Replicas) {
				c.series = append(c.series, series{name: "replicas", color: "#555", width: 1.5, values: ch.Replicas, right: true, step: true})
			} else if wl.Replicas > 0 {
				c.levels = append(c.levels, level{name: "replicas today (no history)", color: "#555", dash: "6 4", value: float64(wl.Replicas), right: true})
			}
			if s := wl.Scaling; s != nil && s.NotEnoughData == "" {
				load := ch.RequestPeak
				if !hasValues(load) {
					load = ch.RequestRate
				}
				c.series = append(c.series, series{name: "recommended at target " + num(s.TargetRPS) + "/s", color: colRec, width: 1.5,
					values: replicasFor(load, s), right: true, step: true})
				c.levels = append(c.levels,
					level{name: "min " + strconv.Itoa(s.MinReplicas), color: colRec, dash: "2 3", value: float64(s.MinReplicas), right: true},
					level{name: "max " + strconv.Itoa(s.MaxReplicas), color: colRec, dash: "6 4", value: float64(s.MaxReplicas), right: true})
			}
			out = append(out, c)
		}
	}
	return out
}

// stepName names the rate's window: the history's step.
func stepName(wl autopilot.WorkloadReport) string {
	if s := wl.Scaling; s != nil && s.BurstWindow != "" {
		return s.BurstWindow
	}
	return "step"
}

// replicasFor is the replicas the recommended scaling runs for each bin's
// highest rate: ceil(rate / target) within its bounds.
func replicasFor(load autopilot.ChartValues, s *autopilot.ScalingRecommendation) []float64 {
	out := make([]float64, len(load))
	for i, v := range load {
		out[i] = math.NaN()
		if !math.IsNaN(v) {
			out[i] = float64(min(max(int(math.Ceil(v/s.TargetRPS-0.01)), s.MinReplicas), s.MaxReplicas))
		}
	}
	return out
}

func scaled(v autopilot.ChartValues, f float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = x * f
	}
	return out
}

func coresTick(v float64) string {
	if v == 0 {
		return "0"
	}
	return autopilot.FormatCPU(v)
}
func mibTick(v float64) string { return thousands(v) }
func pctTick(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) + "%" }
func numTick(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

// thousands renders a whole number with thousands separators: "81,560".
func thousands(v float64) string { return autopilot.FormatThousands(v) }
