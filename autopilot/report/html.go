package report

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"

	"github.com/ebbscale/ebb/autopilot"
)

// Chart geometry, in SVG user units.
const (
	chartW, chartH = 640.0, 160.0
	chartPad       = 4.0
)

// svgChart is the data of one workload's inline SVG: the usage polyline
// and the horizontal lines of the current and recommended requests.
type svgChart struct {
	Points       string
	Current      float64 // y of the current request; < 0: none
	Recommended  float64 // y of the recommended request; < 0: none
	Max          string  // the top of the y axis, as a quantity
	Label        string
	W, H         float64
	HasUsage     bool
	CurrentText  string
	RecommendTxt string
}

func chartOf(c autopilot.Chart) svgChart {
	s := svgChart{W: chartW, H: chartH, Current: -1, Recommended: -1, Label: "CPU of container " + c.Container + " (max per pod in each bin)"}
	top := math.Max(c.CPURequest, c.CPUTarget)
	for _, v := range c.CPU {
		if !math.IsNaN(v) {
			top = math.Max(top, v)
		}
	}
	if top <= 0 {
		return s
	}
	top *= 1.1
	y := func(v float64) float64 { return chartH - chartPad - v/top*(chartH-2*chartPad) }
	var b strings.Builder
	n := len(c.CPU)
	for i, v := range c.CPU {
		if math.IsNaN(v) {
			continue
		}
		x := chartPad + float64(i)/math.Max(float64(n-1), 1)*(chartW-2*chartPad)
		fmt.Fprintf(&b, "%.1f,%.1f ", x, y(v))
		s.HasUsage = true
	}
	s.Points = strings.TrimSpace(b.String())
	if c.CPURequest > 0 {
		s.Current, s.CurrentText = y(c.CPURequest), "current "+autopilot.FormatCPU(c.CPURequest)
	}
	if c.CPUTarget > 0 {
		s.Recommended, s.RecommendTxt = y(c.CPUTarget), "recommended "+autopilot.FormatCPU(c.CPUTarget)
	}
	s.Max = autopilot.FormatCPU(top)
	return s
}

var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"change": func(r autopilot.ResourceRecommendation, kind string) string {
		return change(r, map[string]func(float64) string{"cpu": cpu, "mem": mem}[kind])
	},
	"scaling":   scaling,
	"idleAfter": idleAfter,
	"gpu":       gpu,
	"money":     money,
	"evidence":  evidence,
	"chart":     chartOf,
	"time":      func(t interface{ Format(string) string }) string { return t.Format("2006-01-02 15:04 MST") },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ebb autopilot recommendations</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}
.critical{color:#b00020;font-weight:bold}.warning{color:#b26a00;font-weight:bold}.ok{color:#1b7a1b}.unknown{color:#777}
section{border-top:1px solid #ddd;margin-top:1.5em}
svg{background:#fafafa;border:1px solid #ddd}
</style>
</head>
<body>
<h1>ebb autopilot recommendations</h1>
<p>History {{time .HistoryStart}} to {{time .HistoryEnd}}, step {{.Step}}, source {{.Source}}. Schema <code>{{.Schema}}</code>.</p>
<p><strong>Monthly cost ({{.Prices.Currency}}):</strong> now {{money .Totals.MonthlyNow}}, recommended {{money .Totals.MonthlyRecommended}}, <strong>savings {{money .Totals.MonthlySavings}}</strong>.</p>
<table>
<tr><th>severity</th><th>workload</th><th>container</th><th>CPU request</th><th>memory request</th><th>replicas</th><th>idle after</th><th>GPU</th><th>savings/mo</th></tr>
{{- range $w := .Workloads}}{{range .Containers}}
<tr><td class="{{$w.Severity}}">{{$w.Severity}}</td><td><a href="#{{$w.Namespace}}-{{$w.Name}}">{{$w.Namespace}}/{{$w.Name}}</a></td><td>{{.Name}}</td><td>{{change .CPU "cpu"}}</td><td>{{change .Memory "mem"}}</td><td>{{scaling $w}}</td><td>{{idleAfter $w}}</td><td>{{gpu $w}}</td><td>{{money $w.Cost.MonthlySavings}}</td></tr>
{{- else}}
<tr><td class="{{$w.Severity}}">{{$w.Severity}}</td><td><a href="#{{$w.Namespace}}-{{$w.Name}}">{{$w.Namespace}}/{{$w.Name}}</a></td><td>-</td><td>-</td><td>-</td><td>{{scaling $w}}</td><td>{{idleAfter $w}}</td><td>{{gpu $w}}</td><td>{{money $w.Cost.MonthlySavings}}</td></tr>
{{- end}}{{end}}
</table>
<h2>Policy</h2>
<ul>
<li><strong>CPU:</strong> {{.Policy.CPU}}</li>
<li><strong>Memory:</strong> {{.Policy.Memory}}</li>
<li><strong>CPU limit:</strong> {{.Policy.CPULimit}}</li>
<li><strong>Memory limit:</strong> {{.Policy.MemoryLimit}}</li>
<li><strong>Autoshutdown:</strong> {{.Policy.Autoshutdown}}</li>
</ul>
{{- range .Workloads}}
<section id="{{.Namespace}}-{{.Name}}">
<h2>{{.Namespace}}/{{.Name}} <span class="{{.Severity}}">{{.Severity}}</span></h2>
{{- with chart .Chart}}
<figure>
<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{{.W}}" height="{{.H}}" viewBox="0 0 {{.W}} {{.H}}" role="img" aria-label="{{.Label}}">
<title>{{.Label}}</title>
{{- if .HasUsage}}
<polyline fill="none" stroke="#3366cc" stroke-width="1.5" points="{{.Points}}"/>
{{- end}}
{{- if ge .Current 0.0}}
<line x1="0" x2="{{.W}}" y1="{{.Current}}" y2="{{.Current}}" stroke="#b00020" stroke-dasharray="6 4"/>
<text x="6" y="{{.Current}}" dy="-3" font-size="11" fill="#b00020">{{.CurrentText}}</text>
{{- end}}
{{- if ge .Recommended 0.0}}
<line x1="0" x2="{{.W}}" y1="{{.Recommended}}" y2="{{.Recommended}}" stroke="#1b7a1b"/>
<text x="{{.W}}" y="{{.Recommended}}" dy="-3" dx="-6" text-anchor="end" font-size="11" fill="#1b7a1b">{{.RecommendTxt}}</text>
{{- end}}
</svg>
<figcaption>{{.Label}}; the axis tops at {{.Max}} cores.</figcaption>
</figure>
{{- end}}
<ul>
{{- range evidence .}}
<li>{{.}}</li>
{{- end}}
</ul>
</section>
{{- end}}
</body>
</html>
`))

// HTML writes a single self-contained page: no script, no external
// resource, one inline SVG chart per workload.
func HTML(w io.Writer, r *autopilot.Report) error {
	return page.Execute(w, r)
}
