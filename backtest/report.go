package backtest

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Formats are the report formats Write knows.
var Formats = []string{"table", "json", "html"}

// Write writes r in format: "table", "json" or "html".
func Write(w io.Writer, r *Result, format string) error {
	switch format {
	case "table":
		return writeTable(w, r)
	case "json":
		e := json.NewEncoder(w)
		e.SetIndent("", "  ")
		return e.Encode(r)
	case "html":
		return writeHTML(w, r)
	}
	return fmt.Errorf("format %q: want one of %s", format, strings.Join(Formats, ", "))
}

func writeTable(w io.Writer, r *Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := "policy\treplica-h\tGPU-h\t$\tcold starts\tcold requests\tmean wait s\tpre-wakes\thidden\twasted\t\n"
	row := func(o Outcome) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d\t\n", o.Policy, num(o.ReplicaHours), num(o.GPUHours), num(o.Dollars),
			o.ColdStarts, num(o.ColdRequests), num(o.MeanWaitSeconds), o.PreWakes, o.HiddenColdStarts, o.WastedPreWakes)
	}
	fmt.Fprintf(w, "Backtest of %d workloads over %s hours from %s\n\n", len(r.Workloads), num(r.Hours), r.Start.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprint(tw, "TOTAL\n"+header)
	for _, o := range r.Totals {
		row(o)
	}
	for _, wr := range r.Workloads {
		fmt.Fprintf(tw, "\t\n%s (%s, %d GPUs a replica, %s requests) %s\n%s", wr.Workload, wr.Class, wr.GPUs, num(wr.Requests), wr.About, header)
		for _, o := range wr.Outcomes {
			row(o)
		}
		for _, o := range wr.Outcomes {
			if o.Note != "" {
				fmt.Fprintf(tw, "  %s: %s\n", o.Policy, o.Note)
			}
		}
	}
	return tw.Flush()
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// The scatter's size and margins, in pixels.
const (
	chartW, chartH = 640, 400
	marginL        = 70
	marginB        = 50
	marginT        = 20
	marginR        = 150
)

// Scatter draws each policy's total as a point: GPU-hours across (or
// replica-hours when no workload has GPUs), cold starts up. It is a
// self-contained SVG element.
func Scatter(r *Result) string {
	useGPU := false
	for _, o := range r.Totals {
		if o.GPUHours > 0 {
			useGPU = true
		}
	}
	xOf := func(o Outcome) float64 {
		if useGPU {
			return o.GPUHours
		}
		return o.ReplicaHours
	}
	xlabel := "GPU-hours"
	if !useGPU {
		xlabel = "replica-hours"
	}
	xmin, xmax, ymax := math.Inf(1), 0.0, 0.0
	for _, o := range r.Totals {
		xmin, xmax, ymax = min(xmin, xOf(o)), max(xmax, xOf(o)), max(ymax, float64(o.ColdStarts))
	}
	xmin = max(0, xmin-(xmax-xmin)*0.1)
	if xmax <= xmin {
		xmax = xmin + 1
	}
	xmax += (xmax - xmin) * 0.05
	ymax = max(ymax*1.1, 1)
	pw, ph := float64(chartW-marginL-marginR), float64(chartH-marginT-marginB)
	px := func(x float64) float64 { return marginL + (x-xmin)/(xmax-xmin)*pw }
	py := func(y float64) float64 { return marginT + ph - y/ymax*ph }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s against cold starts, one point per policy">`,
		chartW, chartH, chartW, chartH, xlabel)
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%g" height="%g" fill="none" stroke="#999"/>`, marginL, marginT, pw, ph)
	for i := 0; i <= 4; i++ {
		x := xmin + (xmax-xmin)*float64(i)/4
		y := ymax * float64(i) / 4
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%s</text>`, px(x), chartH-marginB+16, num(math.Round(x)))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="11" text-anchor="end">%s</text>`, marginL-6, py(y)+4, num(math.Round(y)))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="12" text-anchor="middle">%s (fewer: left)</text>`, marginL+pw/2, chartH-10, xlabel)
	fmt.Fprintf(&b, `<text x="14" y="%.1f" font-size="12" text-anchor="middle" transform="rotate(-90 14 %.1f)">cold starts (fewer: down)</text>`, marginT+ph/2, marginT+ph/2)
	type label struct{ x, y float64 }
	var placed []label
	for _, o := range r.Totals {
		color := "#1f77b4"
		if strings.HasPrefix(o.Policy, "ebb-auto") {
			color = "#d62728"
		}
		x, y := px(xOf(o)), py(float64(o.ColdStarts))
		// Move a label down past the labels it would overprint.
		lx, ly := x+8, y+4
		for moved := true; moved; {
			moved = false
			for _, l := range placed {
				if math.Abs(l.y-ly) < 12 && math.Abs(l.x-lx) < 90 {
					ly, moved = l.y+12, true
				}
			}
		}
		placed = append(placed, label{lx, ly})
		fmt.Fprintf(&b, `<g class="point" data-policy="%s"><circle cx="%.1f" cy="%.1f" r="5" fill="%s"/><text x="%.1f" y="%.1f" font-size="11">%s</text></g>`,
			html.EscapeString(o.Policy), x, y, color, lx, ly, html.EscapeString(o.Policy))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func writeHTML(w io.Writer, r *Result) error {
	var b strings.Builder
	b.WriteString(`<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>ebb backtest</title><style>
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1100px}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}
td:first-child,th:first-child{text-align:left}.note{color:#555;font-size:90%}.best{font-weight:bold}
</style></head><body>`)
	fmt.Fprintf(&b, "<h1>Scale-to-zero policies, side by side</h1><p>%d workloads, %s hours of history from %s.</p>",
		len(r.Workloads), num(r.Hours), html.EscapeString(r.Start.UTC().Format("2006-01-02 15:04 MST")))
	b.WriteString(`<figure>` + Scatter(r) + `<figcaption>Each policy's total: GPU-hours against cold starts. Down and left is better.</figcaption></figure>`)
	b.WriteString("<h2>Total</h2>")
	htmlTable(&b, r.Totals)
	for _, wr := range r.Workloads {
		fmt.Fprintf(&b, "<h2>%s</h2><p class=\"note\">%s; %s, %d GPUs a replica, %s requests</p>", html.EscapeString(wr.Workload),
			html.EscapeString(wr.About), wr.Class, wr.GPUs, num(wr.Requests))
		htmlTable(&b, wr.Outcomes)
		for _, o := range wr.Outcomes {
			if o.Note != "" {
				fmt.Fprintf(&b, "<p class=\"note\">%s: %s</p>", html.EscapeString(o.Policy), html.EscapeString(o.Note))
			}
		}
	}
	b.WriteString("</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func htmlTable(b *strings.Builder, os []Outcome) {
	b.WriteString("<table><tr><th>policy</th><th>replica-h</th><th>GPU-h</th><th>$</th><th>cold starts</th><th>cold requests</th><th>mean wait s</th><th>pre-wakes</th><th>hidden</th><th>wasted</th></tr>")
	for _, o := range os {
		fmt.Fprintf(b, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%d</td><td>%s</td><td>%s</td><td>%d</td><td>%d</td><td>%d</td></tr>",
			html.EscapeString(o.Policy), num(o.ReplicaHours), num(o.GPUHours), num(o.Dollars), o.ColdStarts, num(o.ColdRequests),
			num(o.MeanWaitSeconds), o.PreWakes, o.HiddenColdStarts, o.WastedPreWakes)
	}
	b.WriteString("</table>")
}
