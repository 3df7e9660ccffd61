package promapi

import (
	"bufio"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/config"

	"github.com/ebbscale/ebb/queries"
)

// epoch is the fixed instant the tests query at.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// newSource returns a source for an httptest server running h; edit may
// change the config before the source is built.
func newSource(t *testing.T, h http.HandlerFunc, edit ...func(*PrometheusConfig)) *Prometheus {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg := PrometheusConfig{URL: srv.URL, Client: srv.Client()}
	for _, e := range edit {
		e(&cfg)
	}
	p, err := NewPrometheus(cfg)
	if err != nil {
		t.Fatalf("NewPrometheus: %v", err)
	}
	return p
}

// answer returns a handler that answers every request with status and body.
func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
}

// hang returns a handler that never answers: it reads the request (so that
// the server notices when the client goes away) and waits until the client
// does, or the test ends.
func hang(t *testing.T, before func()) http.HandlerFunc {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) }) // runs before the server's Close
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if before != nil {
			before()
		}
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}
}

const emptyVector = `{"status":"success","data":{"resultType":"vector","result":[]}}`

// checkQueryError fails unless err is a *QueryError of kind and status whose
// message contains msg.
func checkQueryError(t *testing.T, err error, kind string, status int, msg string) *queries.QueryError {
	t.Helper()
	var qe *queries.QueryError
	if !errors.As(err, &qe) {
		t.Fatalf("error = %v (%T), want a *QueryError", err, err)
	}
	if qe.Kind != kind || qe.Status != status {
		t.Errorf("error kind, status = %s, %d, want %s, %d (%v)", qe.Kind, qe.Status, kind, status, err)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("error = %q, want it to contain %q", err, msg)
	}
	return qe
}

var requests1m = queries.Shape{Signal: queries.SignalRequests, Window: time.Minute}

func TestInstantSendsForm(t *testing.T) {
	var got struct {
		method, path, contentType string
		form                      map[string][]string
	}
	p := newSource(t, func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Errorf("ParseForm: %v", err)
		}
		got.method, got.path, got.contentType = r.Method, r.URL.Path, r.Header.Get("Content-Type")
		got.form = r.Form
		answer(200, emptyVector)(w, r)
	}, func(c *PrometheusConfig) {
		c.URL += "/select/0/prometheus/?extra_label=team%3Da"
		c.Timeout = 2500 * time.Millisecond
	})
	samples, err := p.Instant(context.Background(), requests1m, epoch.Add(250*time.Millisecond))
	if err != nil || samples != nil {
		t.Fatalf("Instant = %v, %v, want no samples and no error", samples, err)
	}
	if got.method != http.MethodPost || got.path != "/select/0/prometheus/api/v1/query" || got.contentType != "application/x-www-form-urlencoded" {
		t.Errorf("request = %s %s (%s), want POST /select/0/prometheus/api/v1/query (form)", got.method, got.path, got.contentType)
	}
	want := map[string][]string{
		"query":       {mustExpr(t, queries.DefaultCatalog(), requests1m)},
		"time":        {"1767225600.250"},
		"timeout":     {"2.5"},
		"nocache":     {"1"},      // VictoriaMetrics: the data as it is now
		"extra_label": {"team=a"}, // kept from the configured URL
	}
	if !reflect.DeepEqual(got.form, want) {
		t.Errorf("form = %v\nwant %v", got.form, want)
	}
}

func TestNewPrometheusErrors(t *testing.T) {
	f := func(cfg PrometheusConfig, want string) {
		t.Helper()
		_, err := NewPrometheus(cfg)
		if err == nil || err.Error() != want {
			t.Errorf("NewPrometheus(%+v) error = %v, want %q", cfg, err, want)
		}
	}
	f(PrometheusConfig{URL: "prometheus:9090"}, `url "prometheus:9090": want http(s)://host[:port][/path], such as http://prometheus:9090`)
	f(PrometheusConfig{URL: "127.0.0.1:19099"}, `url "127.0.0.1:19099": want http(s)://host[:port][/path], such as http://prometheus:9090`)
	f(PrometheusConfig{URL: "ftp://u:secret@prometheus"}, `url "ftp://u:xxxxx@prometheus": want http(s)://host[:port][/path], such as http://prometheus:9090`)
	f(PrometheusConfig{URL: "http://p", Timeout: -time.Second}, "timeout = -1s, must not be negative")
	f(PrometheusConfig{URL: "http://p", Catalog: queries.Catalog{Requests: queries.DefaultCatalog().Requests}},
		"catalog: gpu.util_metric: empty\ngpu.prof_metric: empty\ngpu.namespace_label: empty\ngpu.pod_label: empty\ngpu.exported_namespace_label: empty\ngpu.exported_pod_label: empty\n"+
			"model_servers.namespace_label: empty\nmodel_servers.pod_label: empty")
	f(PrometheusConfig{URL: "http://p", HTTP: config.HTTPClientConfig{BearerToken: "a", BasicAuth: &config.BasicAuth{Username: "u"}}},
		"http: at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured")
}

func TestInstantInvalidShape(t *testing.T) {
	p := newSource(t, func(w http.ResponseWriter, r *http.Request) { t.Error("no request expected") })
	_, err := p.Instant(context.Background(), queries.Shape{Signal: queries.SignalGPU}, epoch)
	checkQueryError(t, err, queries.KindBadData, 0, "gpu: window = 0s")
}

func TestInstantTimeout(t *testing.T) {
	p := newSource(t, hang(t, nil), func(c *PrometheusConfig) { c.Timeout = 50 * time.Millisecond })
	_, err := p.Instant(context.Background(), requests1m, epoch)
	checkQueryError(t, err, queries.KindTimeout, 0, "timeout")
}

func TestInstantParentDeadline(t *testing.T) {
	p := newSource(t, answer(200, emptyVector))
	ctx, cancel := context.WithDeadline(context.Background(), epoch) // long past
	defer cancel()
	_, err := p.Instant(ctx, requests1m, epoch)
	checkQueryError(t, err, queries.KindTimeout, 0, "deadline exceeded")
}

func TestInstantCanceled(t *testing.T) {
	t.Run("before", func(t *testing.T) {
		p := newSource(t, answer(200, emptyVector))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := p.Instant(ctx, requests1m, epoch)
		checkQueryError(t, err, queries.KindCanceled, 0, "canceled")
	})
	t.Run("while waiting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		p := newSource(t, hang(t, cancel)) // the caller gives up while the store is busy
		_, err := p.Instant(ctx, requests1m, epoch)
		checkQueryError(t, err, queries.KindCanceled, 0, "canceled")
	})
	t.Run("while reading the body", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		var w http.ResponseWriter
		h := hang(t, func() {
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[`)
			w.(http.Flusher).Flush()
			cancel()
		})
		p := newSource(t, func(rw http.ResponseWriter, r *http.Request) { w = rw; h(rw, r) })
		_, err := p.Instant(ctx, requests1m, epoch)
		checkQueryError(t, err, queries.KindCanceled, 0, "canceled")
	})
}

func TestInstantUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	p, err := NewPrometheus(PrometheusConfig{URL: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Instant(context.Background(), requests1m, epoch)
	checkQueryError(t, err, queries.KindUnreachable, 0, "connection refused")
}

func TestInstantAuthAndHeaders(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	headers := &config.Headers{Headers: map[string]config.Header{"X-Scope-OrgID": {Values: []string{"tenant-a"}}}}
	tests := []struct {
		name string
		http config.HTTPClientConfig
		want func(r *http.Request) error
	}{
		{"bearer token file", config.HTTPClientConfig{BearerTokenFile: tokenFile, HTTPHeaders: headers}, func(r *http.Request) error {
			if got := r.Header.Get("Authorization"); got != "Bearer s3cret" {
				return fmt.Errorf("Authorization = %q, want %q", got, "Bearer s3cret")
			}
			return nil
		}},
		{"basic auth", config.HTTPClientConfig{BasicAuth: &config.BasicAuth{Username: "ebb", Password: "pa55"}, HTTPHeaders: headers}, func(r *http.Request) error {
			if u, pw, ok := r.BasicAuth(); !ok || u != "ebb" || pw != "pa55" {
				return fmt.Errorf("basic auth = %q, %q, %v, want ebb, pa55", u, pw, ok)
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newSource(t, func(w http.ResponseWriter, r *http.Request) {
				if err := tt.want(r); err != nil {
					w.WriteHeader(http.StatusUnauthorized)
					fmt.Fprint(w, err)
					return
				}
				if got := r.Header.Get("X-Scope-OrgID"); got != "tenant-a" {
					w.WriteHeader(http.StatusBadRequest)
					fmt.Fprintf(w, "X-Scope-OrgID = %q, want tenant-a", got)
					return
				}
				answer(200, emptyVector)(w, r)
			}, func(c *PrometheusConfig) {
				c.Client = nil
				c.HTTP = tt.http
			})
			if _, err := p.Instant(context.Background(), requests1m, epoch); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestInstantTLSWithCAFile(t *testing.T) {
	srv := httptest.NewUnstartedServer(answer(200, `{"status":"success","data":{"resultType":"scalar","result":[1767225600,"7"]}}`))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below is expected
	srv.StartTLS()
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	shape := queries.Shape{Signal: queries.SignalQuery, Expr: "7"}

	p, err := NewPrometheus(PrometheusConfig{URL: srv.URL, HTTP: config.HTTPClientConfig{TLSConfig: config.TLSConfig{CAFile: caFile}}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Instant(context.Background(), shape, epoch)
	if want := []queries.Sample{{Value: 7}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("with CA file: Instant = %v, %v, want %v", got, err, want)
	}

	p, err = NewPrometheus(PrometheusConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Instant(context.Background(), shape, epoch)
	checkQueryError(t, err, queries.KindUnreachable, 0, "certificate")
}

func TestInstantObserve(t *testing.T) {
	const body = `{"status":"success","data":{"resultType":"vector","result":[` +
		`{"metric":{"destination_workload_namespace":"a","destination_workload":"x"},"value":[1767225600,"1"]},` +
		`{"metric":{"destination_workload_namespace":"a"},"value":[1767225600,"1"]},` +
		`{"metric":{"destination_workload_namespace":"a","destination_workload":"y"},"value":[1767225600,"NaN"]}]}}`
	var mu sync.Mutex
	var stats []QueryStats
	status, respond := 200, body
	p := newSource(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		h := answer(status, respond)
		mu.Unlock()
		h(w, r)
	},
		func(c *PrometheusConfig) {
			c.Observe = func(s QueryStats) { mu.Lock(); stats = append(stats, s); mu.Unlock() }
		})
	tick := epoch
	p.now = func() time.Time { tick = tick.Add(3 * time.Millisecond); return tick }

	if _, err := p.Instant(context.Background(), requests1m, epoch); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	status, respond = 400, `{"status":"error","errorType":"bad_data","error":"parse error"}`
	mu.Unlock()
	_, qerr := p.Instant(context.Background(), requests1m, epoch)

	want := []QueryStats{
		// 3 rows, one without a workload and one NaN.
		{Shape: requests1m, Duration: 3 * time.Millisecond, Series: 3, Skipped: 2, Bytes: int64(len(body))},
		{Shape: requests1m, Duration: 3 * time.Millisecond, Bytes: int64(len(respond)), Err: qerr},
	}
	mu.Lock()
	defer mu.Unlock()
	if !reflect.DeepEqual(stats, want) {
		t.Errorf("observed\n%+v\nwant\n%+v", stats, want)
	}
}

func TestZeroCatalogIsDefault(t *testing.T) {
	var query string
	p := newSource(t, func(w http.ResponseWriter, r *http.Request) {
		query = r.FormValue("query")
		answer(200, emptyVector)(w, r)
	})
	shape := queries.Shape{Signal: queries.SignalGPU, Window: time.Minute}
	if _, err := p.Instant(context.Background(), shape, epoch); err != nil {
		t.Fatal(err)
	}
	if want := mustExpr(t, queries.DefaultCatalog(), shape); query != want {
		t.Errorf("query = %s, want %s", query, want)
	}
}

// matrixHandler answers range queries with a series "a" that has a point at
// every step (the value is the minute of the point) and a series "b" present
// only from epoch+60s, NaN at epoch+90s. It records each request's
// start, end and step in calls.
func matrixHandler(t *testing.T, calls *rangeCalls) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start, end, step := r.FormValue("start"), r.FormValue("end"), r.FormValue("step")
		calls.mu.Lock()
		calls.list = append(calls.list, [3]string{start, end, step})
		calls.mu.Unlock()
		if r.URL.Path != "/api/v1/query_range" || r.FormValue("query") != "up" {
			t.Errorf("request %s query=%q, want /api/v1/query_range query=up", r.URL.Path, r.FormValue("query"))
		}
		var from, to float64
		fmt.Sscan(start, &from)
		fmt.Sscan(end, &to)
		var a, b []string
		for ts := from; ts <= to; ts += 15 {
			min := (ts - 1767225600) / 60
			a = append(a, fmt.Sprintf(`[%g,"%g"]`, ts, min))
			switch {
			case ts == 1767225690:
				b = append(b, fmt.Sprintf(`[%g,"NaN"]`, ts))
			case ts >= 1767225660:
				b = append(b, fmt.Sprintf(`[%g,"%g"]`, ts, -min))
			}
		}
		result := `{"metric":{"__name__":"up","job":"a"},"values":[` + strings.Join(a, ",") + `]}`
		if len(b) > 0 {
			result = `{"metric":{"job":"b"},"values":[` + strings.Join(b, ",") + `]},` + result
		}
		answer(200, `{"status":"success","data":{"resultType":"matrix","result":[`+result+`]}}`)(w, r)
	}
}

type rangeCalls struct {
	mu   sync.Mutex
	list [][3]string
}

func TestRangeChunks(t *testing.T) {
	var calls rangeCalls
	p := newSource(t, matrixHandler(t, &calls))
	p.maxPoints = 4
	got, err := p.Range(context.Background(), "up", epoch, epoch.Add(150*time.Second), 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// 11 points, at most 4 per query: 0–45 s, 60–105 s, 120–150 s.
	wantCalls := [][3]string{
		{"1767225600.000", "1767225645.000", "15"},
		{"1767225660.000", "1767225705.000", "15"},
		{"1767225720.000", "1767225750.000", "15"},
	}
	if !reflect.DeepEqual(calls.list, wantCalls) {
		t.Errorf("queries sent = %v, want %v", calls.list, wantCalls)
	}
	pts := func(from, to int, sign float64, skip int) []Point {
		var out []Point
		for s := from; s <= to; s += 15 {
			if s != skip {
				out = append(out, Point{T: epoch.Add(time.Duration(s) * time.Second), V: sign * float64(s) / 60})
			}
		}
		return out
	}
	want := []Series{
		{Labels: map[string]string{"__name__": "up", "job": "a"}, Points: pts(0, 150, 1, -1)},
		{Labels: map[string]string{"job": "b"}, Points: pts(60, 150, -1, 90)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Range =\n%v\nwant\n%v", got, want)
	}
}

func TestRangeOnePoint(t *testing.T) {
	var calls rangeCalls
	p := newSource(t, matrixHandler(t, &calls))
	got, err := p.Range(context.Background(), "up", epoch, epoch, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := []Series{{Labels: map[string]string{"__name__": "up", "job": "a"}, Points: []Point{{T: epoch, V: 0}}}}
	if !reflect.DeepEqual(got, want) || len(calls.list) != 1 {
		t.Errorf("Range = %v after %d queries, want %v after 1", got, len(calls.list), want)
	}
}

func TestRangeErrors(t *testing.T) {
	p := newSource(t, answer(422, `{"status":"error","errorType":"execution","error":"too many samples"}`))
	f := func(expr string, start, end time.Time, step time.Duration, kind string, status int, msg string) {
		t.Helper()
		_, err := p.Range(context.Background(), expr, start, end, step)
		qe := checkQueryError(t, err, kind, status, msg)
		if want := (queries.Shape{Signal: queries.SignalQuery, Expr: expr}); qe.Shape != want {
			t.Errorf("error shape = %v, want %v", qe.Shape, want)
		}
	}
	f("", epoch, epoch, time.Second, queries.KindBadData, 0, "empty expression")
	f("up", epoch, epoch, 0, queries.KindBadData, 0, "step = 0s, must be a positive whole number of milliseconds")
	f("up", epoch.Add(time.Second), epoch, time.Second, queries.KindBadData, 0, "is before start")
	f("up", epoch, epoch.Add(time.Hour), time.Second, queries.KindBadData, 422, "execution: too many samples")
	// A vector where a matrix belongs.
	p = newSource(t, answer(200, emptyVector))
	f("up", epoch, epoch, time.Second, queries.KindBadResponse, 200, `unexpected resultType "vector"`)
}

func TestFormatTime(t *testing.T) {
	f := func(tm time.Time, want string) {
		t.Helper()
		if got := formatTime(tm); got != want {
			t.Errorf("formatTime(%v) = %s, want %s", tm, got, want)
		}
	}
	f(epoch, "1767225600.000")
	f(epoch.Add(1500*time.Millisecond+999*time.Microsecond), "1767225601.500")
	f(time.Unix(0, 0).Add(-250*time.Millisecond), "-1.750")
}

func ExampleNewPrometheus() {
	// A stand-in for Prometheus: one workload at 2.5 requests per second.
	srv := httptest.NewServer(answer(200, `{"status":"success","data":{"resultType":"vector","result":[`+
		`{"metric":{"destination_workload_namespace":"shop","destination_workload":"web"},"value":[1767225600,"2.5"]}]}}`))
	defer srv.Close()

	src, err := NewPrometheus(PrometheusConfig{URL: srv.URL, Timeout: 5 * time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) // from the caller's clock
	samples, err := src.Instant(context.Background(), queries.Shape{Signal: queries.SignalRequests, Window: time.Minute}, at)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range samples {
		fmt.Println(s.Workload, s.Value)
	}
	// Output:
	// shop/web 2.5
}

// TestInstantRetriesOnAClosedKeptAliveConnection: a store (or a proxy in
// front of it) may close an idle kept-alive connection just as the next
// query goes out on it. The query must be sent again on a new connection,
// not fail the tick as unreachable.
func TestInstantRetriesOnAClosedKeptAliveConnection(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	const body = `{"status":"success","data":{"resultType":"vector","result":[]}}`
	var conns, requests atomic.Int32
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			n := conns.Add(1)
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for i := 0; ; i++ {
					req, err := http.ReadRequest(r)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					requests.Add(1)
					if n == 1 && i == 1 {
						return // the first connection closes on its second request, unanswered
					}
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
				}
			}()
		}
	}()
	p, err := NewPrometheus(PrometheusConfig{URL: "http://" + lis.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	shape := queries.Shape{Signal: queries.SignalRequests, Window: time.Minute}
	for i := range 2 {
		if _, err := p.Instant(context.Background(), shape, epoch); err != nil {
			t.Fatalf("query %d: %v", i+1, err)
		}
	}
	if c, r := conns.Load(), requests.Load(); c != 2 || r != 3 {
		t.Errorf("%d connections and %d requests, want 2 and 3 (the second query sent again on a new connection)", c, r)
	}
}

func mustExpr(t *testing.T, c queries.Catalog, shape queries.Shape) string {
	t.Helper()
	e, err := c.Expr(shape)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
