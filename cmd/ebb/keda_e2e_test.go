package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries/storetest"
)

// The ScaledObjects' cooldownPeriod, and the idle period of liveRef.
const (
	kedaCooldown = 5 * time.Second
	liveIdle     = 3 * time.Second
)

// wakes is how many times TestKEDAScalesThroughEbb takes the workloads to
// zero and wakes them: EBB_KEDA_WAKES, 3 by default.
func wakes(t *testing.T) int {
	s := os.Getenv("EBB_KEDA_WAKES")
	if s == "" {
		return 3
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("EBB_KEDA_WAKES=%q: want a count >= 1", s)
	}
	return n
}

// TestKEDAScalesThroughEbb runs the real KEDA operator against `ebb serve`
// on a real Prometheus that scrapes a test exporter. Deployment w-ebb has a
// ScaledObject with an `external` and an `external-push` trigger at ebb;
// beside it, w-prom has KEDA's own `prometheus` trigger on the same store
// and the same rate. Both follow the exporter's traffic to zero and back;
// the wake times are logged for bench/RESULTS.md. Then the store goes down
// while w-ebb is up: its replicas stay as they are.
func TestKEDAScalesThroughEbb(t *testing.T) {
	k := startKEDA(t, "shop")
	e, x := startLive(t)
	x.setTraffic(10)
	e.waitValue(t, liveRef, "> 0", func(v float64) bool { return v > 0 }, 30*time.Second)

	k.deployment(t, "w-ebb", nil)
	k.scaledObject(t, "w-ebb", int(kedaCooldown/time.Second), ebbTriggers(e.grpc)...)
	k.deployment(t, "w-prom", nil)
	k.scaledObject(t, "w-prom", int(kedaCooldown/time.Second), map[string]any{
		"type": "prometheus",
		"metadata": map[string]any{
			"serverAddress":       e.prom.URL,
			"query":               `sum(rate(istio_requests_total{destination_workload_namespace="shop",destination_workload="w"}[10s]))`,
			"threshold":           "5",
			"activationThreshold": "0",
		},
	})
	if n := k.replicas(t, "w-ebb"); n != 1 {
		t.Fatalf("w-ebb: %d replicas while it has traffic, want 1", n)
	}

	var lines []string
	for i := range wakes(t) {
		// Traffic stops. The store shows a rate of 0 a window later; ebb
		// keeps answering active for idleAfter after that, and KEDA waits
		// its cooldownPeriod after the last active answer.
		x.setTraffic(0)
		e.waitValue(t, liveRef, "0 after the traffic stopped", func(v float64) bool { return v == 0 }, 30*time.Second)
		seenZero := time.Now()
		zeroAt := k.waitReplicas(t, "w-ebb", "0 once idle", zero, 90*time.Second)
		if d := zeroAt.Sub(seenZero); d < liveIdle {
			t.Errorf("w-ebb at zero %v after ebb saw no traffic, before idleAfter (%v)", d, liveIdle)
		}
		k.waitReplicas(t, "w-prom", "0 once inactive", zero, 60*time.Second)
		t.Logf("to zero %d: w-ebb %.1fs after ebb saw a rate of 0 (idleAfter %v + cooldownPeriod %v + tick %v = %v)",
			i+1, zeroAt.Sub(seenZero).Seconds(), liveIdle, kedaCooldown, liveInterval, liveIdle+kedaCooldown+liveInterval)

		// Demand appears: both wake.
		start := time.Now()
		x.setTraffic(10)
		ebbAt, promAt := time.Time{}, time.Time{}
		deadline := start.Add(60 * time.Second)
		for ebbAt.IsZero() || promAt.IsZero() {
			if ebbAt.IsZero() && k.replicas(t, "w-ebb") >= 1 {
				ebbAt = time.Now()
			}
			if promAt.IsZero() && k.replicas(t, "w-prom") >= 1 {
				promAt = time.Now()
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 60s of demand: w-ebb woke at %v, w-prom at %v (zero: not yet)\nKEDA's log:\n%s", ebbAt, promAt, k.cp.Log("keda-operator"))
			}
			time.Sleep(20 * time.Millisecond)
		}
		grew := x.grewAt()
		line := fmt.Sprintf("wake %d: ebb (external + external-push) %.2fs, KEDA's prometheus scaler %.2fs after the traffic started; the first scrape showing it came %.2fs after the start",
			i+1, ebbAt.Sub(start).Seconds(), promAt.Sub(start).Seconds(), grew.Sub(start).Seconds())
		t.Log(line)
		lines = append(lines, line)
	}
	if out := os.Getenv("EBB_KEDA_WAKE_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Error(err)
		}
	}

	// The store goes down while w-ebb is up with traffic: once ebb's data
	// is older than --max-staleness and KEDA has polled ten more times,
	// w-ebb still has its replica.
	if err := e.prom.Stop(); err != nil {
		t.Fatal(err)
	}
	k.holdReplicas(t, "w-ebb", 1, "the store is down past --max-staleness", e.unavailable(), 30*time.Second)
	k.holdReplicas(t, "w-ebb", 1, "KEDA polls ebb during the outage", e.callsAfter(t, 20), 60*time.Second)
}

// TestKEDAKeepsZeroThroughRestartAndOutage puts an idle workload at zero
// with the real KEDA operator, then restarts ebb and then stops the store:
// "unknown" must never wake it (issue #11). ebb comes back on the same
// gRPC port, as it would behind its Service.
func TestKEDAKeepsZeroThroughRestartAndOutage(t *testing.T) {
	k := startKEDA(t, "shop")
	x := startExporter(t)
	prom := storetest.StartPrometheus(t, storetest.PromOptions{ScrapeTarget: x.addr, ScrapeInterval: liveScrape})
	grpcAddr := freeAddr(t)
	e := startServe(t, prom.URL, nil, append(liveServeFlags(), "--grpc-addr="+grpcAddr)...)
	x.waitScrapes(t, 2) // shop/w's series exists, flat: a rate of 0

	k.deployment(t, "w-idle", nil)
	k.scaledObject(t, "w-idle", int(kedaCooldown/time.Second), ebbTriggers(grpcAddr)...)
	k.waitReplicas(t, "w-idle", "0: no traffic", zero, 60*time.Second)

	// A restart while at zero.
	e.conn.Close()
	e.stop(t)
	e = startServe(t, prom.URL, nil, append(liveServeFlags(), "--grpc-addr="+grpcAddr)...)
	k.holdReplicas(t, "w-idle", 0, "ebb restarted while the workload was at zero (issue #11: unknown never wakes)", e.callsAfter(t, 20), 60*time.Second)

	// The store goes down while at zero.
	if err := prom.Stop(); err != nil {
		t.Fatal(err)
	}
	k.holdReplicas(t, "w-idle", 0, "the store went down while the workload was at zero (issue #11)", e.unavailable(), 30*time.Second)
	k.holdReplicas(t, "w-idle", 0, "KEDA polls ebb during the outage (issue #11)", e.callsAfter(t, 20), 60*time.Second)
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
