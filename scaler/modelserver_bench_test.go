package scaler

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/ebbscale/ebb/bench/promdata"
	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/promapi"
)

// modelServerShapes are the four model-server shapes, each covering every
// server kind (server auto) in one query.
var modelServerShapes = []queries.Shape{
	{Signal: queries.SignalQueue, Server: queries.ServerAuto, Window: time.Minute},
	{Signal: queries.SignalRunning, Server: queries.ServerAuto, Window: time.Minute},
	{Signal: queries.SignalKVCache, Server: queries.ServerAuto, Window: time.Minute},
	{Signal: queries.SignalTTFT, Server: queries.ServerAuto, Window: 5 * time.Minute, Quantile: 0.9},
}

// modelServerVector is the answer to a model-server query at at: one
// series per workload 0..n-1, labelled namespace and ebb_workload as the
// catalog's query labels it, with value v(i).
func modelServerVector(n int, at time.Time, v func(int) float64) []byte {
	ts := strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', -1, 64)
	var b bytes.Buffer
	b.Grow(n * 110)
	b.WriteString(`{"status":"success","data":{"resultType":"vector","result":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"metric":{"ebb_workload":"`)
		b.WriteString(promdata.Name(i))
		b.WriteString(`","namespace":"`)
		b.WriteString(promdata.Namespace(i))
		b.WriteString(`"},"value":[`)
		b.WriteString(ts)
		b.WriteString(`,"`)
		b.WriteString(strconv.FormatFloat(v(i), 'g', -1, 64))
		b.WriteString(`"]}`)
	}
	b.WriteString(`]}}`)
	return b.Bytes()
}

// modelServerValue is workload i's value of every model-server signal in
// the generated answers: a multiple of 1/8, exact in text.
func modelServerValue(i int) float64 { return float64(i%509) / 8 }

// modelServerStore answers the requests query with promdata's requests
// vector, the model-server queries (which label ebb_workload) with
// modelServerVector, and range queries with an empty matrix, from memory.
type modelServerStore struct{ requests, servers []byte }

func (s *modelServerStore) RoundTrip(req *http.Request) (*http.Response, error) {
	raw, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		return nil, err
	}
	body := s.requests
	switch {
	case strings.HasSuffix(req.URL.Path, "/query_range"):
		body = promdata.EmptyMatrix
	case strings.Contains(form.Get("query"), queries.ModelServerWorkloadLabel):
		body = s.servers
	}
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: req}, nil
}

// BenchmarkRefreshModelServers is one collector tick over n workloads
// against a Prometheus source, with the HTTP decode of every answer (from
// memory): "requests" registers each workload's requests trigger, one
// shape; "modelservers" each workload's queue, running, kvcache and ttft
// triggers, four shapes and 4n interests. The per-tick cost should be
// linear in shapes: modelservers ≈ 4 × requests, the same per shape.
func BenchmarkRefreshModelServers(b *testing.B) {
	at := time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)
	for _, n := range []int{1_000, 10_000} {
		for _, kind := range []string{"requests", "modelservers"} {
			b.Run(fmt.Sprintf("%s/%d", kind, n), func(b *testing.B) {
				store := &modelServerStore{requests: promdata.RequestsVector(n, at), servers: modelServerVector(n, at, modelServerValue)}
				src, err := promapi.NewPrometheus(promapi.PrometheusConfig{URL: "http://prometheus.invalid:9090", Client: &http.Client{Transport: store}})
				if err != nil {
					b.Fatal(err)
				}
				clk := clock.NewMock()
				clk.Set(at)
				c, err := NewCollector(Config{Source: src, Clock: clk})
				if err != nil {
					b.Fatal(err)
				}
				shapes := []queries.Shape{reqShape}
				if kind == "modelservers" {
					shapes = modelServerShapes
				}
				var ins []*Interest
				for i := range n {
					w := wk(promdata.Namespace(i), promdata.Name(i))
					for _, s := range shapes {
						ins = append(ins, c.Register(s, w, 0, 0))
					}
				}
				ctx := context.Background()
				c.Refresh(ctx)
				snap := c.Snapshot()
				for i, in := range ins {
					want := promdata.RequestRate(i / len(shapes))
					if kind == "modelservers" {
						want = modelServerValue(i / len(shapes))
					}
					if o, ok := snap.Lookup(in); !ok || !o.OK || o.Value != want {
						b.Fatalf("%s %s: observed %+v (found %v), want %g", in.workload, in.shape, o, ok, want)
					}
				}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					c.Refresh(ctx)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(shapes)), "ns/shape")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(ins)), "ns/interest")
			})
		}
	}
}

// BenchmarkRefreshModelServersRatio runs, in each iteration, one tick of
// the requests collector and one of the model-server collector of
// BenchmarkRefreshModelServers over 10,000 workloads, back to back, so that
// both see the same load on a shared machine; it reports each tick's mean
// and the model-server tick's cost per shape over the requests tick's
// ("per-shape-ratio": 1 is the same per-shape cost).
func BenchmarkRefreshModelServersRatio(b *testing.B) {
	at := time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)
	const n = 10_000
	store := &modelServerStore{requests: promdata.RequestsVector(n, at), servers: modelServerVector(n, at, modelServerValue)}
	collector := func(shapes []queries.Shape) *Collector {
		src, err := promapi.NewPrometheus(promapi.PrometheusConfig{URL: "http://prometheus.invalid:9090", Client: &http.Client{Transport: store}})
		if err != nil {
			b.Fatal(err)
		}
		clk := clock.NewMock()
		clk.Set(at)
		c, err := NewCollector(Config{Source: src, Clock: clk})
		if err != nil {
			b.Fatal(err)
		}
		for i := range n {
			for _, s := range shapes {
				c.Register(s, wk(promdata.Namespace(i), promdata.Name(i)), 0, 0)
			}
		}
		c.Refresh(context.Background())
		return c
	}
	req, ms := collector([]queries.Shape{reqShape}), collector(modelServerShapes)
	ctx := context.Background()
	var reqTime, msTime time.Duration
	for b.Loop() {
		t0 := time.Now()
		req.Refresh(ctx)
		t1 := time.Now()
		ms.Refresh(ctx)
		reqTime += t1.Sub(t0)
		msTime += time.Since(t1)
	}
	b.ReportMetric(float64(reqTime.Nanoseconds())/float64(b.N), "requests-ns/tick")
	b.ReportMetric(float64(msTime.Nanoseconds())/float64(b.N), "modelservers-ns/tick")
	b.ReportMetric(float64(msTime)/float64(len(modelServerShapes))/float64(reqTime), "per-shape-ratio")
}
