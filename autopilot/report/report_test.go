package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebbscale/ebb/autopilot"
	"github.com/ebbscale/ebb/queries"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fixture is two days of hourly history of three workloads: an
// over-provisioned web service on 2 replicas, then 3, whose app was
// OOM-killed twice in a row; a notebook used 2 hours a day on a T4, served
// by TGI; and a sidecar without enough data.
func fixture(t *testing.T) *autopilot.Report {
	t.Helper()
	h, err := autopilot.NewHistory(autopilot.DefaultConfig(), t0, t0.Add(48*time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	web := queries.WorkloadKey{Namespace: "shop", Name: "web"}
	nb := queries.WorkloadKey{Namespace: "ml", Name: "notebook"}
	for p := range 2 {
		pod := "web-" + string(rune('a'+p))
		h.SetResources(autopilot.ContainerRef{Workload: web, Pod: pod, Container: "app"}, autopilot.Resources{CPURequest: 2, MemoryRequest: 4 * autopilot.GiB, MemoryLimit: 4 * autopilot.GiB})
		h.SetResources(autopilot.ContainerRef{Workload: web, Pod: pod, Container: "proxy"}, autopilot.Resources{CPURequest: 0.1, MemoryRequest: 128 * autopilot.MiB})
	}
	h.SetResources(autopilot.ContainerRef{Workload: nb, Pod: "notebook-0", Container: "jupyter"}, autopilot.Resources{CPURequest: 1, MemoryRequest: 2 * autopilot.GiB, GPUs: 1})
	for i := 1; i <= 48; i++ {
		at := t0.Add(time.Duration(i) * time.Hour)
		load := float64(i%24) / 24
		for p := range 2 {
			pod := "web-" + string(rune('a'+p))
			h.CPU(autopilot.ContainerRef{Workload: web, Pod: pod, Container: "app"}, at, 0.2+0.3*load)
			h.Memory(autopilot.ContainerRef{Workload: web, Pod: pod, Container: "app"}, at, (700+100*load)*autopilot.MiB)
		}
		replicas := 2.0
		if i > 24 {
			replicas = 3
		}
		h.Replicas(web, at, replicas)
		webApp := autopilot.ContainerRef{Workload: web, Pod: "web-a", Container: "app"}
		h.OOMKilled(webApp, at, i >= 30)
		if i >= 30 {
			h.OOMRestarts(webApp, at, map[int]float64{30: 1, 31: 1}[i])
		}
		h.RequestRate(web, at, 20+40*load)
		rps, util := 0.0, 0.0
		if i%24 == 10 || i%24 == 11 {
			rps, util = 0.5, 30
		}
		h.RequestRate(nb, at, rps)
		ref := autopilot.ContainerRef{Workload: nb, Pod: "notebook-0", Container: "jupyter"}
		h.CPU(ref, at, 0.05+rps)
		h.Memory(ref, at, 900*autopilot.MiB)
		g := autopilot.GPURef{Workload: nb, Pod: "notebook-0", GPU: "0", Model: "Tesla T4"}
		h.GPUUtil(g, at, util)
		h.Framebuffer(g, at, 3000, 15360)
		h.KVCache(nb, autopilot.TGI, at, util/100)
		h.RequestsWaiting(nb, autopilot.TGI, at, rps*2)
	}
	r, err := autopilot.Recommend(h, autopilot.DefaultPrices(), "fixture")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s (run go test -update after checking the change):\n%s", name, path, firstDiff(string(want), string(got)))
	}
}

func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return "line " + itoa(i+1) + ":\n want " + w + "\n  got " + g
		}
	}
	return ""
}

func itoa(i int) string { return fmtInt(i) }

func fmtInt(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestGolden(t *testing.T) {
	r := fixture(t)
	for _, format := range Formats {
		t.Run(format, func(t *testing.T) {
			var b bytes.Buffer
			if err := Render(&b, r, format); err != nil {
				t.Fatal(err)
			}
			ext := map[string]string{"table": "txt", "json": "json", "csv": "csv", "markdown": "md", "html": "html"}[format]
			golden(t, "report."+ext, b.Bytes())
		})
	}
}

func TestRenderUnknownFormat(t *testing.T) {
	err := Render(io.Discard, fixture(t), "yaml")
	if want := `format "yaml": want table, json, csv, markdown, html`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

// The JSON round-trips through the schema types and names its version.
func TestJSONSchema(t *testing.T) {
	r := fixture(t)
	var b bytes.Buffer
	if err := JSON(&b, r); err != nil {
		t.Fatal(err)
	}
	var back autopilot.Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Schema != autopilot.SchemaVersion || len(back.Workloads) != 2 || back.Totals != r.Totals {
		t.Errorf("round trip: schema %q, %d workloads, totals %+v", back.Schema, len(back.Workloads), back.Totals)
	}
}

// The HTML parses, holds the charts ChartKinds names for every workload,
// and loads nothing: its only links outside the page are <a> to the docs.
func TestHTMLSelfContained(t *testing.T) {
	r := fixture(t)
	var b bytes.Buffer
	if err := HTML(&b, r); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(&b)
	d.Strict = false
	d.AutoClose = xml.HTMLAutoClose
	d.Entity = xml.HTMLEntity
	charts, sections, want := 0, 0, 0
	for _, w := range r.Workloads {
		want += len(ChartKinds(w, r.Prices))
	}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("html does not parse: %v", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch se.Name.Local {
		case "script", "link", "img", "iframe":
			t.Errorf("found <%s>: the page must load nothing", se.Name.Local)
		case "svg":
			charts++
		case "section":
			sections++
		}
		for _, a := range se.Attr {
			if a.Name.Local == "src" || a.Name.Local == "href" && !strings.HasPrefix(a.Value, "#") && !(se.Name.Local == "a" && strings.HasPrefix(a.Value, DocsURL)) {
				t.Errorf("<%s %s=%q>: the page must load nothing", se.Name.Local, a.Name.Local, a.Value)
			}
		}
	}
	if charts != want || sections != len(r.Workloads) {
		t.Errorf("%d charts and %d sections, want %d charts and one section per workload (%d)", charts, sections, want, len(r.Workloads))
	}
}

// The default table fits TableWidth columns, cutting long workload names
// with "…", and --wide keeps every name whole.
func TestTableFitsWidth(t *testing.T) {
	r := fixture(t)
	long := r.Workloads[0]
	long.Namespace, long.Name = "machine-learning-inference", "very-long-workload-name-of-a-model-server-with-a-suffix"
	r.Workloads = append(r.Workloads, long)
	var b bytes.Buffer
	if err := Table(&b, r); err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(b.String(), "\n") {
		if n := len([]rune(l)); n > TableWidth {
			t.Errorf("line %d is %d columns, want at most %d: %q", i+1, n, TableWidth, l)
		}
	}
	if !strings.Contains(b.String(), "machine-learning-inference/very-long-workload-n…") {
		t.Errorf("the long name is not cut with …:\n%s", b.String())
	}
	b.Reset()
	if err := RenderWith(&b, r, "table", Options{Wide: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), long.Namespace+"/"+long.Name) {
		t.Errorf("--wide cuts the long name:\n%s", b.String())
	}
}

func TestFormatMoney(t *testing.T) {
	for _, c := range []struct {
		v        float64
		currency string
		want     string
	}{
		{2280.23, "USD", "$2,280.23"},
		{1234567.891, "EUR", "€1,234,567.89"},
		{-16.76, "USD", "-$16.76"},
		{-0.001, "USD", "$0.00"},
		{999.995, "GBP", "£1,000.00"},
		{1000, "CHF", "CHF 1,000.00"},
	} {
		if got := autopilot.FormatMoney(c.v, c.currency); got != c.want {
			t.Errorf("FormatMoney(%v, %s) = %q, want %q", c.v, c.currency, got, c.want)
		}
	}
	for v, want := range map[float64]string{0: "0", 999.5: "1,000", 81560: "81,560", -1234567: "-1,234,567", 15360: "15,360"} {
		if got := autopilot.FormatThousands(v); got != want {
			t.Errorf("FormatThousands(%v) = %q, want %q", v, got, want)
		}
	}
}

// The trade-off says where its wake time comes from: the history's
// measure, or --cold-start where the history showed no wake.
func TestColdStartFromText(t *testing.T) {
	for _, c := range []struct {
		a    autopilot.AutoshutdownRecommendation
		want string
	}{
		{autopilot.AutoshutdownRecommendation{ColdStartFrom: "measured by ebb's activator: mean of 12 wakes", ColdStartWakes: 12},
			"measured by ebb's activator: mean of 12 wakes"},
		{autopilot.AutoshutdownRecommendation{ColdStartFrom: "measured in kube-state-metrics' replicas: median of 3 wakes, to the 30s step", ColdStartWakes: 3},
			"measured in kube-state-metrics' replicas: median of 3 wakes, to the 30s step"},
		{autopilot.AutoshutdownRecommendation{ColdStartFrom: "default gpu"}, "--cold-start default for GPU model servers; no wake measured in the history"},
		{autopilot.AutoshutdownRecommendation{ColdStartFrom: "default"}, "--cold-start default; no wake measured in the history"},
		{autopilot.AutoshutdownRecommendation{ColdStartFrom: "cold start of A100-40GB"}, "--cold-start for A100-40GB; no wake measured in the history"},
	} {
		if got := coldStartFrom(&c.a); got != c.want {
			t.Errorf("%q: got %q, want %q", c.a.ColdStartFrom, got, c.want)
		}
	}
}
