// Package report renders an autopilot.Report as a terminal table, JSON,
// CSV, Markdown or a self-contained HTML page.
package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/ebbscale/ebb/autopilot"
	"github.com/ebbscale/ebb/shutdown"
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

// Options change how a report renders.
type Options struct {
	// Wide makes the table show every column, unabridged; by default it
	// fits TableWidth columns and explains its short cells in a legend.
	Wide bool
}

// TableWidth is the width the default table fits in.
const TableWidth = 120

// RenderWith writes r to w in format, with o.
func RenderWith(w io.Writer, r *autopilot.Report, format string, o Options) error {
	if format == "table" && o.Wide {
		return WideTable(w, r)
	}
	return Render(w, r, format)
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

// short renders "current→recommended", "?" without enough data.
func short(r autopilot.ResourceRecommendation, f func(float64) string) string {
	if r.NotEnoughData != "" {
		return f(r.CurrentRequest) + "→?"
	}
	return f(r.CurrentRequest) + "→" + f(r.Request)
}

// money renders an amount in the report's currency: "$2,280.23".
func money(r *autopilot.Report, v float64) string { return autopilot.FormatMoney(v, r.Prices.Currency) }

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

// scalingShort renders "0-2 @ 0.2", "?" without enough data.
func scalingShort(w autopilot.WorkloadReport) string {
	s := w.Scaling
	switch {
	case s == nil:
		return "-"
	case s.NotEnoughData != "":
		return "?"
	}
	return fmt.Sprintf("%d-%d @ %s", s.MinReplicas, s.MaxReplicas, num(s.TargetRPS))
}

func idleAfter(w autopilot.WorkloadReport) string {
	a := w.Autoshutdown
	switch {
	case a == nil:
		return "-"
	case a.KeepWarm:
		return "keep warm"
	case !a.Recommended:
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

// gpuShort renders the GPU advice in a few characters: "keep", "MIG
// 3g.20gb", "share 2/T4", "none", "1 x L4", "?".
func gpuShort(w autopilot.WorkloadReport) string {
	g := w.GPU
	switch {
	case g == nil:
		return "-"
	case g.Action == autopilot.GPUNotEnough:
		return "?"
	case g.Action == autopilot.GPUKeep:
		return "keep"
	case g.Action == autopilot.GPUTimeSlicing && g.GPUs > 0:
		return fmt.Sprintf("share %d/%s", int(math.Round(1/g.GPUs)), g.Class)
	case g.Recommended == "no GPU":
		return "none"
	}
	return g.Recommended
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

// savingsBy renders where savings come from: "CPU $1.00, memory ...".
func savingsBy(r *autopilot.Report, s autopilot.Savings) string {
	parts := []string{}
	for _, p := range []struct {
		name string
		v    float64
	}{{"CPU", s.CPU}, {"memory", s.Memory}, {"GPU", s.GPU}, {"replicas", s.Replicas}, {"autoshutdown", s.Autoshutdown}} {
		parts = append(parts, p.name+" "+money(r, p.v))
	}
	return strings.Join(parts, ", ")
}

// totalLine is the report's total in words.
func totalLine(r *autopilot.Report) string {
	t := r.Totals
	return fmt.Sprintf("now %s a month, recommended %s: saves %s (%s)", money(r, t.MonthlyNow), money(r, t.MonthlyRecommended),
		money(r, t.MonthlySavings), savingsBy(r, t.SavingsBy))
}

// Table writes one line per workload (and one per further container)
// in TableWidth columns, with a legend for its short cells.
func Table(w io.Writer, r *autopilot.Report) error {
	head := []string{"SEVERITY", "WORKLOAD", "CPU", "MEMORY", "REPLICAS", "IDLE AFTER", "GPU", "SAVINGS/MO"}
	rows := [][]string{}
	multi := false
	for _, wl := range r.Workloads {
		name := wl.Namespace + "/" + wl.Name
		if len(wl.Containers) > 1 {
			multi = true
		}
		if len(wl.Containers) == 0 {
			rows = append(rows, []string{string(wl.Severity), name, "-", "-", scalingShort(wl), idleAfter(wl), gpuShort(wl), money(r, wl.Cost.MonthlySavings)})
		}
		for i, c := range wl.Containers {
			switch {
			case i == 0 && len(wl.Containers) == 1:
				rows = append(rows, []string{string(wl.Severity), name, short(c.CPU, cpu), short(c.Memory, mem), scalingShort(wl), idleAfter(wl), gpuShort(wl), money(r, wl.Cost.MonthlySavings)})
			case i == 0:
				rows = append(rows, []string{string(wl.Severity), name, "", "", scalingShort(wl), idleAfter(wl), gpuShort(wl), money(r, wl.Cost.MonthlySavings)})
				fallthrough
			default:
				rows = append(rows, []string{"", "  " + c.Name, short(c.CPU, cpu), short(c.Memory, mem), "", "", "", ""})
			}
		}
	}
	var b strings.Builder
	writeColumns(&b, head, rows, TableWidth, 1, map[int]bool{7: true})
	if lack := notEnoughData(r); len(lack) > 0 {
		b.WriteString("\n?: not enough data:\n")
		for _, l := range lack {
			b.WriteString(wrap(l, TableWidth, "    "))
		}
	}
	t := r.Totals
	fmt.Fprintf(&b, "\nTOTAL now %s a month, recommended %s: saves %s\n", money(r, t.MonthlyNow), money(r, t.MonthlyRecommended), money(r, t.MonthlySavings))
	fmt.Fprintf(&b, "  from %s\n\n", savingsBy(r, t.SavingsBy))
	b.WriteString("CPU and MEMORY: request now→recommended")
	if multi {
		b.WriteString(", per container below its workload")
	}
	b.WriteString(".\nREPLICAS: minReplicas-maxReplicas @ target requests/s per replica.\n")
	b.WriteString("IDLE AFTER: autoshutdown's idleAfter; keep warm: cold starts would make callers wait too long, keep 1 replica.\n")
	b.WriteString("GPU: keep, none, MIG profile, share N/class (time-slicing), or a smaller GPU. ?: not enough data.\n")
	b.WriteString("--wide shows every column and reason; --format markdown or html the evidence, charts and YAML to apply.\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// notEnoughData says, per workload and container, why a "?" has no
// recommendation.
func notEnoughData(r *autopilot.Report) []string {
	var out []string
	for _, wl := range r.Workloads {
		name := wl.Namespace + "/" + wl.Name
		for _, c := range wl.Containers {
			who := name
			if c.Name != "" && c.Name != "-" {
				who += " " + c.Name
			}
			switch cpu, mem := c.CPU.NotEnoughData, c.Memory.NotEnoughData; {
			case cpu != "" && cpu == mem:
				out = append(out, who+": CPU and memory: "+cpu)
			case cpu != "" && mem != "":
				out = append(out, who+": CPU: "+cpu+"; memory: "+mem)
			case cpu != "":
				out = append(out, who+": CPU: "+cpu)
			case mem != "":
				out = append(out, who+": memory: "+mem)
			}
		}
		if s := wl.Scaling; s != nil && s.NotEnoughData != "" {
			out = append(out, name+": replicas: "+s.NotEnoughData)
		}
		if g := wl.GPU; g != nil && g.Action == autopilot.GPUNotEnough {
			out = append(out, name+": GPU: "+g.Reason)
		}
	}
	return out
}

// wrap breaks s into lines of at most width runes at spaces, the first
// indented by two spaces, the others by indent.
func wrap(s string, width int, indent string) string {
	var b strings.Builder
	line := "  "
	for _, word := range strings.Fields(s) {
		if utf8.RuneCountInString(line)+1+utf8.RuneCountInString(word) > width && strings.TrimSpace(line) != "" {
			b.WriteString(strings.TrimRight(line, " ") + "\n")
			line = indent
		}
		if strings.TrimSpace(line) != "" {
			line += " "
		}
		line += word
	}
	b.WriteString(line + "\n")
	return b.String()
}

// writeColumns lays rows out in columns two spaces apart; when wider than
// width, column shrink (the workload's) is cut with "…" down to 12
// characters. Columns in right are aligned right.
func writeColumns(b *strings.Builder, head []string, rows [][]string, width, shrink int, right map[int]bool) {
	widths := make([]int, len(head))
	for _, row := range append([][]string{head}, rows...) {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	total := 2 * (len(widths) - 1)
	for _, wd := range widths {
		total += wd
	}
	if over := total - width; over > 0 {
		widths[shrink] = max(widths[shrink]-over, 12)
	}
	line := func(row []string) {
		var l strings.Builder
		for i, c := range row {
			if n := utf8.RuneCountInString(c); n > widths[i] {
				c = string([]rune(c)[:widths[i]-1]) + "…"
			}
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i > 0 {
				l.WriteString("  ")
			}
			if right[i] {
				l.WriteString(pad + c)
			} else {
				l.WriteString(c + pad)
			}
		}
		b.WriteString(strings.TrimRight(l.String(), " ") + "\n")
	}
	line(head)
	for _, row := range rows {
		line(row)
	}
}

// WideTable writes every column and reason, one line per container.
func WideTable(w io.Writer, r *autopilot.Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "SEVERITY\tWORKLOAD\tCONTAINER\tCPU REQUEST\tCPU LIMIT\tMEMORY REQUEST\tMEMORY LIMIT\tOOM KILLS\tREPLICAS\tBURST\tIDLE AFTER\tCOLD STARTS/DAY\tGPU\tNOW/MO\tRECOMMENDED/MO\tSAVINGS/MO\tWHY\n")
	for _, wl := range r.Workloads {
		name := wl.Namespace + "/" + wl.Name
		burst, cold := "-", "-"
		if s := wl.Scaling; s != nil && s.NotEnoughData == "" {
			burst = fmt.Sprintf("%s rps over %s at %s", num(s.BurstRPS), s.BurstWindow, s.BurstAt.Format("2006-01-02 15:04"))
		}
		if a := wl.Autoshutdown; a != nil {
			for _, c := range a.Candidates {
				if c.IdleAfter == a.IdleAfter || c.IdleAfter == a.KeepWarmInstead {
					cold = fmt.Sprintf("%s (%s wait)", num(c.ColdStartsPerDay), a.ColdStart)
				}
			}
		}
		cs := wl.Containers
		if len(cs) == 0 {
			cs = []autopilot.ContainerReport{{Name: "-"}}
		}
		for i, c := range cs {
			lim := func(r autopilot.ResourceRecommendation, f func(float64) string) string {
				if r.NotEnoughData != "" {
					return f(r.CurrentLimit) + " -> ?"
				}
				return f(r.CurrentLimit) + " -> " + f(r.Limit)
			}
			if i > 0 {
				fmt.Fprintf(tw, "\t\t%s\t%s\t%s\t%s\t%s\t%d\t\t\t\t\t\t\t\t\t\n", c.Name, change(c.CPU, cpu), lim(c.CPU, cpu), change(c.Memory, mem), lim(c.Memory, mem), c.OOMKills)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", wl.Severity, name, c.Name,
				change(c.CPU, cpu), lim(c.CPU, cpu), change(c.Memory, mem), lim(c.Memory, mem), c.OOMKills,
				scaling(wl), burst, idleAfter(wl), cold, gpu(wl),
				money(r, wl.Cost.MonthlyNow), money(r, wl.Cost.MonthlyRecommended), money(r, wl.Cost.MonthlySavings), wl.SeverityReason)
		}
	}
	fmt.Fprintf(tw, "\nTOTAL %s\n", totalLine(r))
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
	"savings_cpu", "savings_memory", "savings_gpu", "savings_replicas", "savings_autoshutdown",
	"keep_warm", "burst_rps", "burst_window", "severity_reason",
}

// cents renders money in CSV: a plain number with two decimals.
func cents(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

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
		idle, keepWarm := "", ""
		if a := wl.Autoshutdown; a != nil && a.Recommended {
			idle = a.IdleAfter
		}
		if a := wl.Autoshutdown; a != nil {
			keepWarm = strconv.FormatBool(a.KeepWarm)
		}
		by := wl.Cost.SavingsBy
		var burst float64
		var burstWindow string
		if s := wl.Scaling; s != nil && s.NotEnoughData == "" {
			burst, burstWindow = s.BurstRPS, s.BurstWindow
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
				cents(wl.Cost.MonthlyNow), cents(wl.Cost.MonthlyRecommended), cents(wl.Cost.MonthlySavings),
				f(wl.ReplicaHistory.Mean), wl.ReplicaHistory.Source, c.OOMKillsFrom, gKV,
				cents(by.CPU), cents(by.Memory), cents(by.GPU), cents(by.Replicas), cents(by.Autoshutdown),
				keepWarm, f(burst), burstWindow, wl.SeverityReason,
			})
		}
	}
	cw.Flush()
	return cw.Error()
}

// mdEscape keeps a table cell in its cell.
func mdEscape(s string) string { return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s) }

// Markdown writes a summary table and every workload's evidence and
// changes to apply.
func Markdown(w io.Writer, r *autopilot.Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# ebb autopilot recommendations\n\n")
	fmt.Fprintf(&b, "History %s to %s, step %s, source %s. Schema `%s`.\n\n",
		r.HistoryStart.Format("2006-01-02 15:04 MST"), r.HistoryEnd.Format("2006-01-02 15:04 MST"), r.Step, mdEscape(r.Source), r.Schema)
	fmt.Fprintf(&b, "**Monthly cost (%s):** %s.\n\n", r.Prices.Currency, totalLine(r))
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
				mdEscape(change(c.CPU, cpu)), mdEscape(change(c.Memory, mem)), mdEscape(scaling(wl)), idleAfter(wl), mdEscape(gpu(wl)), money(r, wl.Cost.MonthlySavings))
		}
	}
	b.WriteString("\n## Policy\n\n")
	for _, p := range [][2]string{{"CPU", r.Policy.CPU}, {"Memory", r.Policy.Memory}, {"CPU limit", r.Policy.CPULimit},
		{"Memory limit", r.Policy.MemoryLimit}, {"Autoshutdown", r.Policy.Autoshutdown}} {
		fmt.Fprintf(&b, "- **%s:** %s\n", p[0], mdEscape(p[1]))
	}
	b.WriteString("\n## Evidence\n")
	for _, wl := range r.Workloads {
		fmt.Fprintf(&b, "\n### %s/%s (%s, %s)\n\n", wl.Namespace, wl.Name, wl.Severity, replicasText(wl.Replicas))
		for _, line := range evidence(r, wl) {
			fmt.Fprintf(&b, "- %s\n", mdEscape(line))
		}
		if title, url := howTo(wl.GPU); url != "" {
			fmt.Fprintf(&b, "- GPU how-to: [%s](%s)\n", title, url)
		}
		if p := ResourcesPatch(wl); p != "" {
			fmt.Fprintf(&b, "\nResources (`kubectl patch deployment %s -n %s --patch-file resources.yaml`, or statefulset):\n\n```yaml\n%s```\n", wl.Name, wl.Namespace, p)
		}
		if p := ScaledObjectPatch(wl); p != "" {
			fmt.Fprintf(&b, "\nScaledObject (`kubectl patch scaledobject %s -n %s --type merge --patch-file scaledobject.yaml`):\n\n```yaml\n%s```\n", wl.Name, wl.Namespace, p)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// replicasText renders "1 replica", "3 replicas".
func replicasText(n int) string {
	if n == 1 {
		return "1 replica"
	}
	return strconv.Itoa(n) + " replicas"
}

// evidence returns the sentences behind a workload's recommendations.
func evidence(r *autopilot.Report, wl autopilot.WorkloadReport) []string {
	out := []string{fmt.Sprintf("severity %s: %s", wl.Severity, wl.SeverityReason)}
	res := func(c, kind string, rr autopilot.ResourceRecommendation, f func(float64) string) {
		if rr.NotEnoughData != "" {
			out = append(out, fmt.Sprintf("%s %s: not enough data: %s", c, kind, rr.NotEnoughData))
			return
		}
		out = append(out, fmt.Sprintf("%s %s: %s -> %s (range %s-%s, limit %s): %s; max %s; %s days of evidence",
			c, kind, f(rr.CurrentRequest), f(rr.Request), f(rr.Lower), f(rr.Upper), f(rr.Limit), rr.Basis, f(rr.Max), num(rr.Confidence)))
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
	}
	if a := wl.Autoshutdown; a != nil && everAtZero(a) {
		var cs []string
		for _, c := range a.Candidates {
			cs = append(cs, fmt.Sprintf("%s: zero %s, %s/mo, cold starts %s a day, %s waiting", c.IdleAfter, pctText(c.ZeroShare), money(r, c.MonthlySavings),
				num(c.ColdStartsPerDay), waitText(c.WaitMinutesPerDay)))
		}
		out = append(out, fmt.Sprintf("idleAfter trade-off (a cold start takes %s, %s): %s", a.ColdStart, coldStartFrom(a), strings.Join(cs, "; ")))
	}
	out = append(out, fmt.Sprintf("monthly cost: now %s, recommended %s, savings %s (%s)", money(r, wl.Cost.MonthlyNow), money(r, wl.Cost.MonthlyRecommended),
		money(r, wl.Cost.MonthlySavings), savingsBy(r, wl.Cost.SavingsBy)))
	return out
}

// coldStartFrom says where a's wake time comes from: the history's
// measure, or --cold-start where the history shows no wake.
func coldStartFrom(a *autopilot.AutoshutdownRecommendation) string {
	if a.ColdStartWakes > 0 {
		return a.ColdStartFrom
	}
	flag := "--cold-start default"
	switch {
	case a.ColdStartFrom == "default gpu":
		flag = "--cold-start default for GPU model servers"
	case strings.HasPrefix(a.ColdStartFrom, "cold start of "):
		flag = "--cold-start for " + strings.TrimPrefix(a.ColdStartFrom, "cold start of ")
	}
	return flag + "; no wake measured in the history"
}

// everAtZero reports whether any idleAfter would have put the workload at
// zero: the trade-off is worth showing.
func everAtZero(a *autopilot.AutoshutdownRecommendation) bool {
	for _, c := range a.Candidates {
		if c.ZeroHours > 0 {
			return true
		}
	}
	return false
}

// waitText renders minutes a day: "24m", "0s".
func waitText(m float64) string {
	return shutdown.FormatDuration(time.Duration(math.Round(m*60)) * time.Second)
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
