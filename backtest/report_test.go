package backtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ebbscale/ebb/backtest"
	"github.com/ebbscale/ebb/shutdown"
)

func smallResult(t *testing.T) *backtest.Result {
	t.Helper()
	ws, err := backtest.RhythmFleet(start, 30*time.Second, 3*24*time.Hour, 1, backtest.SteadyDemand(0.5))
	if err != nil {
		t.Fatal(err)
	}
	o := backtest.DefaultOptions()
	o.Warmup = 48 * time.Hour
	res, err := backtest.Run(ws, backtest.StandardPolicies(shutdown.DefaultLearnConfig(), 0, o.ColdStart), o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestWriteFormats(t *testing.T) {
	t.Parallel()
	res := smallResult(t)

	var js bytes.Buffer
	if err := backtest.Write(&js, res, "json"); err != nil {
		t.Fatal(err)
	}
	var back backtest.Result
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Totals) != 7 || len(back.Workloads) != len(res.Workloads) || back.Totals[6].Policy != "ebb-auto" ||
		back.Totals[6].ColdStarts != res.Totals[6].ColdStarts {
		t.Errorf("JSON round trip: %d totals, %d workloads, last %+v; want 7, %d, ebb-auto's %+v", len(back.Totals), len(back.Workloads), back.Totals[6], len(res.Workloads), res.Totals[6])
	}

	var tbl bytes.Buffer
	if err := backtest.Write(&tbl, res, "table"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Backtest of 8 workloads over 24 hours from 2026-11-04 00:00 UTC", "keda-5m", "knative", "kubeelasti-15m", "ebb-auto", "batch/report-2h"} {
		if !strings.Contains(tbl.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tbl.String())
		}
	}

	var h bytes.Buffer
	if err := backtest.Write(&h, res, "html"); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(h.String(), `<g class="point"`); n != 7 {
		t.Errorf("HTML chart has %d points, want one per policy, 7", n)
	}
	if strings.Contains(h.String(), "<script") || strings.Contains(h.String(), "http://") && !strings.Contains(h.String(), `xmlns="http://www.w3.org/2000/svg"`) {
		t.Error("HTML is not self-contained")
	}

	if err := backtest.Write(&h, res, "csv"); err == nil || err.Error() != `format "csv": want one of table, json, html` {
		t.Errorf("got %v, want the format error", err)
	}
}

// TestHTMLInChromium renders the report in headless Chromium and checks,
// from the DOM after layout, that the chart shows every policy inside its
// plot and that the page does not overflow sideways.
func TestHTMLInChromium(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium not found; install it with: apt-get install -y chromium")
		}
		t.Skip("chromium not found; install it with: apt-get install -y chromium")
	}
	var h bytes.Buffer
	if err := backtest.Write(&h, smallResult(t), "html"); err != nil {
		t.Fatal(err)
	}
	// The measuring script is the test's, added to a copy of the page.
	probe := `<script>
const svg = document.querySelector('figure svg'), box = svg.getBoundingClientRect();
const plot = svg.querySelector('rect').getBoundingClientRect();
let inside = 0;
for (const c of svg.querySelectorAll('g.point circle')) {
  const r = c.getBoundingClientRect(), x = r.x + r.width/2, y = r.y + r.height/2;
  if (x >= plot.left && x <= plot.right && y >= plot.top && y <= plot.bottom) inside++;
}
document.body.setAttribute('data-measure', [svg.querySelectorAll('g.point').length, inside, Math.round(box.width), document.documentElement.scrollWidth, window.innerWidth].join(','));
</script></body>`
	page := strings.Replace(h.String(), "</body>", probe, 1)
	dir := t.TempDir()
	file := filepath.Join(dir, "backtest.html")
	if err := os.WriteFile(file, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir="+filepath.Join(dir, "profile"),
		"--window-size=1280,900", "--dump-dom", "file://"+file).Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	m := regexp.MustCompile(`data-measure="([0-9,]+)"`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no measurement in the DOM:\n%.2000s", out)
	}
	var v []int
	for _, f := range strings.Split(string(m[1]), ",") {
		n, _ := strconv.Atoi(f)
		v = append(v, n)
	}
	points, inside, width, scroll, inner := v[0], v[1], v[2], v[3], v[4]
	if points != 7 || inside != 7 || width != 640 || scroll > inner {
		t.Errorf("%d points, %d inside the plot, chart %dpx wide, page %dpx in a %dpx window; want 7, 7, 640, no overflow", points, inside, width, scroll, inner)
	}
}
