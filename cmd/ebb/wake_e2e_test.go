package main

import (
	"testing"
	"time"
)

// TestServeWakesWithinATick measures the wake delay end to end: a real
// Prometheus scrapes a test exporter every second, `ebb serve` ticks every
// second on the real clock, and KEDA's external-push stream (StreamIsActive)
// is open on an idle workload. Traffic starts; the stream must deliver true
// within a tick or two of the store showing it, not at KEDA's next poll
// (pollingInterval, 30s by default). The bound is generous because the
// machine may be loaded; the measured delay is logged for the README.
func TestServeWakesWithinATick(t *testing.T) {
	e, x := startLive(t)
	x.waitScrapes(t, 2) // shop/w's series exists, flat: a rate of 0

	s := e.streamActive(t, liveRef)
	// The first message may be the true ebb answers before its first tick
	// of a new trigger; then the idle answer follows.
	for active := s.next(t, 20*time.Second); active; active = s.next(t, 20*time.Second) {
	}
	if v := e.value(t, liveRef); v != 0 {
		t.Fatalf("shop/w before the traffic: %v req/s, want 0", v)
	}

	const bound = 10 * time.Second // interval 1s + scrape 1s + a margin for a loaded machine
	start := time.Now()
	x.setTraffic(10)
	if !s.next(t, bound+5*time.Second) {
		t.Fatal("StreamIsActive sent false again instead of waking")
	}
	pushed := time.Now()
	delay, grew := pushed.Sub(start), x.grewAt()
	if delay > bound {
		t.Errorf("woke %v after the traffic started, want within %v", delay, bound)
	}
	if !e.isActive(t, liveRef) {
		t.Error("IsActive false after the stream said true")
	}
	t.Logf("wake delay: %.1fs (interval %s, scrape %s): the first scrape showing demand %.1fs after the traffic started, the push %.1fs after that scrape; KEDA polls every 30s by default",
		delay.Seconds(), liveInterval, liveScrape, grew.Sub(start).Seconds(), pushed.Sub(grew).Seconds())
}
