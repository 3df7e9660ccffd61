package report

import (
	"html/template"
	"io"
	"strings"

	"github.com/ebbscale/ebb/autopilot"
)

// htmlWorkload is one workload's section of the page.
type htmlWorkload struct {
	autopilot.WorkloadReport
	ID       string
	Charts   []htmlChart
	Evidence []string
	Patch    string
	Scaled   string
	HowTo    string
	HowToURL string
	Savings  string
}

type htmlChart struct {
	SVG     template.HTML
	Caption string
}

type htmlPage struct {
	*autopilot.Report
	Total     string
	Workloads []htmlWorkload
}

func pageOf(r *autopilot.Report) htmlPage {
	p := htmlPage{Report: r, Total: totalLine(r)}
	for _, wl := range r.Workloads {
		hw := htmlWorkload{WorkloadReport: wl, ID: wl.Namespace + "-" + wl.Name, Evidence: evidence(r, wl),
			Patch: ResourcesPatch(wl), Scaled: ScaledObjectPatch(wl), Savings: money(r, wl.Cost.MonthlySavings)}
		hw.HowTo, hw.HowToURL = howTo(wl.GPU)
		for _, c := range chartsOf(wl, r.Prices) {
			// The SVG is built from numbers and escaped text only.
			hw.Charts = append(hw.Charts, htmlChart{SVG: template.HTML(c.render()), Caption: c.title})
		}
		p.Workloads = append(p.Workloads, hw)
	}
	return p
}

var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"short": func(r autopilot.ResourceRecommendation, kind string) string {
		return strings.Replace(short(r, map[string]func(float64) string{"cpu": cpu, "mem": mem}[kind]), "→", " → ", 1)
	},
	"scaling":  scalingShort,
	"idle":     idleAfter,
	"gpu":      gpuShort,
	"replicas": replicasText,
	"time":     func(t interface{ Format(string) string }) string { return t.Format("2006-01-02 15:04 MST") },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ebb autopilot recommendations</title>
<style>
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;padding:1em;max-width:1200px;color:#222}
h1{font-size:1.6em;margin:.3em 0}
table{border-collapse:collapse;margin:1em 0;width:100%}
td,th{border:1px solid #ccc;padding:4px 6px;text-align:left;vertical-align:top}
td.name{overflow-wrap:anywhere}
th.num{text-align:right}
th{background:#f3f3f3}
td.num{text-align:right;white-space:nowrap}
.critical{color:#b00020;font-weight:bold}.warning{color:#9a5b00;font-weight:bold}.ok{color:#1b7a1b}.unknown{color:#777}
section{border-top:1px solid #ddd;margin-top:1.5em}
figure{margin:1em 0;max-width:900px}
svg.chart{width:100%;height:auto;display:block;background:#fcfcfc;border:1px solid #ddd}
figcaption{font-size:.9em;color:#555}
pre{background:#f6f6f6;border:1px solid #ddd;padding:.6em;overflow-x:auto;max-width:100%;font-size:12px}
li{overflow-wrap:anywhere}
@media (max-width:560px){
 table.summary thead{display:none}
 table.summary tr{display:block;border:1px solid #ccc;margin-bottom:.6em}
 table.summary td{display:flex;gap:.5em;border:0;border-bottom:1px solid #eee}
 table.summary td::before{content:attr(data-label);font-weight:bold;min-width:7.5em;flex:none}
 table.summary td.num{text-align:left}
}
</style>
</head>
<body>
<h1>ebb autopilot recommendations</h1>
<p>History {{time .HistoryStart}} to {{time .HistoryEnd}}, step {{.Step}}, source {{.Source}}. Schema <code>{{.Schema}}</code>.</p>
<p><strong>Monthly cost ({{.Prices.Currency}}):</strong> {{.Total}}.</p>
<table class="summary">
<thead><tr><th>workload</th><th>CPU request</th><th>memory request</th><th>replicas</th><th>idle after</th><th>GPU</th><th class="num">savings/mo</th></tr></thead>
<tbody>
{{- range $w := .Workloads}}{{range $i, $c := .Containers}}
<tr><td data-label="workload" class="name">{{if eq $i 0}}<a href="#{{$w.ID}}">{{$w.Namespace}}/{{$w.Name}}</a> <span class="{{$w.Severity}}">{{$w.Severity}}</span>{{end}}{{if gt (len $w.Containers) 1}}<br>container {{$c.Name}}{{end}}</td><td data-label="CPU">{{short $c.CPU "cpu"}}</td><td data-label="memory">{{short $c.Memory "mem"}}</td><td data-label="replicas">{{if eq $i 0}}{{scaling $w.WorkloadReport}}{{end}}</td><td data-label="idle after">{{if eq $i 0}}{{idle $w.WorkloadReport}}{{end}}</td><td data-label="GPU">{{if eq $i 0}}{{gpu $w.WorkloadReport}}{{end}}</td><td data-label="savings/mo" class="num">{{if eq $i 0}}{{$w.Savings}}{{end}}</td></tr>
{{- else}}
<tr><td data-label="workload" class="name"><a href="#{{$w.ID}}">{{$w.Namespace}}/{{$w.Name}}</a> <span class="{{$w.Severity}}">{{$w.Severity}}</span></td><td data-label="CPU">-</td><td data-label="memory">-</td><td data-label="replicas">{{scaling $w.WorkloadReport}}</td><td data-label="idle after">{{idle $w.WorkloadReport}}</td><td data-label="GPU">{{gpu $w.WorkloadReport}}</td><td data-label="savings/mo" class="num">{{$w.Savings}}</td></tr>
{{- end}}{{end}}
</tbody>
</table>
<p>CPU and memory: request now → recommended. Replicas: minReplicas-maxReplicas @ target requests/s per replica. Idle after: autoshutdown's <code>idleAfter</code>; keep warm: cold starts would make callers wait too long, keep one replica. GPU: share N/class is time-slicing N replicas per GPU. ?: not enough data (see the workload).</p>
<h2>Policy</h2>
<ul>
<li><strong>CPU:</strong> {{.Policy.CPU}}</li>
<li><strong>Memory:</strong> {{.Policy.Memory}}</li>
<li><strong>CPU limit:</strong> {{.Policy.CPULimit}}</li>
<li><strong>Memory limit:</strong> {{.Policy.MemoryLimit}}</li>
<li><strong>Autoshutdown:</strong> {{.Policy.Autoshutdown}}</li>
</ul>
{{- range .Workloads}}
<section id="{{.ID}}" class="workload">
<h2>{{.Namespace}}/{{.Name}} <span class="{{.Severity}}">{{.Severity}}</span></h2>
<p>{{replicas .Replicas}} today; saves {{.Savings}} a month.</p>
{{- range .Charts}}
<figure>
{{.SVG}}
<figcaption>{{.Caption}}</figcaption>
</figure>
{{- end}}
<ul>
{{- range .Evidence}}
<li>{{.}}</li>
{{- end}}
{{- if .HowToURL}}
<li>GPU how-to: <a href="{{.HowToURL}}">{{.HowTo}}</a></li>
{{- end}}
</ul>
{{- if .Patch}}
<p>Resources: <code>kubectl patch deployment {{.Name}} -n {{.Namespace}} --patch-file resources.yaml</code> (or statefulset)</p>
<pre>{{.Patch}}</pre>
{{- end}}
{{- if .Scaled}}
<p>ScaledObject: <code>kubectl patch scaledobject {{.Name}} -n {{.Namespace}} --type merge --patch-file scaledobject.yaml</code></p>
<pre>{{.Scaled}}</pre>
{{- end}}
</section>
{{- end}}
</body>
</html>
`))

// HTML writes a single self-contained page: no script, no external
// resource; inline SVG charts of what costs money for every workload, and
// the YAML to apply.
func HTML(w io.Writer, r *autopilot.Report) error {
	return page.Execute(w, pageOf(r))
}
