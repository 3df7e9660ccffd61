package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// KEDATimeout is KEDA's default HTTP timeout (KEDA_HTTP_DEFAULT_TIMEOUT,
// 3000 ms), which its Prometheus scaler's client uses.
const KEDATimeout = 3 * time.Second

// KEDAQuery is the query a KEDA user writes in a prometheus trigger to scale
// workload name in namespace ns on Istio's request rate.
func KEDAQuery(ns, name string) string {
	return `sum(rate(istio_requests_total{destination_workload="` + name + `", destination_workload_namespace="` + ns + `", reporter="destination"}[1m]))`
}

// PerObject queries the way KEDA's Prometheus scaler does: one instant query
// per ScaledObject, sent as a GET of /api/v1/query with the query and an
// RFC 3339 time, the whole body read and decoded with encoding/json; an
// empty result is 0 (ignoreNullValues, KEDA's default), more than one
// element an error.
type PerObject struct {
	// URL is the store's base URL.
	URL string
	// Client sends the queries; its Timeout should be KEDATimeout.
	Client *http.Client
	// Concurrency is how many queries are in flight at once.
	Concurrency int
}

// Round evaluates one query per entry of queries at at and returns the
// values, in the same order. A query that fails makes its value NaN, and the
// errors are joined.
func (p *PerObject) Round(ctx context.Context, queries []string, at time.Time) ([]float64, error) {
	out := make([]float64, len(queries))
	errs := make([]error, len(queries))
	var wg sync.WaitGroup
	work := make(chan int)
	for range max(1, p.Concurrency) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				out[i], errs[i] = p.query(ctx, queries[i], at)
				if errs[i] != nil {
					out[i] = math.NaN()
				}
			}
		}()
	}
	for i := range queries {
		work <- i
	}
	close(work)
	wg.Wait()
	return out, errors.Join(errs...)
}

// kedaResult is the part of an instant query's answer KEDA reads.
type kedaResult struct {
	Data struct {
		Result []struct {
			Value []any `json:"value"`
		} `json:"result"`
	} `json:"data"`
}

func (p *PerObject) query(ctx context.Context, q string, at time.Time) (float64, error) {
	u := p.URL + "/api/v1/query?query=" + url.QueryEscape(q) + "&time=" + url.QueryEscape(at.UTC().Format(time.RFC3339))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := p.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode/100 != 2 {
		return 0, fmt.Errorf("%s: HTTP %d", q, resp.StatusCode)
	}
	var r kedaResult
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, fmt.Errorf("%s: %w", q, err)
	}
	switch len(r.Data.Result) {
	case 0:
		return 0, nil
	case 1:
	default:
		return 0, fmt.Errorf("%s: %d elements, want one", q, len(r.Data.Result))
	}
	v := r.Data.Result[0].Value
	if len(v) != 2 {
		return 0, fmt.Errorf("%s: value %v", q, v)
	}
	s, ok := v[1].(string)
	if !ok {
		return 0, fmt.Errorf("%s: value %v is not a string", q, v[1])
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", q, err)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, nil
	}
	return f, nil
}
