package bench

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries/storetest"
)

func TestCompareValues(t *testing.T) {
	want := []float64{0, 1.5, 1e6}
	for _, tt := range []struct {
		name string
		got  []float64
		err  string
	}{
		{"equal", []float64{0, 1.5, 1e6}, ""},
		{"within tolerance", []float64{1e-12, 1.5 + 1e-12, 1e6 + 1e-4}, ""},
		{"differs", []float64{0, 1.5000001, 1e6}, "x: 1 of 3 workloads differ: team-01/cart-1 = 1.5000001, want 1.5"},
		{"NaN", []float64{math.NaN(), 1.5, 1e6}, "x: 1 of 3 workloads differ: team-00/checkout-api-0 = NaN, want 0"},
		{"missing", []float64{0, 1.5}, "x: 2 values, want 3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := compareValues("x", tt.got, want)
			if got := fmt.Sprint(err); (err == nil) != (tt.err == "") || err != nil && got != tt.err {
				t.Errorf("compareValues = %v, want %q", err, tt.err)
			}
		})
	}
}

// TestSideBySideValues checks, at 50 workloads, that KEDA's per-object
// queries and ebb's batched collector give every workload the same, expected
// value against a real Prometheus, and that each round costs what it should
// in queries. It measures nothing.
func TestSideBySideValues(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a real Prometheus; skipped with -short")
	}
	h := DefaultHistory(50)
	prom := storetest.StartPrometheus(t, storetest.PromOptions{History: h.Series()})
	res, err := RunSideBySide(context.Background(), SideBySideConfig{URL: prom.URL, History: h, PerObjectRounds: 2, BatchedRounds: 2, Idle: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Checked != 50 || res.PerObject.Queries != 50 || res.Batched.Queries != 1 || res.FirstTick.Queries != 2 {
		t.Errorf("checked %d workloads; queries per round: per-object %g, batched %g, first tick %g; want 50, 50, 1, 2 (instant and recovery)",
			res.Checked, res.PerObject.Queries, res.Batched.Queries, res.FirstTick.Queries)
	}
}

// TestSideBySide compares KEDA's per-object querying with ebb's batched
// collector against a real Prometheus holding 100 and 1,000 workloads
// (and 5,000 with EBB_BENCH_LARGE=1), one fresh Prometheus per size.
func TestSideBySide(t *testing.T) {
	requireBench(t)
	sizes := []struct{ n, perObjectRounds, batchedRounds int }{{100, 10, 50}, {1_000, 5, 50}}
	if benchLarge() {
		sizes = append(sizes, struct{ n, perObjectRounds, batchedRounds int }{5_000, 3, 20})
	}
	for _, sz := range sizes {
		t.Run(fmt.Sprint(sz.n), func(t *testing.T) {
			h := DefaultHistory(sz.n)
			began := time.Now()
			prom := storetest.StartPrometheus(t, storetest.PromOptions{History: h.Series()})
			t.Logf("Prometheus with %d workloads' history ready in %s", sz.n, time.Since(began).Round(time.Millisecond))
			for rep := range repeats() {
				res, err := RunSideBySide(context.Background(), SideBySideConfig{URL: prom.URL, History: h,
					PerObjectRounds: sz.perObjectRounds, BatchedRounds: sz.batchedRounds, Uncompressed: true})
				if err != nil {
					t.Fatal(err)
				}
				q, cpu, bytes, wall := res.Ratio()
				record(t, "sidebyside.txt", "sidebyside %d workloads (run %d): values identical for %d workloads; Prometheus idle %.4f CPU-s/s", sz.n, rep+1, res.Checked, res.IdleCPU)
				for _, p := range []struct {
					name string
					p    Phase
				}{{"per-object (KEDA)", res.PerObject}, {"batched (ebb)", res.Batched}, {"ebb first tick", res.FirstTick}, {"per-object no gzip", res.PerObjectUncompressed}} {
					record(t, "sidebyside.txt", "    %-18s %d rounds: %6.0f queries/round, wall %8.2f ms (max %8.2f), sent %9.0f B, received %10.0f B (body %10.0f B), Prometheus CPU %.4f s/round (net of idle %.4f s)",
						p.name, p.p.Rounds, p.p.Queries, ms(p.p.Wall), ms(p.p.WallMax), p.p.Sent, p.p.Received, p.p.Body, p.p.StoreCPU, p.p.StoreCPUNet)
				}
				record(t, "sidebyside.txt", "    ratios per-object/batched: queries %.0f×, Prometheus CPU %.1f× (%.1f× if KEDA's queries were not compressed), bytes %.1f×, wall %.1f×",
					q, cpu, res.PerObjectUncompressed.StoreCPUNet/res.Batched.StoreCPUNet, bytes, wall)
				if sz.n >= 1_000 && q < 100 {
					t.Errorf("queries ratio %.0f at %d workloads, want ≥ 100", q, sz.n)
				}
			}
		})
	}
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }
