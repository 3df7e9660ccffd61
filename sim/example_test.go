package sim_test

import (
	"context"
	"fmt"
	"time"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/sim"
)

func Example() {
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	code, err := sim.Replay(sim.AzureCodeTrace(), sim.ReplayOptions{Start: start, Loop: true})
	if err != nil {
		panic(err)
	}
	c, err := sim.NewCluster(
		sim.Workload{Key: queries.WorkloadKey{Namespace: "shop", Name: "cart"}, Traffic: sim.Steady(25), Replicas: 3},
		sim.Workload{Key: queries.WorkloadKey{Namespace: "ml", Name: "llm-code"}, Traffic: code, Replicas: 3, GPUsPerReplica: 1},
	)
	if err != nil {
		panic(err)
	}
	at := start.Add(4 * time.Minute)
	for _, signal := range []queries.Signal{queries.SignalRequests, queries.SignalGPU} {
		samples, err := c.Instant(context.Background(), queries.Shape{Signal: signal, Window: time.Minute}, at)
		if err != nil {
			panic(err)
		}
		for _, s := range samples {
			fmt.Printf("%s %s %.1f\n", signal, s.Workload, s.Value)
		}
	}
	// Output:
	// requests ml/llm-code 8.8
	// requests shop/cart 25.0
	// gpu ml/llm-code 300.0
}

func ExampleCluster_SetFault() {
	c, _ := sim.NewCluster(sim.Workload{Key: queries.WorkloadKey{Namespace: "a", Name: "b"}, Traffic: sim.Steady(1)})
	c.SetFault(context.DeadlineExceeded)
	_, err := c.Instant(context.Background(), queries.Shape{Signal: queries.SignalRequests, Window: time.Minute}, time.Now())
	fmt.Println(err)
	// Output: query requests[1m]: timeout: context deadline exceeded
}
