package activator

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbscale/ebb/activator/activatortest"
	"github.com/ebbscale/ebb/queries"
)

var (
	shopWeb = queries.WorkloadKey{Namespace: "shop", Name: "web"}
	shopAPI = queries.WorkloadKey{Namespace: "shop", Name: "api"}
)

// env is an activator serving on loopback in front of fake Endpoints with
// Service shop/web (workload shop/web) and shop/api (workload shop/api).
type env struct {
	t      *testing.T
	eps    *activatortest.Endpoints
	demand *activatortest.Demand
	reg    *prometheus.Registry
	act    *Activator
	addr   string // the activator's "ip:port"
	client *http.Client
}

func newEnv(t *testing.T, configure func(*Config)) *env {
	t.Helper()
	e := &env{t: t, eps: activatortest.NewEndpoints(), demand: activatortest.NewDemand(), reg: prometheus.NewRegistry()}
	e.eps.AddService("shop", "web", shopWeb)
	e.eps.AddService("shop", "api", shopAPI)
	cfg := Config{Endpoints: e.eps, Demand: e.demand, Registerer: e.reg}
	if configure != nil {
		configure(&cfg)
	}
	act, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.act = act
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	srv := act.Server("")
	go srv.Serve(ln)
	tr := &http.Transport{MaxIdleConnsPerHost: 100}
	e.client = &http.Client{Transport: tr}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
		act.CloseIdleConnections()
	})
	return e
}

// request returns a request to the activator for host.
func (e *env) request(ctx context.Context, method, host, path string, body io.Reader) *http.Request {
	e.t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+e.addr+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Host = host
	return req
}

// response is what a client got.
type response struct {
	code       int
	body       string
	retryAfter string
	err        error
}

func (e *env) do(req *http.Request) response {
	resp, err := e.client.Do(req)
	if err != nil {
		return response{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, body: string(b), retryAfter: resp.Header.Get("Retry-After"), err: err}
}

// waitHeld waits until the activator has told Demand that w holds n.
func (e *env) waitHeld(w queries.WorkloadKey, n int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.demand.Wait(ctx, w, n); err != nil {
		got, _ := e.act.Holding(w)
		e.t.Fatalf("%v holds %d requests, want %d", w, got, n)
	}
}

// counter returns a metric's value from the registry.
func (e *env) metric(name string, labels ...string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			want := map[string]string{}
			for i := 0; i+1 < len(labels); i += 2 {
				want[labels[i]] = labels[i+1]
			}
			for _, lp := range m.GetLabel() {
				if v, ok := want[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

// backend is a loopback HTTP/1.1 and h2c server standing in for a pod. It
// counts requests by body and answers "<name> got <method> <path> <body>".
type backend struct {
	name   string
	srv    *httptest.Server
	addr   string
	mu     sync.Mutex
	bodies map[string]int
	order  []string
	n      atomic.Int64
}

func newBackend(t *testing.T, name string, h http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{name: name, bodies: make(map[string]int)}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				t.Errorf("backend %s: reading body: %v", name, err)
			}
			b.record(string(body))
			fmt.Fprintf(w, "%s got %s %s %s", name, r.Method, r.URL.Path, body)
		}
	}
	b.srv = httptest.NewUnstartedServer(h)
	b.srv.Config.Protocols = new(http.Protocols)
	b.srv.Config.Protocols.SetHTTP1(true)
	b.srv.Config.Protocols.SetUnencryptedHTTP2(true)
	b.srv.Start()
	b.addr = b.srv.Listener.Addr().String()
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) record(body string) {
	b.n.Add(1)
	b.mu.Lock()
	b.bodies[body]++
	b.order = append(b.order, body)
	b.mu.Unlock()
}

// deadAddr returns a loopback address that refuses connections.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestNewConfigErrors(t *testing.T) {
	_, err := New(Config{MaxPending: -1, HoldTimeout: -time.Second, DefaultNamespace: "Bad_NS", WakeConcurrency: -2})
	want := "activator config: Endpoints is nil\n" +
		`DefaultNamespace = "Bad_NS", must be a DNS-1123 label` + "\n" +
		"MaxPending = -1, must be >= 0\n" +
		"WakeConcurrency = -2, must be >= 0\n" +
		"HoldTimeout = -1s, must be >= 0"
	if err == nil || err.Error() != want {
		t.Fatalf("New: got %v, want %q", err, want)
	}
}

func TestForwardHTTP1(t *testing.T) {
	e := newEnv(t, nil)
	b := newBackend(t, "pod-1", nil)
	e.eps.SetReady("shop", "web", b.addr)
	for _, host := range []string{"web.shop", "web.shop:8080", "web.shop.svc", "web.shop.svc.cluster.local", "web.shop.svc.cluster.local.:80"} {
		got := e.do(e.request(context.Background(), "POST", host, "/x/y?z=1", strings.NewReader("hello "+host)))
		want := response{code: 200, body: "pod-1 got POST /x/y hello " + host}
		if got != want {
			t.Errorf("%s: got %+v, want %+v", host, got, want)
		}
	}
	if got := b.n.Load(); got != 5 {
		t.Errorf("backend saw %d requests, want 5", got)
	}
	if got := e.metric("ebb_activator_requests_total", "namespace", "shop", "workload", "web"); got != 5 {
		t.Errorf("requests_total = %v, want 5", got)
	}
	if got := e.metric("ebb_activator_forwarded_total", "workload", "web", "held", "false"); got != 5 {
		t.Errorf("forwarded_total{held=false} = %v, want 5", got)
	}
	if got := e.metric("ebb_activator_cold_starts_total", "workload", "web"); got != 0 {
		t.Errorf("cold_starts_total = %v, want 0", got)
	}
	if calls := e.demand.Calls(); len(calls) != 0 {
		t.Errorf("Demand told %v, want nothing", calls)
	}
}

func TestDefaultNamespace(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DefaultNamespace = "shop" })
	b := newBackend(t, "pod-1", nil)
	e.eps.SetReady("shop", "web", b.addr)
	got := e.do(e.request(context.Background(), "GET", "web", "/", nil))
	if want := (response{code: 200, body: "pod-1 got GET / "}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestUnknownHost(t *testing.T) {
	e := newEnv(t, nil)
	b := newBackend(t, "pod-1", nil)
	e.eps.SetReady("shop", "web", b.addr)
	f := func(host, want string) {
		t.Helper()
		got := e.do(e.request(context.Background(), "GET", host, "/", nil))
		if got.code != 404 || got.body != want {
			t.Errorf("%q: got %d %q, want 404 %q", host, got.code, got.body, want)
		}
	}
	f("nope.shop", `ebb activator: unknown host "nope.shop": no Service shop/nope held by ebb`+"\n")
	f("web.other:81", `ebb activator: unknown host "web.other:81": no Service other/web:81 held by ebb`+"\n")
	f("web", `ebb activator: unknown host "web": no namespace, and no default namespace`+"\n")
	f("www.example.com", `ebb activator: unknown host "www.example.com": not a Service name: want svc, svc.ns, svc.ns.svc or svc.ns.svc.cluster.local`+"\n")
	f(b.addr, `ebb activator: unknown host "`+b.addr+`": an IP address, not a Service name`+"\n")
	if got := e.metric("ebb_activator_rejected_total", "reason", "unknown_host"); got != 5 {
		t.Errorf("rejected_total{unknown_host} = %v, want 5", got)
	}
	if got := b.n.Load(); got != 0 {
		t.Errorf("backend saw %d requests, want 0", got)
	}
}

// TestNotAnOpenProxy sends what a client of an open proxy would send: an
// absolute URI and CONNECT naming the backend itself. Go's server takes the
// Host from the URI, which is an address: refused, and the backend is never
// contacted.
func TestNotAnOpenProxy(t *testing.T) {
	e := newEnv(t, nil)
	b := newBackend(t, "pod-1", nil)
	e.eps.SetReady("shop", "web", b.addr)
	for _, raw := range []string{
		"GET http://" + b.addr + "/secret HTTP/1.1\r\nHost: web.shop\r\n\r\n",
		"CONNECT " + b.addr + " HTTP/1.1\r\nHost: web.shop\r\n\r\n",
		"GET http://localhost:" + strings.Split(b.addr, ":")[1] + "/ HTTP/1.1\r\nHost: web.shop\r\n\r\n",
	} {
		conn, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, raw)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
		conn.Close()
		if resp.StatusCode != 404 || !strings.HasPrefix(string(body), "ebb activator: unknown host") {
			t.Errorf("%q: got %d %q, want 404 unknown host", raw, resp.StatusCode, body)
		}
	}
	if got := b.n.Load(); got != 0 {
		t.Errorf("backend saw %d requests, want 0", got)
	}
}

func TestHeaders(t *testing.T) {
	e := newEnv(t, nil)
	var got http.Header
	var gotHost string
	b := newBackend(t, "pod-1", func(w http.ResponseWriter, r *http.Request) {
		got, gotHost = r.Header.Clone(), r.Host
		w.Header().Set("Connection", "X-Resp-Hop")
		w.Header().Set("X-Resp-Hop", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Resp-End", "1")
	})
	e.eps.SetReady("shop", "web", b.addr)
	e.client.Transport.(*http.Transport).DisableCompression = true // the client asks for no gzip
	req := e.request(context.Background(), "GET", "web.shop", "/", nil)
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "1")
	req.Header.Set("Keep-Alive", "timeout=5")
	req.Header.Set("Proxy-Authorization", "Basic eDp5")
	req.Header.Set("X-Forwarded-For", "10.0.0.1")
	req.Header.Set("Forwarded", "for=10.0.0.1;proto=https")
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("X-End", "kept")
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for k, want := range map[string]string{
		"X-Hop":               "",
		"Keep-Alive":          "",
		"Proxy-Authorization": "",
		"Connection":          "",
		"X-End":               "kept",
		"X-Forwarded-For":     "10.0.0.1, 127.0.0.1",
		"Forwarded":           `for=10.0.0.1;proto=https, for=127.0.0.1;host="web.shop";proto=http`,
		"X-Forwarded-Proto":   "https",
		"X-Forwarded-Host":    "web.shop",
		"Accept-Encoding":     "", // nor does the activator on its behalf
	} {
		if v := got.Get(k); v != want {
			t.Errorf("upstream %s = %q, want %q", k, v, want)
		}
	}
	if gotHost != "web.shop" {
		t.Errorf("upstream Host = %q, want web.shop", gotHost)
	}
	for k, want := range map[string]string{"X-Resp-Hop": "", "Keep-Alive": "", "X-Resp-End": "1"} {
		if v := resp.Header.Get(k); v != want {
			t.Errorf("response %s = %q, want %q", k, v, want)
		}
	}
}

// TestUpstreamErrorOnce: a backend that reads the request and hangs up gets
// it once; the client gets 502 naming the workload.
func TestUpstreamErrorOnce(t *testing.T) {
	e := newEnv(t, nil)
	var n atomic.Int64
	b := newBackend(t, "pod-1", func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		io.ReadAll(r.Body)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		conn.Close()
	})
	e.eps.SetReady("shop", "web", b.addr)
	got := e.do(e.request(context.Background(), "POST", "web.shop", "/", strings.NewReader("once")))
	if got.code != 502 || !strings.HasPrefix(got.body, "ebb activator: workload shop/web: ") {
		t.Errorf("got %+v, want 502 naming shop/web", got)
	}
	if n.Load() != 1 {
		t.Errorf("backend saw %d requests, want 1", n.Load())
	}
	if got := e.metric("ebb_activator_rejected_total", "workload", "web", "reason", "upstream_error"); got != 1 {
		t.Errorf("rejected_total{upstream_error} = %v, want 1", got)
	}
}

func TestSetForwarded(t *testing.T) {
	f := func(remote string, in http.Header, want http.Header) {
		t.Helper()
		r := &http.Request{Host: "web.shop:8080", RemoteAddr: remote, Header: in}
		out := http.Header{}
		setForwarded(r, out)
		if fmt.Sprint(out) != fmt.Sprint(want) {
			t.Errorf("RemoteAddr %s, %v:\ngot  %v\nwant %v", remote, in, out, want)
		}
	}
	f("10.0.0.9:5555", http.Header{}, http.Header{
		"X-Forwarded-Host":  {"web.shop:8080"},
		"X-Forwarded-Proto": {"http"},
		"X-Forwarded-For":   {"10.0.0.9"},
		"Forwarded":         {`for=10.0.0.9;host="web.shop:8080";proto=http`},
	})
	f("[fd00::9]:5555", http.Header{
		"X-Forwarded-For": {"1.1.1.1", "2.2.2.2"},
		"Forwarded":       {"for=1.1.1.1", `for="[2001:db8::1]"`},
	}, http.Header{
		"X-Forwarded-Host":  {"web.shop:8080"},
		"X-Forwarded-Proto": {"http"},
		"X-Forwarded-For":   {"1.1.1.1, 2.2.2.2, fd00::9"},
		"Forwarded":         {`for=1.1.1.1, for="[2001:db8::1]", for="[fd00::9]";host="web.shop:8080";proto=http`},
	})
	f("pipe", http.Header{"X-Forwarded-Proto": {"https"}}, http.Header{ // no IP: no For
		"X-Forwarded-Host":  {"web.shop:8080"},
		"X-Forwarded-Proto": {"https"},
	})
}

func TestNewDefaults(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := New(Config{Endpoints: activatortest.NewEndpoints(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	c := a.cfg
	got := fmt.Sprintf("%v %v %v %v %v %v %v %v", c.ClusterDomain, c.MaxPending, c.MaxPendingTotal, c.HoldTimeout, c.WakeConcurrency, c.RetryAfter, c.DialTimeout, a.retryAfter)
	if want := "cluster.local 1000 10000 5m0s 100 5s 5s 5"; got != want {
		t.Errorf("defaults %q, want %q", got, want)
	}
	_, err = New(Config{Endpoints: activatortest.NewEndpoints(), Registerer: reg})
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Errorf("second New on one registry: %v, want prometheus.AlreadyRegisteredError", err)
	}
}

// finder is the fake Endpoints that also places bare Service names, as the
// kube edge does for the Services it has switched to the activator.
type finder struct {
	*activatortest.Endpoints
	namespaces map[string]string // service -> namespace; absent: none or several
}

func (f finder) Namespace(service string) (string, bool) {
	ns, ok := f.namespaces[service]
	return ns, ok
}

var _ NamespaceFinder = finder{}

// TestBareServiceName: "Host: web", as a client calling http://web from its
// own namespace sends it, reaches the one held Service called web; a name
// the Endpoints cannot place is still a 404 that says why.
func TestBareServiceName(t *testing.T) {
	e := newEnv(t, nil)
	f := finder{e.eps, map[string]string{"web": "shop"}}
	act, err := New(Config{Endpoints: f, Demand: e.demand})
	if err != nil {
		t.Fatal(err)
	}
	b := newBackend(t, "pod-1", nil)
	e.eps.SetReady("shop", "web", b.addr)
	for _, host := range []string{"web", "WEB:80"} {
		rec := httptest.NewRecorder()
		act.ServeHTTP(rec, httptest.NewRequest("GET", "http://"+host+"/", nil))
		if got, want := rec.Code, 200; got != want || rec.Body.String() != "pod-1 got GET / " {
			t.Errorf("Host %q: got %d %q, want 200 from pod-1", host, got, rec.Body.String())
		}
	}
	rec := httptest.NewRecorder()
	act.ServeHTTP(rec, httptest.NewRequest("GET", "http://api/", nil))
	if want := `ebb activator: unknown host "api": no namespace, and no default namespace` + "\n"; rec.Code != 404 || rec.Body.String() != want {
		t.Errorf("Host api (not placed): got %d %q, want 404 %q", rec.Code, rec.Body.String(), want)
	}
}
