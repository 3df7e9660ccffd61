// Package report renders an autopilot.Report as a terminal table, JSON,
// CSV, Markdown or a self-contained HTML page.
package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/ebbscale/ebb/autopilot"
)

// Formats lists the formats Render knows.
var Formats = []string{"table", "json", "csv", "markdown", "html"}

// Render writes r to w in format: table, json, csv, markdown or html.
func Render(w io.Writer, r *autopilot.Report, format string) error {
	switch format {
	case "table":
		return Table(w, r)
	case "json":
		return JSON(w, r)
	case "csv":
		return CSV(w, r)
	case "markdown":
		return Markdown(w, r)
	case "html":
		return HTML(w, r)
	}
	return fmt.Errorf("format %q: want %s", format, strings.Join(Formats, ", "))
}

// JSON writes the report in its versioned schema, indented.
func JSON(w io.Writer, r *autopilot.Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// cpu renders a CPU request: "250m", "-" for none, "?" with no data.
func cpu(v float64) string {
	if v <= 0 {
		return "-"
	}
	return autopilot.FormatCPU(v)
}

func mem(v float64) string {
	if v <= 0 {
		return "-"
	}
	return autopilot.FormatMemory(v)
}

// change renders "current -> recommended", or the reason there is none.
func change(r autopilot.ResourceRecommendation, f func(float64) string) string {
	if r.NotEnoughData != "" {
		return f(r.CurrentRequest) + " -> ? (" + r.NotEnoughData + ")"
	}
	return f(r.CurrentRequest) + " -> " + f(r.Request)
}

func money(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

func scaling(w autopilot.WorkloadReport) string {
	s := w.Scaling
	switch {
	case s == nil:
		return "-"
	case s.NotEnoughData != "":
		return "? (" + s.NotEnoughData + ")"
	}
	return fmt.Sprintf("%d-%d @ %s rps", s.MinReplicas, s.MaxReplicas, num(s.TargetRPS))
}

func idleAfter(w autopilot.WorkloadReport) string {
	a := w.Autoshutdown
	if a == nil || !a.Recommended {
		return "-"
	}
	return a.IdleAfter
}

func gpu(w autopilot.WorkloadReport) string {
	if w.GPU == nil {
		return "-"
	}
	if w.GPU.Action == autopilot.GPUNotEnough {
		return "? (" + w.GPU.Reason + ")"
	}
	if w.GPU.Action == autopilot.GPUKeep {
		return "keep " + w.GPU.Recommended
	}
	return w.GPU.Recommended
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

// Table writes one line per container, the workload's columns on its first.
func Table(w io.Writer, r *autopilot.Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "SEVERITY\tWORKLOAD\tCONTAINER\tCPU REQUEST\tMEMORY REQUEST\tREPLICAS\tIDLE AFTER\tGPU\tSAVINGS/MO\n")
	for _, wl := range r.Workloads {
		name := wl.Namespace + "/" + wl.Name
		if len(wl.Containers) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t%s\t%s\t%s\t%s\n", wl.Severity, name, scaling(wl), idleAfter(wl), gpu(wl), money(wl.Cost.MonthlySavings))
		}
		for i, c := range wl.Containers {
			if i == 0 {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", wl.Severity, name, c.Name,
					change(c.CPU, cpu), change(c.Memory, mem), scaling(wl), idleAfter(wl), gpu(wl), money(wl.Cost.MonthlySavings))
				continue
			}
			fmt.Fprintf(tw, "\t\t%s\t%s\t%s\t\t\t\t\n", c.Name, change(c.CPU, cpu), change(c.Memory, mem))
		}
	}
	fmt.Fprintf(tw, "\nTOTAL %s/month: now %s, recommended %s, savings %s\n", r.Prices.Currency,
		money(r.Totals.MonthlyNow), money(r.Totals.MonthlyRecommended), money(r.Totals.MonthlySavings))
	return tw.Flush()
}

// CSVHeader is the first row of the CSV report; one row per container
// follows (a workload without containers has one row with an empty
// container). Quantities are in cores, bytes and the price table's currency.
var CSVHeader = []string{
	"namespace", "workload", "container", "severity", "replicas",
	"cpu_request_current", "cpu_request", "cpu_limit", "cpu_not_enough_data",
	"memory_request_current", "memory_request", "memory_limit", "memory_not_enough_data", "oom_kills",
	"target_rps", "min_replicas", "max_replicas", "idle_after",
	"gpu_action", "gpu_recommended",
	"monthly_now", "monthly_recommended", "monthly_savings",
	"replicas_mean", "replicas_source", "oom_kills_from", "gpu_kv_cache_source",
}

// CSV writes the report as CSV with CSVHeader.
func CSV(w io.Writer, r *autopilot.Report) error {
	cw := csv.NewWriter(w)
	cw.Write(CSVHeader)
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	for _, wl := range r.Workloads {
		var target, minR, maxR, gAction, gRec, gKV string
		if s := wl.Scaling; s != nil && s.NotEnoughData == "" {
			target, minR, maxR = f(s.TargetRPS), strconv.Itoa(s.MinReplicas), strconv.Itoa(s.MaxReplicas)
		}
		if wl.GPU != nil {
			gAction, gRec, gKV = wl.GPU.Action, wl.GPU.Recommended, wl.GPU.KVCacheSource
		}
		idle := ""
		if a := wl.Autoshutdown; a != nil && a.Recommended {
			idle = a.IdleAfter
		}
		cs := wl.Containers
		if len(cs) == 0 {
			cs = []autopilot.ContainerReport{{}}
		}
		for _, c := range cs {
			cw.Write([]string{
				wl.Namespace, wl.Name, c.Name, string(wl.Severity), strconv.Itoa(wl.Replicas),
				f(c.CPU.CurrentRequest), f(c.CPU.Request), f(c.CPU.Limit), c.CPU.NotEnoughData,
				f(c.Memory.CurrentRequest), f(c.Memory.Request), f(c.Memory.Limit), c.Memory.NotEnoughData, strconv.Itoa(c.OOMKills),
				target, minR, maxR, idle, gAction, gRec,
				money(wl.Cost.MonthlyNow), money(wl.Cost.MonthlyRecommended), money(wl.Cost.MonthlySavings),
				f(wl.ReplicaHistory.Mean), wl.ReplicaHistory.Source, c.OOMKillsFrom, gKV,
			})
		}
	}
	cw.Flush()
	return cw.Error()
}

// mdEscape keeps a table cell in its cell.
func mdEscape(s string) string { return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s) }

// Markdown writes a summary table and every workload's evidence.
func Markdown(w io.Writer, r *autopilot.Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# ebb autopilot recommendations\n\n")
	fmt.Fprintf(&b, "History %s to %s, step %s, source %s. Schema `%s`.\n\n",
		r.HistoryStart.Format("2006-01-02 15:04 MST"), r.HistoryEnd.Format("2006-01-02 15:04 MST"), r.Step, mdEscape(r.Source), r.Schema)
	fmt.Fprintf(&b, "**Monthly cost (%s):** now %s, recommended %s, **savings %s**.\n\n", r.Prices.Currency,
		money(r.Totals.MonthlyNow), money(r.Totals.MonthlyRecommended), money(r.Totals.MonthlySavings))
	b.WriteString("| severity | workload | container | CPU request | memory request | replicas | idle after | GPU | savings/mo |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- | ---: |\n")
	for _, wl := range r.Workloads {
		name := wl.Namespace + "/" + wl.Name
		cs := wl.Containers
		if len(cs) == 0 {
			cs = []autopilot.ContainerReport{{Name: "-"}}
		}
		for _, c := range cs {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", wl.Severity, mdEscape(name), mdEscape(c.Name),
				mdEscape(change(c.CPU, cpu)), mdEscape(change(c.Memory, mem)), mdEscape(scaling(wl)), idleAfter(wl), mdEscape(gpu(wl)), money(wl.Cost.MonthlySavings))
		}
	}
	b.WriteString("\n## Policy\n\n")
	for _, p := range [][2]string{{"CPU", r.Policy.CPU}, {"Memory", r.Policy.Memory}, {"CPU limit", r.Policy.CPULimit},
		{"Memory limit", r.Policy.MemoryLimit}, {"Autoshutdown", r.Policy.Autoshutdown}} {
		fmt.Fprintf(&b, "- **%s:** %s\n", p[0], mdEscape(p[1]))
	}
	b.WriteString("\n## Evidence\n")
	for _, wl := range r.Workloads {
		fmt.Fprintf(&b, "\n### %s/%s (%s, %d replicas)\n\n", wl.Namespace, wl.Name, wl.Severity, wl.Replicas)
		for _, line := range evidence(wl) {
			fmt.Fprintf(&b, "- %s\n", mdEscape(line))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// evidence returns the sentences behind a workload's recommendations.
func evidence(wl autopilot.WorkloadReport) []string {
	var out []string
	res := func(c, kind string, r autopilot.ResourceRecommendation, f func(float64) string) {
		if r.NotEnoughData != "" {
			out = append(out, fmt.Sprintf("%s %s: not enough data: %s", c, kind, r.NotEnoughData))
			return
		}
		out = append(out, fmt.Sprintf("%s %s: %s -> %s (range %s-%s, limit %s): %s; max %s; %s days of evidence",
			c, kind, f(r.CurrentRequest), f(r.Request), f(r.Lower), f(r.Upper), f(r.Limit), r.Basis, f(r.Max), num(r.Confidence)))
	}
	for _, c := range wl.Containers {
		res(c.Name, "CPU", c.CPU, cpu)
		res(c.Name, "memory", c.Memory, mem)
		if c.OOMKills > 0 {
			out = append(out, fmt.Sprintf("%s OOM kills: %d, counted from %s", c.Name, c.OOMKills, oomFrom(c.OOMKillsFrom)))
		}
	}
	if rh := wl.ReplicaHistory; rh.Source != "" {
		src := "from kube-state-metrics"
		if rh.Source == autopilot.ReplicasFromCurrent {
			src = "assumed"
		}
		out = append(out, fmt.Sprintf("replicas over the history (%s): %s; %s replica-hours", src, rh.Note, num(rh.ReplicaHours)))
	}
	if s := wl.Scaling; s != nil {
		if s.NotEnoughData != "" {
			out = append(out, "replicas: not enough data: "+s.NotEnoughData)
		} else {
			out = append(out, fmt.Sprintf("replicas %d-%d, target %s req/s per replica: %s", s.MinReplicas, s.MaxReplicas, num(s.TargetRPS), s.Basis))
		}
	}
	if a := wl.Autoshutdown; a != nil {
		out = append(out, fmt.Sprintf("autoshutdown (idle %s of the time): %s", pctText(a.IdleShare), a.Reason))
	}
	if g := wl.GPU; g != nil {
		out = append(out, fmt.Sprintf("GPU %s (%s) x%d: %s: %s", g.Class, g.Model, g.GPUsPerReplica, g.Recommended, g.Reason))
		if g.KVCache {
			out = append(out, fmt.Sprintf("KV cache from %s: p95 %s%%, peak %s%%", kvFrom(g.KVCacheSource), num(g.KVCacheP95), num(g.KVCacheMax)))
		}
	}
	out = append(out, fmt.Sprintf("monthly cost: now %s, recommended %s, savings %s", money(wl.Cost.MonthlyNow), money(wl.Cost.MonthlyRecommended), money(wl.Cost.MonthlySavings)))
	return out
}

func pctText(share float64) string { return strconv.FormatFloat(share*100, 'f', 1, 64) + "%" }

// oomFrom says in words which signal OOM kills were counted from.
func oomFrom(from string) string {
	return strings.NewReplacer(
		autopilot.OOMFromRestarts, "restarts while OOMKilled",
		autopilot.OOMFromReason, "rises of the last terminated reason OOMKilled (no restart counter: kills in a row count once)",
	).Replace(from)
}

// kvFrom names the model servers of a KV-cache figure.
func kvFrom(source string) string {
	return strings.NewReplacer(string(autopilot.VLLM), "vLLM", string(autopilot.TGI), "TGI", ",", " and ").Replace(source)
}
