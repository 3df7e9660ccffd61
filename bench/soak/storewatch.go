package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// storeWatch finds when the store itself first has a rate for each waking
// workload, by asking it directly (not through the fault proxy) every
// 250 ms: a wake's time then splits into the store's part (a scrape, and
// the store's own ingestion) and ebb's (its tick).
type storeWatch struct {
	f   *fleet
	url atomic.Pointer[string] // the store's base URL; it changes on a restart

	mu  sync.Mutex
	saw map[int]time.Time // workload index -> when the store first answered with its rate
}

func newStoreWatch(f *fleet, storeURL string) *storeWatch {
	s := &storeWatch{f: f, saw: map[int]time.Time{}}
	s.url.Store(&storeURL)
	return s
}

func (s *storeWatch) setURL(u string) { s.url.Store(&u) }

// sawAt is when the store first answered with w's rate after it woke; zero
// if it never did.
func (s *storeWatch) sawAt(w *workload) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saw[w.i]
}

func (s *storeWatch) run(ctx context.Context) {
	byName := map[string]*workload{}
	for _, w := range s.f.wl {
		if w.kind == waking {
			byName[w.name] = w
		}
	}
	q := url.QueryEscape(`max by (destination_workload) (rate(istio_requests_total{destination_workload=~"waking-api-.*"}[1m])) > 0`)
	c := http.Client{Timeout: 2 * time.Second}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// nocache=1: VictoriaMetrics answers as of now, as for ebb.
		resp, err := c.Get(*s.url.Load() + "/api/v1/query?nocache=1&query=" + q)
		if err != nil {
			continue
		}
		var body struct {
			Data struct {
				Result []struct {
					Metric map[string]string `json:"metric"`
				} `json:"result"`
			} `json:"data"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			continue
		}
		now := time.Now()
		s.mu.Lock()
		for _, r := range body.Data.Result {
			w := byName[r.Metric["destination_workload"]]
			if w == nil || now.Before(w.wakeAt) {
				continue
			}
			if _, ok := s.saw[w.i]; !ok {
				s.saw[w.i] = now
			}
		}
		s.mu.Unlock()
	}
}
