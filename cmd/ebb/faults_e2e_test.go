package main

import (
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ebbscale/ebb/queries/storetest"
)

// faultMode is what the fault proxy does with ebb's queries.
type faultMode int32

const (
	passThrough faultMode = iota // forward to the real Prometheus
	storeDown                    // nothing listens on the store's address: connection refused
	storeHangs                   // accept connections, never read or answer
	status500                    // HTTP 500 with Prometheus' error JSON
	malformed                    // HTTP 200 whose JSON breaks off
	notReady                     // HTTP 503 in plain text, as Prometheus answers while it replays its WAL
)

// faultProxy stands between ebb and a real Prometheus at a fixed loopback
// address and injects one fault at a time. The HTTP faults are answered by
// the same server as the pass-through, on the same keep-alive connections;
// storeDown and storeHangs replace that server, so that no connection
// carries a query past the switch.
type faultProxy struct {
	addr     string
	upstream http.Handler
	mode     atomic.Int32

	mu   sync.Mutex
	srv  *http.Server // pass-through and the HTTP faults
	lis  net.Listener // storeHangs
	held []net.Conn   // connections storeHangs accepted
}

func startFaultProxy(t *testing.T, upstream string) *faultProxy {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{addr: l.Addr().String(), upstream: httputil.NewSingleHostReverseProxy(u)}
	p.serveHTTP(l)
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.teardown()
	})
	return p
}

func (p *faultProxy) url() string { return "http://" + p.addr }

// set switches the proxy to mode m.
func (p *faultProxy) set(t *testing.T, m faultMode) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	old := faultMode(p.mode.Swap(int32(m)))
	if !listens(old) && !listens(m) {
		return // the HTTP server stays, its handler answers the new way
	}
	p.teardown()
	if m == storeDown {
		return
	}
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("fault proxy: listen again on %s: %v", p.addr, err)
	}
	if m == storeHangs {
		p.lis = l
		go p.hold(l)
		return
	}
	p.serveHTTP(l)
}

// listens reports whether m needs a listener of its own rather than the
// HTTP server.
func listens(m faultMode) bool { return m == storeDown || m == storeHangs }

func (p *faultProxy) serveHTTP(l net.Listener) {
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go p.srv.Serve(l)
}

// teardown closes whatever listens now; p.mu is held.
func (p *faultProxy) teardown() {
	if p.srv != nil {
		p.srv.Close()
		p.srv = nil
	}
	if p.lis != nil {
		p.lis.Close()
		p.lis = nil
	}
	for _, c := range p.held {
		c.Close()
	}
	p.held = nil
}

// hold accepts connections and never reads from them nor answers.
func (p *faultProxy) hold(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.lis == l {
			p.held = append(p.held, c)
		} else {
			c.Close()
		}
		p.mu.Unlock()
	}
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch faultMode(p.mode.Load()) {
	case status500:
		// What Prometheus answers for errorInternal, e.g. a failing disk.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"status":"error","errorType":"internal","error":"expanding series: read chunk: input/output error"}`)
	case malformed:
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"destination_workload":"cart",`)
	case notReady:
		http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
	default:
		p.upstream.ServeHTTP(w, r)
	}
}

// TestServeFailSafeUnderStoreFaults runs `ebb serve` on a mock clock
// against a real Prometheus (e2eHistory) through a proxy that breaks it in
// one way per subtest. In every case no workload that was active goes idle
// and no idle workload wakes: a failed query keeps the last value while it
// is fresh (--max-staleness), then the state is unknown and IsActive and
// GetMetrics answer Unavailable (KEDA keeps the replicas, and its fallback
// applies to the HPA); a stream sends nothing; /metrics and the log say
// what failed. When the store heals, the workloads return to their real
// state.
func TestServeFailSafeUnderStoreFaults(t *testing.T) {
	prom := storetest.StartPrometheus(t, storetest.PromOptions{History: e2eHistory()})
	const interval = 10 * time.Second
	start := dataStart.Add(10 * time.Minute) // the fault lasts 20m40s; the healed tick is at +30m50s, inside the data
	ctx := context.Background()

	for _, tt := range []struct {
		name string
		mode faultMode
		kind string   // of ebb_query_errors_total
		log  []string // in the "query failed" log line
	}{
		{"store stopped", storeDown, "unreachable", []string{"unreachable: ", "connection refused"}},
		{"store hangs", storeHangs, "timeout", []string{"timeout: ", "context deadline exceeded"}},
		{"HTTP 500 with error JSON", status500, "http_status", []string{"http_status (HTTP 500): internal: expanding series: read chunk: input/output error"}},
		{"malformed JSON", malformed, "bad_response", []string{"bad_response (HTTP 200): "}},
		{"not ready, 503 text", notReady, "http_status", []string{`http_status (HTTP 503): unexpected response: \"Service Unavailable\"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			proxy := startFaultProxy(t, prom.URL)
			clk := clock.NewMock()
			clk.Set(start)
			e := startServe(t, proxy.url(), clk, "--interval="+interval.String(), "--max-staleness=30s", "--query-timeout=1s")
			// shop/cart has 10 req/s; shop/nobody has no series: no traffic.
			cart := soRef("shop", "cart", map[string]string{"signal": "requests", "target": "5"})
			nobody := soRef("shop", "nobody", map[string]string{"signal": "requests", "target": "5"})

			// Pass-through: the real state.
			if v := e.value(t, cart); v != 10 {
				t.Fatalf("cart: %v req/s, want 10", v)
			}
			if v := e.value(t, nobody); v != 0 {
				t.Fatalf("nobody: %v req/s, want 0", v)
			}
			if !e.isActive(t, cart) || e.isActive(t, nobody) {
				t.Fatal("before the fault: want cart active and nobody idle")
			}
			cartStream, nobodyStream := e.streamActive(t, cart), e.streamActive(t, nobody)
			if !cartStream.next(t, 10*time.Second) || nobodyStream.next(t, 10*time.Second) {
				t.Fatal("streams at open: want cart true, nobody false")
			}

			// The first failing tick: the last values are fresh and kept.
			proxy.set(t, tt.mode)
			e.advance(t, interval)
			if !e.isActive(t, cart) {
				t.Error("cart idle at the first failed query")
			}
			if e.isActive(t, nobody) {
				t.Error("nobody active at the first failed query: its last answer (idle) is still fresh")
			}
			if m, err := e.client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: cart}); err != nil || m.MetricValues[0].MetricValueFloat != 10 {
				t.Errorf("GetMetrics of cart 10s into the fault: %v, %v; want the last value, 10", m, err)
			}

			// Past --max-staleness (30s): the state is unknown, no answer.
			e.advance(t, 3*interval)
			for _, r := range []*pb.ScaledObjectRef{cart, nobody} {
				if msg := e.unknown(t, r); !containsAll(msg, []string{"activity unknown: source failing, last good data too old (data 40s old): query requests[1m]: " + tt.kind}) {
					t.Errorf("IsActive %s with data 40s old: %q; want unknown naming the age and %s", r.Name, msg, tt.kind)
				}
			}
			// Far past the default idle-after (15m): neither shut down nor woken.
			e.advance(t, 20*time.Minute)
			e.unknown(t, cart)
			e.unknown(t, nobody)
			_, err := e.client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: cart})
			if msg := status.Convert(err).Message(); status.Code(err) != codes.Unavailable ||
				!strings.Contains(msg, "max staleness 30s") || !strings.Contains(msg, tt.kind) {
				t.Errorf("GetMetrics of cart after 20m: %v; want Unavailable naming the staleness and %s", err, tt.kind)
			}
			// The data is 20m40s old while the snapshot is fresh.
			e.waitMetrics(t, `ebb_query_errors_total{kind="`+tt.kind+`",signal="requests"}`, `ebb_activity{reason="unknown",state="unknown"} 2`,
				"\nebb_data_age_seconds{shape=\"requests[1m]\"} 1240\n", "\nebb_snapshot_age_seconds 0\n")
			logged := false
			for line := range strings.Lines(e.stderr.String()) {
				if strings.Contains(line, `msg="query failed"`) && containsAll(line, tt.log) {
					logged = true
				}
			}
			if !logged {
				t.Errorf("no log line `query failed` with %q\nlog:\n%s", tt.log, e.stderr)
			}

			// Healed: cart has traffic, nobody is idle again at once (the
			// outage was no wake, so --min-uptime does not apply).
			proxy.set(t, passThrough)
			e.advance(t, interval)
			if v := e.value(t, cart); math.Abs(v-10) > 1e-9 || !e.isActive(t, cart) {
				t.Errorf("cart after the store healed: %v req/s, active %v; want 10, true", v, e.isActive(t, cart))
			}
			if e.isActive(t, nobody) {
				t.Error("nobody active after the store healed")
			}
			e.waitMetrics(t, `ebb_activity{reason="traffic",state="active"} 1`, `ebb_activity{reason="idle",state="idle"} 1`,
				"\nebb_data_age_seconds{shape=\"requests[1m]\"} 0\n")
			// What KEDA's push streams saw after their first message:
			// nothing, through the fault and after it.
			if got := nobodyStream.received(); len(got) != 0 {
				t.Errorf("nobody's stream sent %v during or after the fault, want nothing", got)
			}
			if got := cartStream.received(); len(got) != 0 {
				t.Errorf("cart's stream sent %v during or after the fault, want nothing", got)
			}
		})
	}
}

// unknown returns IsActive's message for ref, which must answer Unavailable
// because ebb does not know the workload's state.
func (e *e2e) unknown(t *testing.T, ref *pb.ScaledObjectRef) string {
	t.Helper()
	r, err := e.client.IsActive(context.Background(), ref)
	if msg := status.Convert(err).Message(); status.Code(err) != codes.Unavailable || !strings.Contains(msg, "activity unknown: ") {
		t.Fatalf("IsActive %s/%s: %v, %v; want Unavailable: activity unknown", ref.Namespace, ref.Name, r, err)
	}
	return status.Convert(err).Message()
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// TestServeNoTrafficVersusNoData runs `ebb serve` on the real clock against
// a real Prometheus that scrapes a test exporter every second, and shows
// both sides of the rule that tells "no traffic" from "no data".
//
// How ebb tells them apart (scaler/refresh.go, observe and ErrVanished):
// traffic that stops shows first as a rate falling to 0 on series that
// still exist, so a successful query with a value <= activation is "no
// traffic", and so is a successful query without the workload's series when
// its last value was <= activation (it had none). A workload whose series
// disappear from a successful query while its last value was above
// activation has lost its data (its scrape targets are down, a relabelling
// changed): the value is unknown, not 0. ebb keeps the last value while it
// is younger than --max-staleness, then answers unknown: Unavailable.
// ebb does not query `up`: the store's answer alone decides. (So series
// that vanish while a workload is inside its idleAfter grace with a value
// of 0 count as no traffic: an outage that starts then is not detected.)
func TestServeNoTrafficVersusNoData(t *testing.T) {
	t.Run("no traffic: the counter stops, its series stays, the workload goes idle", func(t *testing.T) {
		t.Parallel()
		e, x := startLive(t)
		x.setTraffic(10)
		e.waitValue(t, liveRef, "> 0", func(v float64) bool { return v > 0 }, 20*time.Second)
		s := e.streamActive(t, liveRef)
		if !s.next(t, 5*time.Second) {
			t.Fatal("StreamIsActive with traffic: false")
		}

		x.setTraffic(0)
		stopped := time.Now()
		// The 10s rate reaches 0 once the last growth leaves its window;
		// idleAfter (3s) later ebb pushes false.
		if s.next(t, 30*time.Second) {
			t.Fatal("StreamIsActive sent true again after the traffic stopped")
		}
		took := time.Since(stopped)
		if took < 3*time.Second {
			t.Errorf("idle %v after the traffic stopped, before idleAfter (3s)", took)
		}
		if n := len(promQuery(t, e.prom, `istio_requests_total{destination_workload="w"}`)); n != 1 {
			t.Errorf("the store has %d series of shop/w, want 1: the target is up", n)
		}
		if v := e.value(t, liveRef); v != 0 {
			t.Errorf("GetMetrics of an idle workload with live series: %v, want 0", v)
		}
		if e.isActive(t, liveRef) {
			t.Error("IsActive true after the traffic stopped")
		}
		e.waitMetrics(t, `ebb_activity{reason="idle",state="idle"} 1`)
		t.Logf("no traffic: idle %.1fs after the counter stopped (rate window 10s, idleAfter 3s)", took.Seconds())
	})

	t.Run("no data: the target goes down, its series vanish, the workload stays active", func(t *testing.T) {
		t.Parallel()
		e, x := startLive(t)
		x.setTraffic(10)
		e.waitValue(t, liveRef, "> 0", func(v float64) bool { return v > 0 }, 20*time.Second)
		s := e.streamActive(t, liveRef)
		if !s.next(t, 5*time.Second) {
			t.Fatal("StreamIsActive with traffic: false")
		}

		// Prometheus marks the series stale at the first failed scrape; the
		// 10s rate keeps the samples before it until they leave the window,
		// then ebb's query succeeds with no row for shop/w. That is missing
		// data: the last value (10/s) stays for --max-staleness (3s), then
		// GetMetrics and IsActive are Unavailable: unknown.
		x.down.Store(true)
		down := time.Now()
		deadline := down.Add(30 * time.Second)
		for {
			_, err := e.client.GetMetrics(context.Background(), &pb.GetMetricsRequest{ScaledObjectRef: liveRef})
			if status.Code(err) == codes.Unavailable && strings.Contains(err.Error(), "series vanished while the workload was active") &&
				strings.Contains(err.Error(), "max staleness 3s") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GetMetrics 30s after the target went down: %v; want Unavailable: series vanished, max staleness 3s", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		stale := time.Since(down)
		if up := promQuery(t, e.prom, `up{job="target"}`); len(up) != 1 || up[0] != 0 {
			t.Errorf("up of the target: %v, want [0]", up)
		}
		if rows := promQuery(t, e.prom, `rate(istio_requests_total{destination_workload="w"}[10s])`); len(rows) != 0 {
			t.Errorf("rate of shop/w with the target down: %v, want an empty vector", rows)
		}

		// Four idle periods without data since the series vanished (3s of
		// staleness, then 9s): nothing pushed, ever.
		hold := 3 * 3 * time.Second
		select {
		case v, ok := <-s.msgs:
			t.Fatalf("StreamIsActive sent %v (open %v) while the store had no data for shop/w", v, ok)
		case <-time.After(hold):
		}
		if msg := e.unknown(t, liveRef); !strings.Contains(msg, "series vanished while the workload was active") {
			t.Errorf("IsActive while the store has no data: %q, want unknown naming the vanished series", msg)
		}
		e.waitMetrics(t, `ebb_activity{reason="unknown",state="unknown"} 1`)

		// The target answers again: the series and its rate come back.
		x.down.Store(false)
		e.waitValue(t, liveRef, "> 0", func(v float64) bool { return v > 0 }, 20*time.Second)
		if got := s.received(); slices.Contains(got, false) {
			t.Errorf("StreamIsActive sent false: %v", got)
		}
		t.Logf("no data: GetMetrics Unavailable (series vanished) %.1fs after the target went down; unknown %.0fs after that", stale.Seconds(), hold.Seconds())
	})
}
