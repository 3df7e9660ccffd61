package activator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/ebbscale/ebb/activator/activatortest"
	"github.com/ebbscale/ebb/queries"
)

// TestHoldEndToEnd: 500 concurrent requests with distinct bodies for a
// workload with no endpoint are held; its pod comes up; every request gets
// its own answer, none is lost and none reaches the pod twice.
func TestHoldEndToEnd(t *testing.T) {
	const n = 500
	e := newEnv(t, nil)
	e.client.Transport.(*http.Transport).MaxIdleConnsPerHost = n
	results := make([]response, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body := fmt.Sprintf("request %d", i)
			results[i] = e.do(e.request(context.Background(), "POST", "web.shop", "/hold", strings.NewReader(body)))
		})
	}
	e.waitHeld(shopWeb, n)
	held, since := e.act.Holding(shopWeb)
	if held != n || since.IsZero() {
		t.Fatalf("Holding = %d, %v; want %d since a time", held, since, n)
	}
	if got := e.metric("ebb_activator_pending", "workload", "web"); got != n {
		t.Errorf("pending = %v, want %d", got, n)
	}
	if calls := e.demand.Calls(); calls[0] != (activatortest.Call{Workload: shopWeb, N: 1}) {
		t.Errorf("first Demand call %v, want shop/web 1", calls[0])
	}

	b := newBackend(t, "pod-1", nil) // the pod starts
	e.eps.SetReady("shop", "web", b.addr)
	wg.Wait()

	for i, got := range results {
		want := response{code: 200, body: fmt.Sprintf("pod-1 got POST /hold request %d", i)}
		if got != want {
			t.Errorf("request %d: got %+v, want %+v", i, got, want)
		}
	}
	b.mu.Lock()
	lost, twice := 0, 0
	for i := range n {
		switch b.bodies[fmt.Sprintf("request %d", i)] {
		case 0:
			lost++
		case 1:
		default:
			twice++
		}
	}
	b.mu.Unlock()
	if lost != 0 || twice != 0 || b.n.Load() != n {
		t.Errorf("backend: %d lost, %d sent twice, %d in all; want 0, 0, %d", lost, twice, b.n.Load(), n)
	}
	e.waitHeld(shopWeb, 0)
	if held, _ := e.act.Holding(shopWeb); held != 0 {
		t.Errorf("Holding = %d after the wake, want 0", held)
	}
	for _, m := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"ebb_activator_pending", []string{"workload", "web"}, 0},
		{"ebb_activator_held_total", []string{"workload", "web"}, n},
		{"ebb_activator_forwarded_total", []string{"workload", "web", "held", "true"}, n},
		{"ebb_activator_requests_total", []string{"workload", "web"}, n},
		{"ebb_activator_cold_starts_total", []string{"workload", "web"}, 1},
		{"ebb_activator_wake_latency_seconds", []string{"workload", "web"}, 1}, // one observation
	} {
		if got := e.metric(m.name, m.labels...); got != m.want {
			t.Errorf("%s%v = %v, want %v", m.name, m.labels, got, m.want)
		}
	}
}

// TestHoldOrder: held requests go upstream in arrival order. With
// WakeConcurrency 1 the next request goes only once the one before it is
// written in full, and the test ends each body in turn: the pod must see
// the requests one by one, in the order they came.
func TestHoldOrder(t *testing.T) {
	const n = 20
	e := newEnv(t, func(c *Config) { c.WakeConcurrency = 1 })
	arrived := make(chan string, n)
	b := newBackend(t, "pod-1", func(w http.ResponseWriter, r *http.Request) {
		arrived <- r.URL.Path
		io.Copy(w, r.Body)
	})
	var wg sync.WaitGroup
	bodies := make([]*io.PipeWriter, n)
	t.Cleanup(func() { // on failure, end the bodies so that the servers can close
		for _, pw := range bodies {
			pw.CloseWithError(errors.New("test over"))
		}
	})
	for i := range n {
		pr, pw := io.Pipe()
		bodies[i] = pw
		wg.Go(func() {
			got := e.do(e.request(context.Background(), "POST", "web.shop", fmt.Sprintf("/%d", i), pr))
			if want := (response{code: 200, body: fmt.Sprint(i)}); got != want {
				t.Errorf("request %d: got %+v, want %+v", i, got, want)
			}
		})
		e.waitHeld(shopWeb, i+1) // i arrived before i+1
	}
	e.eps.SetReady("shop", "web", b.addr)
	for i := range n {
		if got, want := <-arrived, fmt.Sprintf("/%d", i); got != want {
			t.Fatalf("pod saw %s, want %s", got, want)
		}
		select {
		case p := <-arrived:
			t.Fatalf("pod saw %s before /%d was written", p, i)
		default:
		}
		io.WriteString(bodies[i], fmt.Sprint(i))
		bodies[i].Close()
	}
	wg.Wait()
}

// TestWakeConcurrency: at most WakeConcurrency held requests are on their
// way upstream at once. The requests' bodies stream until the test ends
// them, so each released request stays unwritten: the pod sees exactly the
// first WakeConcurrency, and the rest stay held until those are written.
func TestWakeConcurrency(t *testing.T) {
	const n, limit = 10, 3
	e := newEnv(t, func(c *Config) { c.WakeConcurrency = limit })
	arrived := make(chan string, n)
	b := newBackend(t, "pod-1", func(w http.ResponseWriter, r *http.Request) {
		arrived <- r.URL.Path
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", r.URL.Path, body)
	})
	var wg sync.WaitGroup
	bodies := make([]*io.PipeWriter, n)
	t.Cleanup(func() { // on failure, end the bodies so that the servers can close
		for _, pw := range bodies {
			pw.CloseWithError(errors.New("test over"))
		}
	})
	for i := range n {
		pr, pw := io.Pipe()
		bodies[i] = pw
		wg.Go(func() {
			path := fmt.Sprintf("/%d", i)
			got := e.do(e.request(context.Background(), "POST", "web.shop", path, pr))
			if want := (response{code: 200, body: path + " streamed"}); got != want {
				t.Errorf("request %d: got %+v, want %+v", i, got, want)
			}
		})
		e.waitHeld(shopWeb, i+1)
	}
	e.eps.SetReady("shop", "web", b.addr)
	first := map[string]bool{}
	for range limit { // released together: any order among them
		first[<-arrived] = true
	}
	if !first["/0"] || !first["/1"] || !first["/2"] {
		t.Errorf("pod saw %v first, want /0, /1 and /2", first)
	}
	e.waitHeld(shopWeb, n-limit) // the rest stay held
	select {
	case p := <-arrived:
		t.Fatalf("pod saw %s while %d requests were unwritten", p, limit)
	default:
	}
	io.WriteString(bodies[0], "streamed")
	bodies[0].Close() // one is written in full: one more goes
	if got := <-arrived; got != fmt.Sprintf("/%d", limit) {
		t.Errorf("pod saw %s, want /%d", got, limit)
	}
	e.waitHeld(shopWeb, n-limit-1)
	for _, pw := range bodies[1:] {
		io.WriteString(pw, "streamed")
		pw.Close()
	}
	wg.Wait()
}

// TestHoldSpread: held requests go round robin over the ready addresses.
func TestHoldSpread(t *testing.T) {
	const n = 100
	e := newEnv(t, nil)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			e.do(e.request(context.Background(), "POST", "web.shop", "/", strings.NewReader(fmt.Sprint(i))))
		})
	}
	e.waitHeld(shopWeb, n)
	b1, b2 := newBackend(t, "pod-1", nil), newBackend(t, "pod-2", nil)
	e.eps.SetReady("shop", "web", b1.addr, b2.addr)
	wg.Wait()
	if b1.n.Load() != n/2 || b2.n.Load() != n/2 {
		t.Errorf("pods saw %d and %d requests, want %d each", b1.n.Load(), b2.n.Load(), n/2)
	}
}

func TestOverflow(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxPending = 2; c.MaxPendingTotal = 3 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	hold := func(host string) { wg.Go(func() { e.do(e.request(ctx, "GET", host, "/", nil)) }) }
	hold("web.shop")
	hold("web.shop")
	e.waitHeld(shopWeb, 2)
	got := e.do(e.request(ctx, "GET", "web.shop", "/", nil))
	want := response{code: 503, retryAfter: "5", body: "ebb activator: workload shop/web: holds 2 requests, the most it may\n"}
	if got != want {
		t.Errorf("per workload: got %+v, want %+v", got, want)
	}
	hold("api.shop")
	e.waitHeld(shopAPI, 1)
	got = e.do(e.request(ctx, "GET", "api.shop", "/", nil))
	want = response{code: 503, retryAfter: "5", body: "ebb activator: workload shop/api: the activator holds 3 requests, the most it may\n"}
	if got != want {
		t.Errorf("in total: got %+v, want %+v", got, want)
	}
	if got := e.metric("ebb_activator_rejected_total", "workload", "web", "reason", "overflow"); got != 1 {
		t.Errorf("rejected_total{web,overflow} = %v, want 1", got)
	}
	if n, _ := e.act.Holding(shopWeb); n != 2 {
		t.Errorf("Holding(web) = %d, want 2", n)
	}
}

func TestHoldTimeout(t *testing.T) {
	mock := clock.NewMock()
	e := newEnv(t, func(c *Config) {
		c.Clock = mock
		c.HoldTimeout = time.Minute
		c.RetryAfter = 1500 * time.Millisecond
		c.HoldTimeoutFor = func(w queries.WorkloadKey) time.Duration {
			if w == shopAPI {
				return 10 * time.Second
			}
			return 0
		}
	})
	f := func(host string, w queries.WorkloadKey, advance time.Duration, want response) {
		t.Helper()
		done := make(chan response)
		go func() { done <- e.do(e.request(context.Background(), "GET", host, "/", nil)) }()
		e.waitHeld(w, 1)
		held, since := e.act.Holding(w)
		if held != 1 || !since.Equal(mock.Now()) {
			t.Errorf("Holding = %d since %v, want 1 since %v", held, since, mock.Now())
		}
		mock.Add(advance - time.Nanosecond)
		if n, _ := e.act.Holding(w); n != 1 {
			t.Errorf("Holding = %d a nanosecond before the timeout, want 1", n)
		}
		mock.Add(time.Nanosecond)
		if got := <-done; got != want {
			t.Errorf("got %+v, want %+v", got, want)
		}
		e.waitHeld(w, 0)
	}
	f("web.shop", shopWeb, time.Minute, response{code: 503, retryAfter: "2",
		body: "ebb activator: workload shop/web: no endpoint became ready within 1m0s\n"})
	f("api.shop", shopAPI, 10*time.Second, response{code: 503, retryAfter: "2",
		body: "ebb activator: workload shop/api: no endpoint became ready within 10s\n"})
	if got := e.metric("ebb_activator_rejected_total", "workload", "web", "reason", "timeout"); got != 1 {
		t.Errorf("rejected_total{web,timeout} = %v, want 1", got)
	}
}

// TestClientGoneFreesSlot: a client that goes away leaves the queue at
// once, and its slot takes another request: over HTTP/1.1 without a body,
// over HTTP/1.1 with a body the activator has not read (net/http does not
// tell that client's close through the request's context: the activator
// polls the connection), and over h2c with a body. The hold timeout is an
// hour: only the client's leaving can free the slot.
func TestClientGoneFreesSlot(t *testing.T) {
	for _, proto := range []string{"http1", "http1-body", "h2c"} {
		t.Run(proto, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.MaxPending = 1; c.HoldTimeout = time.Hour })
			method, body := "GET", func() io.Reader { return nil }
			switch proto {
			case "http1-body":
				method, body = "POST", func() io.Reader { return strings.NewReader("payload") }
			case "h2c":
				e.client = h2cClient(t)
				method, body = "POST", func() io.Reader { return strings.NewReader("payload") }
			}
			ctx, cancel := context.WithCancel(context.Background())
			first := make(chan response)
			go func() { first <- e.do(e.request(ctx, method, "web.shop", "/first", body())) }()
			e.waitHeld(shopWeb, 1)
			cancel()
			if got := <-first; !errors.Is(got.err, context.Canceled) {
				t.Errorf("cancelled client got %+v, want context.Canceled", got)
			}
			e.waitHeld(shopWeb, 0)
			second := make(chan response)
			go func() { second <- e.do(e.request(context.Background(), method, "web.shop", "/second", body())) }()
			e.waitHeld(shopWeb, 1) // held, not refused: the slot is free
			b := newBackend(t, "pod-1", nil)
			e.eps.SetReady("shop", "web", b.addr)
			want := response{code: 200, body: "pod-1 got " + method + " /second "}
			if method == "POST" {
				want.body += "payload"
			}
			if got := <-second; got != want {
				t.Errorf("second: got %+v, want %+v", got, want)
			}
			if got := e.metric("ebb_activator_rejected_total", "workload", "web", "reason", "client_gone"); got != 1 {
				t.Errorf("rejected_total{client_gone} = %v, want 1", got)
			}
			if b.n.Load() != 1 {
				t.Errorf("backend saw %d requests, want 1", b.n.Load())
			}
			wantCalls := []activatortest.Call{{Workload: shopWeb, N: 1}, {Workload: shopWeb, N: 0}, {Workload: shopWeb, N: 1}, {Workload: shopWeb, N: 0}}
			if got := e.demand.Calls(); fmt.Sprint(got) != fmt.Sprint(wantCalls) {
				t.Errorf("Demand calls %v, want %v", got, wantCalls)
			}
		})
	}
}

// TestRefusedRetried: an address that refuses the connection is tried,
// then another, then the activator waits for the addresses to change; the
// request reaches the pod once, body intact, over HTTP/1.1 and h2c.
func TestRefusedRetried(t *testing.T) {
	for _, proto := range []string{"http1", "h2c"} {
		t.Run(proto, func(t *testing.T) {
			e := newEnv(t, nil)
			client := e.client
			if proto == "h2c" {
				client = h2cClient(t)
			}
			dead1, dead2 := deadAddr(t), deadAddr(t)
			e.eps.SetReady("shop", "web", dead1, dead2)
			done := make(chan response)
			go func() {
				req := e.request(context.Background(), "POST", "web.shop", "/", strings.NewReader("only once"))
				resp, err := client.Do(req)
				if err != nil {
					done <- response{err: err}
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				done <- response{code: resp.StatusCode, body: string(body)}
			}()
			// Ready is called by ServeHTTP, after the first refusal (the
			// other address is tried) and after the second: then the
			// request waits for a change.
			e.waitReadyCalls(3)
			b := newBackend(t, "pod-1", nil)
			e.eps.SetReady("shop", "web", dead1, b.addr, dead2)
			if got, want := <-done, (response{code: 200, body: "pod-1 got POST / only once"}); got != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
			if b.n.Load() != 1 {
				t.Errorf("backend saw %d requests, want 1", b.n.Load())
			}
		})
	}
}

// TestRefusedTimeout: with only refusing addresses, the request waits its
// hold timeout and gets 503.
func TestRefusedTimeout(t *testing.T) {
	mock := clock.NewMock()
	e := newEnv(t, func(c *Config) { c.Clock = mock; c.HoldTimeout = time.Minute })
	e.eps.SetReady("shop", "web", deadAddr(t))
	done := make(chan response)
	go func() { done <- e.do(e.request(context.Background(), "GET", "web.shop", "/", nil)) }()
	e.waitReadyCalls(2)
	mock.Add(time.Minute)
	got := <-done
	want := response{code: 503, retryAfter: "5", body: "ebb activator: workload shop/web: no endpoint accepted the request within 1m0s\n"}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// waitReadyCalls waits until Endpoints.Ready has been called n times.
func (e *env) waitReadyCalls(n int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.eps.WaitReadyCalls(ctx, n); err != nil {
		e.t.Fatalf("Ready called %d times, want %d", e.eps.ReadyCalls(), n)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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

// TestHoldLogs: one line when a workload starts holding, one when it stops.
func TestHoldLogs(t *testing.T) {
	mock := clock.NewMock()
	var buf syncBuffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	e := newEnv(t, func(c *Config) { c.Clock = mock; c.Logger = logger })
	done := make(chan response)
	go func() { done <- e.do(e.request(context.Background(), "GET", "web.shop:8080", "/", nil)) }()
	e.waitHeld(shopWeb, 1)
	mock.Add(90 * time.Second)
	b := newBackend(t, "pod-1", nil)
	e.eps.SetReady("shop", "web", b.addr)
	<-done
	want := "level=INFO msg=\"holding requests\" workload=shop/web service=shop/web:8080\n" +
		"level=INFO msg=\"stopped holding requests\" workload=shop/web held_for=1m30s\n"
	if got := buf.String(); got != want {
		t.Errorf("logs:\n%s\nwant:\n%s", got, want)
	}
	if n, since := e.act.Holding(shopWeb); n != 0 || !since.IsZero() {
		t.Errorf("Holding = %d, %v after the wake; want 0, zero time", n, since)
	}
	if got := e.wakeSum(shopWeb); got != 90 {
		t.Errorf("wake latency sum = %vs, want 90s (held, then the first byte forwarded)", got)
	}
}

// wakeSum returns the sum of w's wake-latency histogram.
func (e *env) wakeSum(w queries.WorkloadKey) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "ebb_activator_wake_latency_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["namespace"] == w.Namespace && labels["workload"] == w.Name {
				return m.GetHistogram().GetSampleSum()
			}
		}
	}
	return -1
}

// TestTwoServicesOneWorkload: the limits and the count are the workload's,
// readiness is each Service's own.
func TestTwoServicesOneWorkload(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxPending = 2 })
	e.eps.AddService("shop", "web-grpc", shopWeb)
	results := make(chan response, 2)
	go func() { results <- e.do(e.request(context.Background(), "GET", "web.shop", "/a", nil)) }()
	e.waitHeld(shopWeb, 1)
	go func() { results <- e.do(e.request(context.Background(), "GET", "web-grpc.shop", "/b", nil)) }()
	e.waitHeld(shopWeb, 2)
	got := e.do(e.request(context.Background(), "GET", "web-grpc.shop", "/c", nil))
	if want := (response{code: 503, retryAfter: "5", body: "ebb activator: workload shop/web: holds 2 requests, the most it may\n"}); got != want {
		t.Errorf("third: got %+v, want %+v", got, want)
	}
	b := newBackend(t, "pod-1", nil)
	e.eps.SetReady("shop", "web-grpc", b.addr) // only this Service's endpoints
	if got, want := <-results, (response{code: 200, body: "pod-1 got GET /b "}); got != want {
		t.Errorf("web-grpc: got %+v, want %+v", got, want)
	}
	e.waitHeld(shopWeb, 1) // /a still waits for web's own endpoints
	e.eps.SetReady("shop", "web", b.addr)
	if got, want := <-results, (response{code: 200, body: "pod-1 got GET /a "}); got != want {
		t.Errorf("web: got %+v, want %+v", got, want)
	}
	if got := e.metric("ebb_activator_cold_starts_total", "workload", "web"); got != 1 {
		t.Errorf("cold_starts_total = %v, want 1 (one stretch of holding)", got)
	}
}

// TestHeldLargeBody: an 8 MiB body of a held request, over HTTP/1.1 and
// h2c, reaches the pod intact.
func TestHeldLargeBody(t *testing.T) {
	const size = 8 << 20
	for _, proto := range []string{"http1", "h2c"} {
		t.Run(proto, func(t *testing.T) {
			e := newEnv(t, nil)
			if proto == "h2c" {
				e.client = h2cClient(t)
			}
			body := make([]byte, size)
			for i := range body {
				body[i] = byte(i*7 + i>>8)
			}
			want := sha256.Sum256(body)
			b := newBackend(t, "pod-1", func(w http.ResponseWriter, r *http.Request) {
				h := sha256.New()
				n, err := io.Copy(h, r.Body)
				fmt.Fprintf(w, "%d %x %v", n, h.Sum(nil), err)
			})
			done := make(chan response)
			go func() {
				done <- e.do(e.request(context.Background(), "PUT", "web.shop", "/blob", bytes.NewReader(body)))
			}()
			e.waitHeld(shopWeb, 1)
			e.eps.SetReady("shop", "web", b.addr)
			if got, want := <-done, (response{code: 200, body: fmt.Sprintf("%d %x <nil>", size, want)}); got != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}
