// Package promapi is the store client: it asks a Prometheus-compatible HTTP
// API (Prometheus, VictoriaMetrics, Thanos, Mimir) for the signals of package
// queries and decodes its JSON answers.
package promapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/config"
	"github.com/valyala/fastjson"

	"github.com/ebbscale/ebb/queries"
)

// DefaultTimeout is the per-query timeout when PrometheusConfig.Timeout is 0.
const DefaultTimeout = 10 * time.Second

// maxPointsPerQuery is the most points a range query asks for per series:
// Prometheus refuses more than 11,000.
const maxPointsPerQuery = 11000

// errorBodyLimit is how much of a non-2xx response is read for its message;
// maxBodyBytes is the largest answer accepted.
const (
	errorBodyLimit = 64 << 10
	maxBodyBytes   = 512 << 20
)

// StoreError is the error a store answered with, as its API reports it.
type StoreError struct {
	Type    string // errorType: "bad_data", "execution", "timeout", or an HTTP status for VictoriaMetrics
	Message string // error
}

func (e *StoreError) Error() string { return e.Type + ": " + e.Message }

// QueryStats describes one HTTP query, for metrics.
type QueryStats struct {
	Shape    queries.Shape
	Duration time.Duration
	Series   int   // series (instant) or points (range) decoded
	Skipped  int   // NaN or infinite values, and rows without a workload, dropped
	Bytes    int64 // response body bytes read
	Err      error // nil or a *QueryError
}

// PrometheusConfig configures a Prometheus source.
type PrometheusConfig struct {
	// URL is the base of the store's Prometheus API, without /api/v1:
	// http://prometheus:9090, http://vmselect:8481/select/0/prometheus.
	URL string
	// Catalog builds the queries; the zero Catalog means DefaultCatalog().
	Catalog queries.Catalog
	// Timeout bounds each query, and is sent as its timeout parameter;
	// zero means DefaultTimeout.
	Timeout time.Duration
	// HTTP configures authentication, TLS, proxy and headers, as in a
	// Prometheus scrape config; start from config.DefaultHTTPClientConfig.
	// It is ignored when Client is set.
	HTTP config.HTTPClientConfig
	// Client, when set, sends every request (tests inject one).
	Client *http.Client
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
	// Observe, when set, is called after every query. It must be safe for
	// concurrent use.
	Observe func(QueryStats)
}

// Prometheus is a Source that queries a Prometheus-compatible HTTP API
// (Prometheus, VictoriaMetrics, Thanos, Mimir).
type Prometheus struct {
	queryURL  string
	rangeURL  string
	catalog   queries.Catalog
	timeout   time.Duration
	client    *http.Client
	logger    *slog.Logger
	observe   func(QueryStats)
	now       func() time.Time // measures durations only
	maxPoints int
	// what each shape's last answers leave for the next; see answerCache
	cachesMu sync.Mutex
	caches   map[queries.Shape]*answerCache
}

var _ queries.Source = (*Prometheus)(nil)

// NewPrometheus returns a source for the store at cfg.URL.
func NewPrometheus(cfg PrometheusConfig) (*Prometheus, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		shown := cfg.URL
		if err == nil {
			shown = u.Redacted()
		}
		return nil, fmt.Errorf("url %q: want http(s)://host[:port][/path], such as http://prometheus:9090", shown)
	}
	if cfg.Catalog == (queries.Catalog{}) {
		cfg.Catalog = queries.DefaultCatalog()
	}
	if err := cfg.Catalog.Validate(); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("timeout = %v, must not be negative", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	client := cfg.Client
	if client == nil {
		hc := cfg.HTTP
		if err := hc.Validate(); err != nil {
			return nil, fmt.Errorf("http: %w", err)
		}
		if client, err = config.NewClientFromConfig(hc, "ebb_prometheus"); err != nil {
			return nil, fmt.Errorf("http: %w", err)
		}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Prometheus{
		queryURL:  u.JoinPath("api", "v1", "query").String(),
		rangeURL:  u.JoinPath("api", "v1", "query_range").String(),
		catalog:   cfg.Catalog,
		timeout:   cfg.Timeout,
		client:    client,
		logger:    logger,
		observe:   cfg.Observe,
		now:       time.Now,
		maxPoints: maxPointsPerQuery,
		caches:    make(map[queries.Shape]*answerCache),
	}, nil
}

// Instant evaluates shape for every workload at the instant at.
//
// Samples come in no set order. requests yields one sample per workload the
// store has series for; gpu sums
// each workload's pods (see WorkloadOfPod); query yields at most one sample,
// the sum of the result's samples (a scalar is its own value), and none for
// an empty result. NaN and infinite values are dropped. Every error is a
// *QueryError.
func (p *Prometheus) Instant(ctx context.Context, shape queries.Shape, at time.Time) ([]queries.Sample, error) {
	expr, err := p.catalog.Expr(shape)
	if err != nil {
		return nil, &queries.QueryError{Shape: shape, Kind: queries.KindBadData, Err: err}
	}
	switch shape.Signal {
	case queries.SignalRequests:
		return p.requests(ctx, shape, expr, at)
	case queries.SignalGPU:
		return p.gpu(ctx, shape, expr, at)
	case queries.SignalQueue, queries.SignalRunning, queries.SignalKVCache, queries.SignalTTFT:
		// The query maps pods to workloads: one row per workload, as
		// requests' are.
		return p.workloadRows(ctx, shape, expr, at, p.catalog.ModelServerLabels())
	}
	return p.query(ctx, shape, expr, at)
}

func (p *Prometheus) requests(ctx context.Context, shape queries.Shape, expr string, at time.Time) ([]queries.Sample, error) {
	return p.workloadRows(ctx, shape, expr, at, []string{p.catalog.Requests.NamespaceLabel, p.catalog.Requests.WorkloadLabel})
}

// workloadRows decodes an answer of one row per workload, labelled with
// labels (its namespace's and its name's): the requests signal's, and the
// model-server signals' (whose queries map pods to workloads). A row
// without either label is skipped; no row at all is nil.
func (p *Prometheus) workloadRows(ctx context.Context, shape queries.Shape, expr string, at time.Time, labels []string) ([]queries.Sample, error) {
	var samples []queries.Sample
	err := p.withAnswerCache(shape, func(cache *answerCache) (int, error) {
		// The last answer's size is the best guess of this one's.
		if cache.rows > 0 {
			samples = make([]queries.Sample, 0, cache.rows)
		}
		d := &instantDecoder{labels: labels, intern: cache.intern, parser: &cache.parser}
		d.emit = func(vals []string, v float64) {
			if vals[0] == "" || vals[1] == "" {
				d.skipped++
				return
			}
			samples = append(samples, queries.Sample{Workload: queries.WorkloadKey{Namespace: vals[0], Name: vals[1]}, Value: v})
		}
		err := p.instant(ctx, shape, expr, at, d)
		return len(samples), err
	})
	if err != nil {
		return nil, err
	}
	if len(samples) == 0 {
		return nil, nil // no workload has a row
	}
	return samples, nil
}

// podMean accumulates the rows of one pod: one, unless the store reports the
// same pod both under its own and under its exported labels.
type podMean struct {
	sum float64
	n   int
}

func (p *Prometheus) gpu(ctx context.Context, shape queries.Shape, expr string, at time.Time) ([]queries.Sample, error) {
	var pods map[queries.WorkloadKey]podMean
	err := p.withAnswerCache(shape, func(cache *answerCache) (int, error) {
		pods = make(map[queries.WorkloadKey]podMean, cache.rows)
		d := &instantDecoder{labels: p.catalog.GPULabels(), intern: cache.intern, parser: &cache.parser}
		d.emit = func(vals []string, v float64) {
			ns, pod := queries.PodOf(vals)
			if ns == "" || pod == "" {
				d.skipped++
				return
			}
			k := queries.WorkloadKey{Namespace: ns, Name: pod}
			m := pods[k]
			pods[k] = podMean{sum: m.sum + v, n: m.n + 1}
		}
		err := p.instant(ctx, shape, expr, at, d)
		return len(pods), err
	})
	if err != nil {
		return nil, err
	}
	sums := make(map[queries.WorkloadKey]float64, len(pods))
	for k, m := range pods {
		w := queries.WorkloadKey{Namespace: k.Namespace, Name: queries.WorkloadOfPod(k.Name)}
		sums[w] += m.sum / float64(m.n)
	}
	samples := make([]queries.Sample, 0, len(sums))
	for k, v := range sums {
		samples = append(samples, queries.Sample{Workload: k, Value: v})
	}
	return samples, nil
}

func (p *Prometheus) query(ctx context.Context, shape queries.Shape, expr string, at time.Time) ([]queries.Sample, error) {
	var samples []queries.Sample
	d := &instantDecoder{scalar: true}
	d.emit = func(_ []string, v float64) {
		if samples == nil {
			samples = []queries.Sample{{}}
		}
		samples[0].Value += v
	}
	if err := p.instant(ctx, shape, expr, at, d); err != nil {
		return nil, err
	}
	return samples, nil
}

// instant sends one instant query and decodes its result with d.
func (p *Prometheus) instant(ctx context.Context, shape queries.Shape, expr string, at time.Time, d *instantDecoder) error {
	form := url.Values{
		"query":   {expr},
		"time":    {formatTime(at)},
		"timeout": {formatSeconds(p.timeout)},
		// VictoriaMetrics answers a query at a time within its
		// -search.latencyOffset (30s by default) of now as of that long
		// ago, unless nocache=1: without it every wake would wait 30s
		// more. Prometheus, Thanos and Mimir ignore the parameter.
		"nocache": {"1"},
	}
	start := p.now()
	bytes, err := p.do(ctx, shape, p.queryURL, form, d.parser, d)
	st := QueryStats{Shape: shape, Duration: p.now().Sub(start), Series: d.series, Skipped: d.skipped, Bytes: bytes}
	if err != nil {
		st.Err = err
	} else if st.Skipped > 0 {
		p.logger.Debug("dropped samples", "shape", shape.String(), "dropped", st.Skipped, "series", st.Series)
	}
	if p.observe != nil {
		p.observe(st)
	}
	return err
}

// Series is one series of a range query: its labels and its finite points.
type Series struct {
	Labels map[string]string
	Points []Point
}

// Point is one value of a series at one instant.
type Point struct {
	T time.Time
	V float64
}

// Range evaluates expr from start to end every step, in as many queries as
// it takes to ask for at most 11,000 points per series each, and returns the
// series that have points, sorted by labels, with their points in time
// order. NaN and infinite values are dropped. Every error is a *QueryError.
func (p *Prometheus) Range(ctx context.Context, expr string, start, end time.Time, step time.Duration) ([]Series, error) {
	shape := queries.Shape{Signal: queries.SignalQuery, Expr: expr}
	switch {
	case strings.TrimSpace(expr) == "":
		return nil, &queries.QueryError{Shape: shape, Kind: queries.KindBadData, Err: errors.New("empty expression")}
	case step <= 0 || step%time.Millisecond != 0:
		return nil, &queries.QueryError{Shape: shape, Kind: queries.KindBadData, Err: fmt.Errorf("step = %v, must be a positive whole number of milliseconds", step)}
	case end.Before(start):
		return nil, &queries.QueryError{Shape: shape, Kind: queries.KindBadData, Err: fmt.Errorf("end %v is before start %v", end, start)}
	}
	byKey := map[string]*Series{}
	span := step * time.Duration(p.maxPoints-1)
	for from := start; !from.After(end); {
		to := from.Add(span)
		if to.After(end) {
			to = end
		}
		form := url.Values{
			"query":   {expr},
			"start":   {formatTime(from)},
			"end":     {formatTime(to)},
			"step":    {formatSeconds(step)},
			"timeout": {formatSeconds(p.timeout)},
		}
		d := &rangeDecoder{}
		began := p.now()
		n, err := p.do(ctx, shape, p.rangeURL, form, nil, d)
		if p.observe != nil {
			p.observe(QueryStats{Shape: shape, Duration: p.now().Sub(began), Series: d.points, Skipped: d.skipped, Bytes: n, Err: err})
		}
		if err != nil {
			return nil, err
		}
		for _, s := range d.series {
			k := labelsKey(s.Labels)
			if prev, ok := byKey[k]; ok {
				prev.Points = append(prev.Points, s.Points...)
			} else {
				byKey[k] = &s
			}
		}
		from = to.Add(step)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]Series, 0, len(keys))
	for _, k := range keys {
		if s := byKey[k]; len(s.Points) > 0 {
			out = append(out, *s)
		}
	}
	return out, nil
}

// labelsKey renders labels in name order, for merging one series' chunks.
func labelsKey(labels map[string]string) string {
	names := make([]string, 0, len(labels))
	for n := range labels {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte(0)
		b.WriteString(labels[n])
		b.WriteByte(0)
	}
	return b.String()
}

// do POSTs form to endpoint and decodes a successful answer with parser
// (nil: a pooled one) and rd. It returns the body bytes read and a
// *QueryError.
func (p *Prometheus) do(ctx context.Context, shape queries.Shape, endpoint string, form url.Values, parser *fastjson.Parser, rd resultDecoder) (int64, error) {
	qctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	fail := func(kind string, status int, err error) error {
		return &queries.QueryError{Shape: shape, Kind: kind, Status: status, Err: err}
	}
	// failed classifies a transport error by which context ended, if any.
	failed := func(err error) error {
		switch {
		case errors.Is(ctx.Err(), context.Canceled):
			return fail(queries.KindCanceled, 0, err)
		case qctx.Err() != nil:
			return fail(queries.KindTimeout, 0, err)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return fail(queries.KindTimeout, 0, err)
		}
		return fail(queries.KindUnreachable, 0, err)
	}

	req, err := http.NewRequestWithContext(qctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, fail(queries.KindBadData, 0, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// A query changes nothing, so the transport may send it again when the
	// store closed the kept-alive connection just as it went out. Go
	// retries only requests marked idempotent; a nil Idempotency-Key marks
	// it without sending the header.
	req.Header["Idempotency-Key"] = nil
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, failed(err)
	}
	defer resp.Body.Close()

	if resp.StatusCode/100 != 2 {
		b, err := io.ReadAll(io.LimitReader(resp.Body, errorBodyLimit))
		if err != nil {
			return int64(len(b)), failed(err)
		}
		if kind := statusKind(resp.StatusCode, b); kind != "" {
			return int64(len(b)), fail(kind, resp.StatusCode, fmt.Errorf("POST %s answered %s: %q", redact(endpoint), resp.Status, snippet(b)))
		}
		env, ok := parseErrorBody(b)
		if !ok {
			return int64(len(b)), fail(queries.KindHTTPStatus, resp.StatusCode, fmt.Errorf("unexpected response: %q", snippet(b)))
		}
		return int64(len(b)), storeFailure(shape, resp.StatusCode, env)
	}

	buf := getBody()
	defer putBody(buf)
	n, err := buf.ReadFrom(io.LimitReader(resp.Body, maxBodyBytes+1))
	if err != nil {
		return n, failed(err)
	}
	if n > maxBodyBytes {
		return n, fail(queries.KindBadResponse, resp.StatusCode, fmt.Errorf("response larger than %d bytes", maxBodyBytes))
	}
	env, err := decodeResponse(parser, buf.Bytes(), rd)
	if err != nil {
		return n, fail(queries.KindBadResponse, resp.StatusCode, err)
	}
	if env.Status == "error" {
		return n, storeFailure(shape, resp.StatusCode, env)
	}
	if len(env.Warnings) > 0 {
		p.logger.Debug("store warnings", "shape", shape.String(), "warnings", env.Warnings)
	}
	return n, nil
}

// statusKind classifies the answers that say the request went to the
// wrong place or without the right credentials: 404, VictoriaMetrics' 400
// "unsupported path requested", 401 and 403; "" for the others.
func statusKind(status int, body []byte) string {
	switch {
	case status == http.StatusNotFound,
		status == http.StatusBadRequest && bytes.Contains(body, []byte("unsupported path requested")):
		return queries.KindWrongPath
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return queries.KindAuth
	}
	return ""
}

// redact hides a password in u.
func redact(u string) string {
	if pu, err := url.Parse(u); err == nil {
		return pu.Redacted()
	}
	return u
}

// storeFailure turns an error the store answered with into a QueryError:
// a refused query (Prometheus: HTTP 400 bad_data or 422 execution;
// VictoriaMetrics: 400 or 422) is bad_data, a store-side timeout is timeout,
// anything else http_status.
func storeFailure(shape queries.Shape, status int, env envelope) error {
	kind := queries.KindHTTPStatus
	switch {
	case env.ErrorType == "bad_data" || env.ErrorType == "execution" ||
		status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
		kind = queries.KindBadData
	case env.ErrorType == "timeout":
		kind = queries.KindTimeout
	case status/100 == 2:
		kind = queries.KindBadData // an error in a 2xx answer: the store refused the query
	}
	return &queries.QueryError{Shape: shape, Kind: kind, Status: status, Err: &StoreError{Type: env.ErrorType, Message: env.Error}}
}

// formatTime renders t as Unix seconds with milliseconds: "1767225600.000".
func formatTime(t time.Time) string {
	ms := t.UnixMilli()
	sec, frac := ms/1000, ms%1000
	if frac < 0 {
		sec, frac = sec-1, frac+1000
	}
	return strconv.FormatInt(sec, 10) + "." + strconv.FormatInt(1000+frac, 10)[1:]
}

// formatSeconds renders d in seconds: "10", "0.5".
func formatSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}
