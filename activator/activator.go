package activator

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ebbscale/ebb/queries"
)

// Endpoints is what the activator needs from the cluster; the kube edge implements it.
type Endpoints interface {
	// Resolve returns the workload behind Service namespace/name, and the
	// Service port number to use when the Host named none (port 0); ok is false
	// when ebb holds no such Service.
	Resolve(namespace, service string, port int32) (workload queries.WorkloadKey, ok bool)
	// Ready returns the ready addresses ("ip:port", the pod's target port) of
	// the Service's own endpoints for the Service port the Host named (0: the
	// Service's only port, or the port named "http", else its first port),
	// and a channel that is closed when they may have changed.
	Ready(namespace, service string, port int32) (addrs []string, changed <-chan struct{})
}

// NamespaceFinder is implemented by Endpoints that can place a bare
// Service name: a client that calls http://web from its own namespace sends
// "Host: web", which names no namespace. The kube edge answers with the
// namespace of the one Service of that name it has switched to the
// activator; ok is false when it holds none or several.
type NamespaceFinder interface {
	Namespace(service string) (namespace string, ok bool)
}

// Demand learns of held requests as they come and go, so that the scaler
// answers a workload active the moment a request waits for it.
type Demand interface {
	// Pending is called with the workload's number of held requests each time it changes.
	Pending(w queries.WorkloadKey, n int)
}

// Defaults of Config.
const (
	DefaultClusterDomain   = "cluster.local"
	DefaultMaxPending      = 1000
	DefaultMaxPendingTotal = 10000
	DefaultHoldTimeout     = 5 * time.Minute
	DefaultWakeConcurrency = 100
	DefaultRetryAfter      = 5 * time.Second
	DefaultDialTimeout     = 5 * time.Second
)

// Config configures an Activator. Zero values take the defaults above.
type Config struct {
	// Endpoints resolves Services and lists their ready addresses. Required.
	Endpoints Endpoints
	// Demand, when set, is told of every change of a workload's held count.
	// It is called with the activator's lock held: it must return quickly
	// and must not call back into the Activator.
	Demand Demand

	// DefaultNamespace is the namespace of a bare "svc" Host. Empty: a bare
	// name is placed by Endpoints when it is a NamespaceFinder (the one
	// switched Service of that name), else refused (404), since the
	// activator cannot know the caller's namespace.
	DefaultNamespace string
	// ClusterDomain is the cluster's DNS domain (default cluster.local).
	ClusterDomain string

	// MaxPending bounds the held requests of one workload (default 1000).
	MaxPending int
	// MaxPendingTotal bounds the held requests of all workloads (default 10000).
	MaxPendingTotal int
	// HoldTimeout is how long a request is held at most (default 5m).
	HoldTimeout time.Duration
	// HoldTimeoutFor, when set, returns a workload's own hold timeout
	// (the ebb.dev/hold-timeout annotation); 0 means HoldTimeout.
	HoldTimeoutFor func(w queries.WorkloadKey) time.Duration
	// WakeConcurrency bounds, per Service, the held requests on their way
	// upstream at once: a released request holds its slot until it has been
	// written upstream in full (body included) or answered, whichever comes
	// first (default 100). It spares a pod that just became ready a
	// stampede of connections; it does not bound the pod's own concurrency.
	WakeConcurrency int
	// RetryAfter is the Retry-After of 503 answers (default 5s, whole seconds).
	RetryAfter time.Duration
	// DialTimeout bounds a TCP connect to an endpoint (default 5s).
	DialTimeout time.Duration

	// Clock times holds (default: the real clock).
	Clock clock.Clock
	// Logger gets a line when a workload starts and stops holding (default: none).
	Logger *slog.Logger
	// Registerer, when set, registers the activator's metrics.
	Registerer prometheus.Registerer
}

// validate fills defaults and checks c, one message per bad field.
func (c *Config) validate() error {
	var errs []error
	if c.Endpoints == nil {
		errs = append(errs, errors.New("Endpoints is nil"))
	}
	if c.DefaultNamespace != "" && !isDNSLabel(c.DefaultNamespace) {
		errs = append(errs, fmt.Errorf("DefaultNamespace = %q, must be a DNS-1123 label", c.DefaultNamespace))
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = DefaultClusterDomain
	}
	intField := func(name string, v *int, def int) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0:
			errs = append(errs, fmt.Errorf("%s = %d, must be >= 0", name, *v))
		}
	}
	durField := func(name string, v *time.Duration, def time.Duration) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0:
			errs = append(errs, fmt.Errorf("%s = %v, must be >= 0", name, *v))
		}
	}
	intField("MaxPending", &c.MaxPending, DefaultMaxPending)
	intField("MaxPendingTotal", &c.MaxPendingTotal, DefaultMaxPendingTotal)
	intField("WakeConcurrency", &c.WakeConcurrency, DefaultWakeConcurrency)
	durField("HoldTimeout", &c.HoldTimeout, DefaultHoldTimeout)
	durField("RetryAfter", &c.RetryAfter, DefaultRetryAfter)
	durField("DialTimeout", &c.DialTimeout, DefaultDialTimeout)
	if c.Clock == nil {
		c.Clock = clock.New()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return errors.Join(errs...)
}

// Activator is the request-holding proxy. It is an http.Handler; see the
// package documentation.
type Activator struct {
	cfg        Config
	retryAfter string
	metrics    *metrics
	proxy      *httputil.ReverseProxy
	h1, h2c    http.RoundTripper // *http.Transport but in benchmarks of the handler alone
	rr         atomic.Uint32     // round robin over ready addresses

	held atomic.Int64 // requests held now, all workloads; 0 keeps the lock off the direct path

	mu        sync.Mutex
	total     int // == held, under mu
	workloads map[queries.WorkloadKey]*holding
	queues    map[Target]*queue
}

var _ http.Handler = (*Activator)(nil)

// New returns an Activator configured by cfg.
func New(cfg Config) (*Activator, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("activator config: %w", err)
	}
	a := &Activator{
		cfg:        cfg,
		retryAfter: strconv.Itoa(int((cfg.RetryAfter + time.Second - 1) / time.Second)),
		workloads:  make(map[queries.WorkloadKey]*holding),
		queues:     make(map[Target]*queue),
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	a.metrics = m
	a.h1, a.h2c = newTransports(cfg.DialTimeout)
	a.proxy = &httputil.ReverseProxy{
		Rewrite:       rewrite,
		Transport:     (*transport)(a),
		FlushInterval: -1,
		BufferPool:    bufferPool{},
		ErrorHandler:  a.proxyError,
		ErrorLog:      slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	return a, nil
}

// bufferPool lends the proxy its 32 KiB copy buffers.
type bufferPool struct{}

var copyBuffers = sync.Pool{New: func() any { return new([32 << 10]byte) }}

func (bufferPool) Get() []byte  { return copyBuffers.Get().(*[32 << 10]byte)[:] }
func (bufferPool) Put(b []byte) { copyBuffers.Put((*[32 << 10]byte)(b)) }

// newTransports returns the HTTP/1.1 and the h2c (prior knowledge)
// transports to endpoints. Neither uses a proxy from the environment, and
// neither asks for gzip on the client's behalf (it would then decompress
// what the client gets).
func newTransports(dialTimeout time.Duration) (h1, h2c *http.Transport) {
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	h1 = &http.Transport{
		DialContext:         dialer.DialContext,
		MaxIdleConns:        1000,
		MaxIdleConnsPerHost: 100,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	h1.Protocols = new(http.Protocols)
	h1.Protocols.SetHTTP1(true)
	h2c = &http.Transport{
		DialContext:        dialer.DialContext,
		IdleConnTimeout:    90 * time.Second,
		DisableCompression: true,
	}
	h2c.Protocols = new(http.Protocols)
	h2c.Protocols.SetUnencryptedHTTP2(true)
	return h1, h2c
}

// Server returns an http.Server for the activator on addr: HTTP/1.1 and
// HTTP/2 over cleartext, no write or read timeout (held requests and
// streams last), a bound on reading request headers, and room on one
// HTTP/2 connection for every request ebb may hold.
func (a *Activator) Server(addr string) *http.Server {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return &http.Server{
		Addr:      addr,
		Handler:   a,
		Protocols: p,
		// A held request finds its connection, to notice a client that
		// goes away before its body is read.
		ConnContext: withConn,
		// A sidecar or an ingress multiplexes many clients over few HTTP/2
		// connections: let one carry as many held requests as ebb may hold.
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: max(1000, a.cfg.MaxPendingTotal)},
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.cfg.Logger.Handler(), slog.LevelDebug),
	}
}

// CloseIdleConnections closes the idle connections to endpoints.
func (a *Activator) CloseIdleConnections() {
	for _, rt := range []http.RoundTripper{a.h1, a.h2c} {
		if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	}
}

// Holding returns the number of requests held for w now and, when n > 0,
// since when w has held requests without a break.
func (a *Activator) Holding(w queries.WorkloadKey) (n int, since time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if h := a.workloads[w]; h != nil {
		return h.n, h.episode.since
	}
	return 0, time.Time{}
}

// ServeHTTP resolves r's Host to a Service and forwards r to it, holding it
// while the Service has no ready endpoint.
func (a *Activator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t, err := ParseHost(r.Host, a.cfg.DefaultNamespace, a.cfg.ClusterDomain)
	if errors.Is(err, ErrNoNamespace) {
		if nf, ok := a.cfg.Endpoints.(NamespaceFinder); ok {
			name, _, _ := strings.Cut(r.Host, ":")
			if ns, ok := nf.Namespace(strings.ToLower(name)); ok {
				t, err = ParseHost(r.Host, ns, a.cfg.ClusterDomain)
			}
		}
	}
	if err != nil {
		a.metrics.unknownHost.Inc()
		reply(w, http.StatusNotFound, "", "ebb activator: unknown %v\n", err)
		return
	}
	wl, ok := a.cfg.Endpoints.Resolve(t.Namespace, t.Service, t.Port)
	if !ok {
		a.metrics.unknownHost.Inc()
		reply(w, http.StatusNotFound, "", "ebb activator: unknown host %q: no Service %s held by ebb\n", r.Host, t)
		return
	}
	wm := a.metrics.workload(wl)
	wm.requests.Inc()
	f := &forward{a: a, target: t, workload: wl, m: wm, h2: r.ProtoMajor == 2, start: a.cfg.Clock.Now()}
	checked := false
	if a.held.Load() == 0 { // nothing held anywhere: no queue to stand in
		if addrs, _ := a.cfg.Endpoints.Ready(t.Namespace, t.Service, t.Port); len(addrs) > 0 {
			f.addrs = addrs
			a.forward(w, r, f)
			return
		}
		checked = true
	}
	if !a.hold(w, r, f, checked) {
		return
	}
	a.forward(w, r, f)
}

// holdTimeout returns w's hold timeout.
func (a *Activator) holdTimeout(w queries.WorkloadKey) time.Duration {
	if a.cfg.HoldTimeoutFor != nil {
		if d := a.cfg.HoldTimeoutFor(w); d > 0 {
			return d
		}
	}
	return a.cfg.HoldTimeout
}

// Reasons a request is answered by the activator itself, as metric labels.
const (
	reasonOverflow    = "overflow"
	reasonTimeout     = "timeout"
	reasonClientGone  = "client_gone"
	reasonUnknownHost = "unknown_host"
	reasonUpstream    = "upstream_error"
)

// reject answers 503 for workload w and reason.
func (a *Activator) reject(rw http.ResponseWriter, f *forward, reason, why string) {
	f.m.rejected(reason).Inc()
	reply(rw, http.StatusServiceUnavailable, a.retryAfter, "ebb activator: workload %s: %s\n", f.workload, why)
}

// reply writes a short plain-text answer.
func reply(w http.ResponseWriter, code int, retryAfter, format string, args ...any) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	w.WriteHeader(code)
	fmt.Fprintf(w, format, args...)
}

// errHoldTimeout is how the transport says that a request waited its whole
// hold timeout for an endpoint that accepts connections.
var errHoldTimeout = errors.New("hold timeout")

// proxyError answers a request the proxy could not forward.
func (a *Activator) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	f := r.Context().Value(forwardKey{}).(*forward)
	f.release()
	switch {
	case errors.Is(err, errHoldTimeout):
		a.reject(w, f, reasonTimeout, "no endpoint accepted the request within "+a.holdTimeout(f.workload).String())
	case r.Context().Err() != nil:
		// The client went away while the request was forwarded: nobody reads an answer.
		w.WriteHeader(http.StatusBadGateway)
	default:
		f.m.rejected(reasonUpstream).Inc()
		reply(w, http.StatusBadGateway, "", "ebb activator: workload %s: %v\n", f.workload, err)
	}
}
