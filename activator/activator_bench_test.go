package activator

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ebbscale/ebb/activator/activatortest"
	"github.com/ebbscale/ebb/queries"
)

var benchSink int

// reportLatencies reports the throughput and the p50 and p99 of lat.
func reportLatencies(b *testing.B, lat []time.Duration, elapsed time.Duration) {
	b.Helper()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
}

// BenchmarkProxy measures requests through the activator with the backend
// up (proxy mode, nothing held) against a bare httputil.ReverseProxy with
// the same upstream transport settings, in the same run: 16 clients on
// keep-alive connections, a 2-byte answer. Client, proxy and backend share
// the machine.
func BenchmarkProxy(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	defer backend.Close()
	baddr := backend.Listener.Addr().String()

	eps := activatortest.NewEndpoints()
	eps.AddService("shop", "web", shopWeb)
	eps.SetReady("shop", "web", baddr)
	act, err := New(Config{Endpoints: eps})
	if err != nil {
		b.Fatal(err)
	}
	defer act.CloseIdleConnections()

	target, _ := url.Parse("http://" + baddr)
	controlTransport, _ := newTransports(DefaultDialTimeout)
	defer controlTransport.CloseIdleConnections()
	control := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport:     controlTransport,
		FlushInterval: -1,
	}

	for _, tc := range []struct {
		name string
		h    http.Handler
	}{{"activator", act}, {"control", control}} {
		b.Run(tc.name, func(b *testing.B) {
			front := httptest.NewServer(tc.h)
			defer front.Close()
			tr := &http.Transport{MaxIdleConnsPerHost: 64}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			var (
				mu  sync.Mutex
				lat = make([]time.Duration, 0, b.N)
			)
			b.ReportAllocs()
			b.SetParallelism(8)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				mine := make([]time.Duration, 0, 1024)
				for pb.Next() {
					req, _ := http.NewRequest("GET", front.URL+"/", nil)
					req.Host = "web.shop"
					t0 := time.Now()
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					n, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					mine = append(mine, time.Since(t0))
					if resp.StatusCode != 200 || n != 2 {
						b.Errorf("got %d, %d bytes", resp.StatusCode, n)
						return
					}
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			elapsed := time.Since(start)
			b.StopTimer()
			reportLatencies(b, lat, elapsed)
		})
	}
}

// cannedUpstream answers every request 200 "ok" without a network.
type cannedUpstream struct{}

func (cannedUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
	}
	return &http.Response{
		StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"text/plain"}},
		Body:          io.NopCloser(strings.NewReader("ok")),
		ContentLength: 2,
		Request:       r,
	}, nil
}

// BenchmarkHandler measures the activator's handler alone against a bare
// httputil.ReverseProxy, both in front of the same canned upstream and
// called directly: no sockets, no other goroutines, so the figures are the
// handler's own CPU and allocations, steady on a busy machine.
func BenchmarkHandler(b *testing.B) {
	eps := &staticEndpoints{workload: shopWeb, addrs: []string{"127.0.0.1:1"}, changed: make(chan struct{})}
	act, err := New(Config{Endpoints: eps})
	if err != nil {
		b.Fatal(err)
	}
	act.h1 = cannedUpstream{}
	target, _ := url.Parse("http://127.0.0.1:1")
	control := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport:     cannedUpstream{},
		FlushInterval: -1,
	}
	pooled := *control // the control with the activator's buffer pool: the rest of the difference
	pooled.BufferPool = bufferPool{}
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{{"activator", act}, {"control", control}, {"control-pooled", &pooled}} {
		b.Run(tc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/api/items?page=2", nil)
			req.Host = "web.shop.svc.cluster.local"
			req.RemoteAddr = "10.1.2.3:40000"
			req.Header.Set("User-Agent", "bench")
			req.Header.Set("Accept", "*/*")
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				tc.h.ServeHTTP(w, req)
			}
		})
	}
}

// countingDemand signals when the total of held requests reaches want.
type countingDemand struct {
	mu      sync.Mutex
	byW     map[queries.WorkloadKey]int
	total   int
	want    int
	reached chan struct{}
}

func (d *countingDemand) Pending(w queries.WorkloadKey, n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.total += n - d.byW[w]
	d.byW[w] = n
	if d.total == d.want && d.reached != nil {
		close(d.reached)
		d.reached = nil
	}
}

func (d *countingDemand) expect(n int) <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	ch := make(chan struct{})
	d.want, d.reached = n, ch
	if d.total == n {
		close(ch)
		d.reached = nil
	}
	return ch
}

// discardWriter is a ResponseWriter that keeps nothing.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}
func (w *discardWriter) Flush()                      {}

// staticEndpoints is one Service with fixed ready addresses, free of the
// bookkeeping of the test fake.
type staticEndpoints struct {
	workload queries.WorkloadKey
	addrs    []string
	changed  chan struct{}
}

func (s *staticEndpoints) Resolve(namespace, service string, port int32) (queries.WorkloadKey, bool) {
	return s.workload, namespace == s.workload.Namespace && service == s.workload.Name
}

func (s *staticEndpoints) Ready(namespace, service string, port int32) ([]string, <-chan struct{}) {
	return s.addrs, s.changed
}

func BenchmarkParseHost(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		t, err := ParseHost("web.shop.svc.cluster.local:8080", "", "")
		if err != nil {
			b.Fatal(err)
		}
		benchSink += int(t.Port)
	}
}

// BenchmarkHold holds 10,000 requests across 1,000 workloads (10 each), all
// at once, and reports the heap and goroutine stack each held request costs
// the activator: its waiter, its handler goroutine (which net/http would
// run anyway) and the request itself. The connection's own buffers
// (net/http's, about 8 KiB per HTTP/1.1 connection) are not counted. Then
// the clients go away and every request leaves the queues.
func BenchmarkHold(b *testing.B) {
	const workloads, perWorkload = 1000, 10
	const held = workloads * perWorkload
	eps := activatortest.NewEndpoints()
	for i := range workloads {
		name := fmt.Sprintf("w%d", i)
		eps.AddService("shop", name, queries.WorkloadKey{Namespace: "shop", Name: name})
	}
	demand := &countingDemand{byW: make(map[queries.WorkloadKey]int)}
	act, err := New(Config{Endpoints: eps, Demand: demand, MaxPendingTotal: held})
	if err != nil {
		b.Fatal(err)
	}
	reqs := make([]*http.Request, held)
	for i := range reqs {
		reqs[i] = httptest.NewRequest("GET", "/", nil)
		reqs[i].Host = fmt.Sprintf("w%d.shop", i%workloads)
		reqs[i].RemoteAddr = "127.0.0.1:40000"
	}
	var heap, stack float64
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		ctx, cancel := context.WithCancel(context.Background())
		b.StopTimer()
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		all := demand.expect(held)
		var wg sync.WaitGroup
		for _, r := range reqs {
			r := r.WithContext(ctx)
			wg.Go(func() { act.ServeHTTP(&discardWriter{h: http.Header{}}, r) })
		}
		<-all
		b.StopTimer()
		var after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap += float64(after.HeapAlloc) - float64(before.HeapAlloc)
		stack += float64(after.StackInuse) - float64(before.StackInuse)
		b.StartTimer()
		none := demand.expect(0)
		cancel()
		<-none
		wg.Wait()
	}
	b.StopTimer()
	b.ReportMetric(heap/float64(b.N)/held, "heap-B/held")
	b.ReportMetric(stack/float64(b.N)/held, "stack-B/held")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/held, "ns/held")
	benchSink = len(reqs)
}

// firstByteServer accepts connections, notes when the first byte of each
// arrives, and answers every request 200 "ok".
type firstByteServer struct {
	ln    net.Listener
	first chan time.Time
}

func newFirstByteServer(b *testing.B) *firstByteServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &firstByteServer{ln: ln, first: make(chan time.Time, 16)}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(conn)
		}
	}()
	return s
}

func (s *firstByteServer) serve(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	for {
		if _, err := br.Peek(1); err != nil {
			return
		}
		s.first <- time.Now()
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	}
}

// BenchmarkWake measures, for one held request, the time from the moment
// its Service's first endpoint is published ready to the moment the first
// byte of the request reaches the endpoint, a new TCP connection each time.
func BenchmarkWake(b *testing.B) {
	srv := newFirstByteServer(b)
	defer srv.ln.Close()
	eps := activatortest.NewEndpoints()
	eps.AddService("shop", "web", shopWeb)
	demand := activatortest.NewDemand()
	act, err := New(Config{Endpoints: eps, Demand: demand})
	if err != nil {
		b.Fatal(err)
	}
	front := httptest.NewServer(act)
	defer front.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	lat := make([]time.Duration, 0, b.N)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		eps.SetReady("shop", "web")
		act.CloseIdleConnections()
		done := make(chan error, 1)
		go func() {
			req, _ := http.NewRequest("GET", front.URL+"/", nil)
			req.Host = "web.shop"
			resp, err := client.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			done <- err
		}()
		if err := demand.Wait(ctx, shopWeb, 1); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		eps.SetReady("shop", "web", srv.ln.Addr().String())
		t1 := <-srv.first
		b.StopTimer()
		lat = append(lat, t1.Sub(t0))
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[(len(lat)-1)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
}
