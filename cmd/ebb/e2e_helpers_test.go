package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ebbscale/ebb/queries/storetest"
	"github.com/ebbscale/ebb/scaler"
)

// e2e is `ebb serve` against a real Prometheus (directly or through a
// proxy), reached through KEDA's generated client over TCP.
type e2e struct {
	prom      *storetest.Server // the store, when the test started one
	clk       *clock.Mock       // nil: ebb runs on the real clock
	collector *scaler.Collector
	client    pb.ExternalScalerClient
	conn      *grpc.ClientConn
	grpc      string // the gRPC address, host:port
	http      string
	stderr    *syncBuffer
	done      chan error
	cancel    context.CancelFunc
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe runs `ebb serve` against the store at url, on loopback ports,
// with text logs and the extra flags, and stops it in Cleanup. clk is the
// mock clock ebb reads; nil runs it on the real clock.
func startServe(t *testing.T, url string, clk *clock.Mock, flags ...string) *e2e {
	t.Helper()
	e := &e2e{clk: clk, stderr: &syncBuffer{}, done: make(chan error, 1)}
	deps := serveDeps{getenv: func(string) string { return "" }, kickGap: -1} // no pacing: a mock clock stands still while a test registers
	if clk != nil {
		deps.clock = clk // a nil *clock.Mock must not become a non-nil Clock
	}
	addrs := make(chan [2]string, 1)
	cols := make(chan *scaler.Collector, 1)
	deps.listening = func(g, h string) { addrs <- [2]string{g, h} }
	deps.started = func(c *scaler.Collector) { cols <- c }
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	args := append([]string{"--prometheus-url=" + url, "--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--log-format=text"}, flags...)
	go func() { e.done <- runServe(ctx, args, e.stderr, deps) }()
	var a [2]string
	select {
	case a = <-addrs:
	case err := <-e.done:
		t.Fatalf("ebb serve exited: %v\n%s", err, e.stderr)
	case <-time.After(30 * time.Second):
		t.Fatal("ebb serve did not listen")
	}
	e.collector = <-cols // started is called before listening
	e.grpc, e.http = a[0], "http://"+a[1]
	var err error
	e.conn, err = grpc.NewClient(a[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	e.client = pb.NewExternalScalerClient(e.conn)
	t.Cleanup(func() {
		e.conn.Close()
		e.stop(t)
	})
	return e
}

func (e *e2e) stop(t *testing.T) {
	t.Helper()
	e.cancel()
	select {
	case err, ok := <-e.done:
		if !ok {
			return // stopped before
		}
		if err != nil {
			t.Errorf("ebb serve: %v", err)
		}
		close(e.done)
	case <-time.After(30 * time.Second):
		t.Error("ebb serve did not stop within 30s of cancellation")
	}
}

// advance moves the mock clock d forward and waits for the collector's tick
// that evaluates the new time. d must be a multiple of --interval, so that
// the collector's ticker fires at exactly the new time.
func (e *e2e) advance(t *testing.T, d time.Duration) {
	t.Helper()
	at := e.clk.Now().Add(d)
	e.clk.Add(d)
	deadline := time.After(20 * time.Second)
	for {
		changed := e.collector.Changed()
		if !e.collector.Snapshot().At.Before(at) {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no tick evaluating %v (last %v)\nlog:\n%s", at, e.collector.Snapshot().At, e.stderr)
		}
	}
}

func (e *e2e) isActive(t *testing.T, ref *pb.ScaledObjectRef) bool {
	t.Helper()
	r, err := e.client.IsActive(context.Background(), ref)
	if err != nil {
		t.Fatalf("IsActive %s/%s: %v", ref.Namespace, ref.Name, err)
	}
	return r.Result
}

// metrics returns ebb's /metrics page.
func (e *e2e) metrics(t *testing.T) string {
	t.Helper()
	body, code := httpGet(t, e.http+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: HTTP %d", code)
	}
	return body
}

// waitMetrics reads /metrics until it holds every line of want, for at most
// 10s. A tick updates the collector's metrics only after it has swapped in
// its snapshot and closed Changed (scaler's Refresh), and refills
// ebb_activity from empty, so a page read right after a tick may lag it or
// lack some of its series.
func (e *e2e) waitMetrics(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		body := e.metrics(t)
		missing := ""
		for _, w := range want {
			if !strings.Contains(body, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %s; it has:\n%s", missing, grepLines(body, "ebb_"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// grepLines returns s's lines that contain sub.
func grepLines(s, sub string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			b.WriteString(line)
		}
	}
	return b.String()
}

func soRef(ns, name string, md map[string]string) *pb.ScaledObjectRef {
	m := map[string]string{"scalerAddress": "ebb:9090"}
	for k, v := range md {
		m[k] = v
	}
	return &pb.ScaledObjectRef{Namespace: ns, Name: name, ScalerMetadata: m}
}

// value polls GetMetrics until ebb has collected the trigger's first value:
// the first call registers it and the collector queries the real Prometheus
// at once, which takes real time.
func (e *e2e) value(t *testing.T, ref *pb.ScaledObjectRef) float64 {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		m, err := e.client.GetMetrics(context.Background(), &pb.GetMetricsRequest{ScaledObjectRef: ref})
		if err == nil {
			return m.MetricValues[0].MetricValueFloat
		}
		if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
			t.Fatalf("GetMetrics %s/%s: %v\nlog:\n%s", ref.Namespace, ref.Name, err, e.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func httpGet(t *testing.T, url string) (string, int) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode
}

// activeStream is an open StreamIsActive, as KEDA's external-push scaler
// keeps one per trigger; its messages arrive on msgs.
type activeStream struct {
	msgs chan bool
}

// streamActive opens StreamIsActive for ref until the test ends.
func (e *e2e) streamActive(t *testing.T, ref *pb.ScaledObjectRef) *activeStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel) // runs before startServe's cleanup stops ebb
	stream, err := e.client.StreamIsActive(ctx, ref)
	if err != nil {
		t.Fatalf("StreamIsActive %s/%s: %v", ref.Namespace, ref.Name, err)
	}
	s := &activeStream{msgs: make(chan bool, 64)}
	go func() {
		defer close(s.msgs)
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			select {
			case s.msgs <- r.Result:
			case <-ctx.Done():
				return
			}
		}
	}()
	return s
}

// next returns the stream's next message, waiting at most timeout.
func (s *activeStream) next(t *testing.T, timeout time.Duration) bool {
	t.Helper()
	select {
	case v, ok := <-s.msgs:
		if !ok {
			t.Fatal("StreamIsActive ended")
		}
		return v
	case <-time.After(timeout):
		t.Fatalf("StreamIsActive sent nothing within %v", timeout)
	}
	return false
}

// received returns the messages the stream has delivered so far, without
// waiting.
func (s *activeStream) received() []bool {
	var out []bool
	for {
		select {
		case v, ok := <-s.msgs:
			if !ok {
				return out
			}
			out = append(out, v)
		default:
			return out
		}
	}
}

// exporter is a scrape target with one istio_requests_total counter, of
// shop/w as its own sidecars report it. Every scrape adds the current
// traffic to the counter, so at a 1s scrape interval its rate is about
// traffic per second; with traffic 0 the series stays and its rate is 0.
type exporter struct {
	addr    string
	count   atomic.Int64
	traffic atomic.Int64 // added to count at every scrape
	down    atomic.Bool  // answer scrapes 503: the target is down
	scrapes atomic.Int64 // scrapes answered
	// grew is when a scrape first served a higher count after traffic
	// was last set from 0; zero until then.
	mu   sync.Mutex
	grew time.Time
}

func startExporter(t *testing.T) *exporter {
	t.Helper()
	x := &exporter{}
	x.count.Store(1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if x.down.Load() {
			http.Error(w, "exporter down", http.StatusServiceUnavailable)
			return
		}
		n := x.count.Load()
		if inc := x.traffic.Load(); inc > 0 {
			n = x.count.Add(inc)
			x.mu.Lock()
			if x.grew.IsZero() {
				x.grew = time.Now()
			}
			x.mu.Unlock()
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# TYPE istio_requests_total counter\n"+
			"istio_requests_total{reporter=\"destination\",destination_workload_namespace=\"shop\",destination_workload=\"w\",namespace=\"shop\"} %d\n", n)
		x.scrapes.Add(1)
	}))
	t.Cleanup(srv.Close)
	x.addr = srv.Listener.Addr().String()
	return x
}

// setTraffic sets the requests each scrape adds.
func (x *exporter) setTraffic(perScrape int64) {
	x.mu.Lock()
	if x.traffic.Swap(perScrape) == 0 {
		x.grew = time.Time{}
	}
	x.mu.Unlock()
}

// grewAt returns when a scrape first served growth after setTraffic.
func (x *exporter) grewAt() time.Time {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.grew
}

// waitScrapes waits until Prometheus has scraped n more times: real
// waiting for real scrapes, bounded.
func (x *exporter) waitScrapes(t *testing.T, n int64) {
	t.Helper()
	want := x.scrapes.Load() + n
	deadline := time.Now().Add(time.Duration(n)*time.Second + 15*time.Second)
	for x.scrapes.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus scraped %d times, want %d", x.scrapes.Load(), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Live timings: Prometheus scrapes every second, ebb ticks every second on
// the real clock.
const (
	liveScrape   = time.Second
	liveInterval = time.Second
)

// liveRef is shop/w's trigger: a 10s rate window (the shortest ebb takes)
// and a 3s idle period.
var liveRef = soRef("shop", "w", map[string]string{"signal": "requests", "target": "5", "window": "10s", "idleAfter": "3s"})

// startLive starts an exporter, a real Prometheus scraping it and `ebb
// serve` on the real clock (--min-uptime=0s, so that nothing but the idle
// policy under test keeps a workload up).
func startLive(t *testing.T) (*e2e, *exporter) {
	t.Helper()
	x := startExporter(t)
	prom := storetest.StartPrometheus(t, storetest.PromOptions{ScrapeTarget: x.addr, ScrapeInterval: liveScrape})
	e := startServe(t, prom.URL, nil, liveServeFlags()...)
	e.prom = prom
	return e, x
}

// liveServeFlags are the flags of `ebb serve` in startLive.
func liveServeFlags() []string {
	return []string{"--interval=" + liveInterval.String(), "--max-staleness=3s", "--min-uptime=0s", "--query-timeout=2s"}
}

// promQuery evaluates expr on the store now and returns its result's
// samples' values.
func promQuery(t *testing.T, prom *storetest.Server, expr string) []float64 {
	t.Helper()
	body, code := httpGet(t, prom.URL+"/api/v1/query?query="+url.QueryEscape(expr))
	if code != http.StatusOK {
		t.Fatalf("%s: HTTP %d: %s", expr, code, body)
	}
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	var out []float64
	for _, s := range r.Data.Result {
		str, _ := s.Value[1].(string)
		f, err := strconv.ParseFloat(str, 64)
		if err != nil {
			t.Fatalf("%s: value %v", expr, s.Value[1])
		}
		out = append(out, f)
	}
	return out
}

// waitValue polls GetMetrics until its value satisfies ok, for at most
// timeout of real time, and returns the value.
func (e *e2e) waitValue(t *testing.T, ref *pb.ScaledObjectRef, want string, ok func(float64) bool, timeout time.Duration) float64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m, err := e.client.GetMetrics(context.Background(), &pb.GetMetricsRequest{ScaledObjectRef: ref})
		if err == nil && ok(m.MetricValues[0].MetricValueFloat) {
			return m.MetricValues[0].MetricValueFloat
		}
		if time.Now().After(deadline) {
			t.Fatalf("GetMetrics %s/%s: %v, %v after %v; want %s\nlog:\n%s", ref.Namespace, ref.Name, m, err, timeout, want, e.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
