package autopilot_test

import (
	"fmt"
	"time"

	"github.com/ebbscale/ebb/autopilot"
	"github.com/ebbscale/ebb/queries"
)

// A workload's history goes into a History, sample by sample; Recommend
// turns it into a report. ebb recommend fills the History from a store
// with a PrometheusReader (or from the simulator with a SourceReader).
func Example() {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	step := 5 * time.Minute
	h, err := autopilot.NewHistory(autopilot.DefaultConfig(), start, start.Add(48*time.Hour), step)
	if err != nil {
		fmt.Println(err)
		return
	}
	web := autopilot.ContainerRef{Workload: queries.WorkloadKey{Namespace: "shop", Name: "web"}, Pod: "web-0", Container: "app"}
	h.SetResources(web, autopilot.Resources{CPURequest: 1, MemoryRequest: autopilot.GiB, MemoryLimit: autopilot.GiB})
	for at := start.Add(step); !at.After(h.End()); at = at.Add(step) {
		h.CPU(web, at, 0.2)                  // cores
		h.Memory(web, at, 300*autopilot.MiB) // bytes
		h.RequestRate(web.Workload, at, 10)  // requests per second
	}

	r, err := autopilot.Recommend(h, autopilot.DefaultPrices(), "example")
	if err != nil {
		fmt.Println(err)
		return
	}
	w := r.Workloads[0]
	c := w.Containers[0]
	fmt.Printf("%s/%s %s: cpu %s -> %s, memory %s -> %s\n", w.Namespace, w.Name, w.Severity,
		autopilot.FormatCPU(c.CPU.CurrentRequest), autopilot.FormatCPU(c.CPU.Request),
		autopilot.FormatMemory(c.Memory.CurrentRequest), autopilot.FormatMemory(c.Memory.Request))
	fmt.Println(c.CPU.Basis)
	fmt.Println(c.Memory.Basis)
	fmt.Printf("%d-%d replicas at %g req/s each\n", w.Scaling.MinReplicas, w.Scaling.MaxReplicas, w.Scaling.TargetRPS)
	fmt.Printf("%.2f -> %.2f %s a month\n", w.Cost.MonthlyNow, w.Cost.MonthlyRecommended, r.Prices.Currency)
	// Output:
	// shop/web ok: cpu 1 -> 230m, memory 1Gi -> 345Mi
	// p90 of 576 samples = 0.2 cores, +15%
	// p95 of 3 daily peaks = 300Mi, +15%
	// 1-2 replicas at 10 req/s each
	// 26.13 -> 6.34 USD a month
}
