package report

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ebbscale/ebb/autopilot"
	"github.com/ebbscale/ebb/sim"
)

// chromium returns the browser the HTML report is checked in: Debian's
// chromium, which make test-deps installs. Under CI=true a missing one
// fails the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed: run make test-deps")
	}
	t.Skip("chromium is not installed: run make test-deps")
	return ""
}

// runChromium runs headless chromium with args and a profile of its own.
func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
		"--user-data-dir=" + filepath.Join(t.TempDir(), "profile")}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// measureScript records what the test checks, once the page is laid out,
// in a <pre id="measure"> that --dump-dom prints.
const measureScript = `<script>
(function () {
  var out = {innerWidth: window.innerWidth, scrollWidth: document.documentElement.scrollWidth, workloads: {}};
  document.querySelectorAll('section.workload').forEach(function (s) {
    var charts = [];
    s.querySelectorAll('svg.chart').forEach(function (c) {
      var r = c.getBoundingClientRect();
      var labels = [];
      c.querySelectorAll('.axis-label').forEach(function (l) { if (l.textContent.trim()) labels.push(l.textContent); });
      charts.push({kind: c.dataset.kind, axisLabels: labels, ticks: c.querySelectorAll('.tick').length,
        legend: c.querySelectorAll('.legend').length, width: r.width, right: r.right});
    });
    out.workloads[s.id] = charts;
  });
  var pre = document.createElement('pre');
  pre.id = 'measure';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>`

type measured struct {
	InnerWidth  float64 `json:"innerWidth"`
	ScrollWidth float64 `json:"scrollWidth"`
	Workloads   map[string][]struct {
		Kind       string   `json:"kind"`
		AxisLabels []string `json:"axisLabels"`
		Ticks      int      `json:"ticks"`
		Legend     int      `json:"legend"`
		Width      float64  `json:"width"`
		Right      float64  `json:"right"`
	} `json:"workloads"`
}

var measureRE = regexp.MustCompile(`(?s)<pre id="measure">(.*?)</pre>`)

// simReport is two weeks of the demo cluster as `ebb recommend --source
// sim` reads them: LLM servers with GPUs and vLLM, idle notebooks, web
// services.
func simReport(t *testing.T) *autopilot.Report {
	t.Helper()
	end := time.Date(2026, 11, 16, 8, 0, 0, 0, time.UTC)
	start := end.Add(-14 * 24 * time.Hour)
	h, err := autopilot.NewHistory(autopilot.DefaultConfig(), start, end, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	cluster := sim.DemoCluster(start, 1)
	r := &autopilot.SourceReader{Source: cluster}
	for _, w := range cluster.Workloads() {
		sw := autopilot.SyntheticWorkload{Key: w.Key, Replicas: w.Replicas, GPUsPerReplica: w.GPUsPerReplica,
			Current: autopilot.Resources{CPURequest: 1, MemoryRequest: autopilot.GiB, MemoryLimit: autopilot.GiB},
			CPUBase: 0.05, CPUPerRPS: 0.01, MemoryBase: 200 * autopilot.MiB, MemoryPerRPS: 2 * autopilot.MiB}
		if w.GPUsPerReplica > 0 {
			sw.GPUModel, sw.FramebufferMiB = "NVIDIA A100-SXM4-40GB", 20000
			sw.Server = autopilot.VLLM
		}
		r.Workloads = append(r.Workloads, sw)
	}
	if err := r.Read(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	rep, err := autopilot.Recommend(h, autopilot.DefaultPrices(), "sim")
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// The HTML report as a person sees it in a browser, 700 and 1,400 px
// wide: the page does not scroll sideways, every workload has the charts
// ChartKinds names for it, each with its axis labels, ticks and legend,
// and the screenshot is not blank.
func TestReportInBrowser(t *testing.T) {
	bin := chromium(t)
	reports := map[string]*autopilot.Report{"fixture": fixture(t), "sim": simReport(t)}
	for name, r := range reports {
		var page bytes.Buffer
		if err := HTML(&page, r); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		plain := filepath.Join(dir, "report.html")
		if err := os.WriteFile(plain, page.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		withScript := filepath.Join(dir, "measure.html")
		if err := os.WriteFile(withScript, bytes.Replace(page.Bytes(), []byte("</body>"), []byte(measureScript+"</body>"), 1), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, width := range []int{700, 1400} {
			t.Run(fmt.Sprintf("%s/%dpx", name, width), func(t *testing.T) {
				size := fmt.Sprintf("--window-size=%d,1400", width)
				dom := runChromium(t, bin, size, "--dump-dom", "file://"+withScript)
				m := measureRE.FindSubmatch(dom)
				if m == nil {
					t.Fatalf("no measurements in the DOM (did the script run?):\n%.2000s", dom)
				}
				var got measured
				if err := json.Unmarshal([]byte(html.UnescapeString(string(m[1]))), &got); err != nil {
					t.Fatal(err)
				}
				if got.InnerWidth != float64(width) {
					t.Errorf("innerWidth %v, want %d", got.InnerWidth, width)
				}
				if got.ScrollWidth > got.InnerWidth {
					t.Errorf("the page scrolls sideways: scrollWidth %v > innerWidth %v", got.ScrollWidth, got.InnerWidth)
				}
				for _, wl := range r.Workloads {
					id := wl.Namespace + "-" + wl.Name
					charts, ok := got.Workloads[id]
					if !ok {
						t.Errorf("%s: no section", id)
						continue
					}
					var kinds []string
					for _, c := range charts {
						kinds = append(kinds, c.Kind)
						if len(c.AxisLabels) < 2 || c.AxisLabels[0] != "time (UTC)" || c.Ticks < 4 || c.Legend < 1 {
							t.Errorf("%s %s chart: axis labels %q, %d ticks, %d legend entries; want time (UTC) and a value axis, ticks and a legend",
								id, c.Kind, c.AxisLabels, c.Ticks, c.Legend)
						}
						if c.Width < 300 || c.Right > got.InnerWidth {
							t.Errorf("%s %s chart: %v px wide, right edge at %v of %v", id, c.Kind, c.Width, c.Right, got.InnerWidth)
						}
					}
					if want := ChartKinds(wl, r.Prices); !slices.Equal(kinds, want) || len(want) == 0 {
						t.Errorf("%s: charts %q, want %q", id, kinds, want)
					}
				}

				shot := filepath.Join(t.TempDir(), "shot.png")
				runChromium(t, bin, size, "--screenshot="+shot, "file://"+plain)
				f, err := os.Open(shot)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				img, err := png.Decode(f)
				if err != nil {
					t.Fatal(err)
				}
				b := img.Bounds()
				colours := map[[3]uint32]bool{}
				ink := 0
				for y := b.Min.Y; y < b.Max.Y; y += 2 {
					for x := b.Min.X; x < b.Max.X; x += 2 {
						r, g, bl, _ := img.At(x, y).RGBA()
						colours[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
						if r>>8 < 200 || g>>8 < 200 || bl>>8 < 200 {
							ink++
						}
					}
				}
				share := float64(ink) / float64(b.Dx()/2*b.Dy()/2)
				if b.Dx() != width || len(colours) < 16 || share < 0.02 {
					t.Errorf("screenshot %dx%d: %d colours, %.1f%% ink; want %d px wide, at least 16 colours and 2%%",
						b.Dx(), b.Dy(), len(colours), share*100, width)
				}
			})
		}
	}
}
