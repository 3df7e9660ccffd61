package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/ebbscale/ebb/externalscaler"
	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/enforce"
	"github.com/ebbscale/ebb/queries/promapi"
	"github.com/ebbscale/ebb/scaler"
	"github.com/ebbscale/ebb/shutdown"
)

// serveDeps are what tests inject into runServe.
type serveDeps struct {
	clock   clock.Clock
	getenv  func(string) string
	environ func() []string // the environment's list, for warnings about unknown EBB_ variables
	stdout  io.Writer       // -h prints here; nil: os.Stdout
	// listening, when set, is told the bound addresses (for ":0" in tests).
	listening func(grpcAddr, httpAddr string)
	// started, when set, is given the collector, so that tests can wait for
	// its ticks.
	started func(*scaler.Collector)
	// kickGap, when set, replaces the collector's pacing of the refreshes
	// new triggers ask for, on ebb's clock (tests register triggers one
	// after another; negative: none, for a mock clock that stands still).
	kickGap time.Duration
}

type serveConfig struct {
	store         storeClient
	grpcAddr      string
	httpAddr      string
	interval      time.Duration
	maxStaleness  time.Duration
	queryTimeout  time.Duration
	forgetAfter   time.Duration
	concurrency   int
	defaultWindow time.Duration
	shutdownGrace time.Duration
	maxWorkloads  int
	perWorkload   bool
	idleAfter     time.Duration
	auto          autoConfig // serve_auto.go
	minUptime     time.Duration

	namespaceLabel string
	catalog        queries.Catalog

	tls externalscaler.TLSFiles

	activator activatorConfig

	kubeconfig      string
	watchNamespaces stringList
	annotationQPS   float64
	annotationBurst int

	logLevel  string
	logFormat string
}

func serveFlags(c *serveConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	def := queries.DefaultCatalog()
	c.store.flags(fs)
	c.activator.flags(fs)
	fs.StringVar(&c.grpcAddr, "grpc-addr", ":9090", "address of KEDA's external scaler gRPC API")
	fs.StringVar(&c.httpAddr, "http-addr", ":8080", "address of /metrics, /healthz and /readyz")
	fs.DurationVar(&c.interval, "interval", scaler.DefaultInterval, "how often the collector queries the store")
	fs.DurationVar(&c.maxStaleness, "max-staleness", scaler.DefaultMaxStaleness, "oldest value GetMetrics serves; older answers Unavailable so KEDA's fallback applies")
	fs.DurationVar(&c.queryTimeout, "query-timeout", scaler.DefaultQueryTimeout, "timeout of one store query")
	fs.DurationVar(&c.forgetAfter, "forget-after", scaler.DefaultForgetAfter, "stop querying a workload KEDA has not asked about for this long")
	fs.IntVar(&c.concurrency, "query-concurrency", scaler.DefaultConcurrency, "store queries in flight at once within a tick")
	fs.DurationVar(&c.defaultWindow, "default-window", time.Minute, "window of requests and gpu triggers that set none")
	fs.DurationVar(&c.shutdownGrace, "shutdown-grace", 10*time.Second, "how long a SIGTERM waits for RPCs and streams to finish")
	fs.IntVar(&c.maxWorkloads, "max-workloads", externalscaler.DefaultMaxWorkloads, "most distinct ScaledObjects served; a new one beyond it is refused (ResourceExhausted) until one is forgotten")
	fs.BoolVar(&c.perWorkload, "metrics-per-workload", false, "label /metrics per custom query (ebb_data_age_seconds), one series per ScaledObject; off, /metrics has a fixed number of series")
	c.auto.flags(fs, &c.idleAfter) // --idle-after, --learn-min-history, --prewake-budget: serve_auto.go
	fs.DurationVar(&c.minUptime, "min-uptime", shutdown.DefaultMinUptime, "autoshutdown: a workload stays active at least this long after it wakes, so it cannot flap")

	fs.StringVar(&c.namespaceLabel, "namespace-label", "namespace", "label that custom queries are forced into the ScaledObject's namespace with")
	c.catalog = def
	fs.StringVar(&c.catalog.Requests.Metric, "requests-metric", def.Requests.Metric, "request counter of the requests signal")
	fs.StringVar(&c.catalog.Requests.NamespaceLabel, "requests-namespace-label", def.Requests.NamespaceLabel, "label holding the destination workload's namespace")
	fs.StringVar(&c.catalog.Requests.WorkloadLabel, "requests-workload-label", def.Requests.WorkloadLabel, "label holding the destination workload's name")
	fs.StringVar(&c.catalog.Requests.ServiceNamespaceLabel, "requests-service-namespace-label", def.Requests.ServiceNamespaceLabel, "label holding the destination Service's namespace (demand while at zero replicas)")
	fs.StringVar(&c.catalog.Requests.ServiceNameLabel, "requests-service-label", def.Requests.ServiceNameLabel, "label holding the destination Service's name (demand while at zero replicas)")
	fs.StringVar(&c.catalog.GPU.UtilMetric, "gpu-util-metric", def.GPU.UtilMetric, "GPU utilization gauge in percent (dcgm-exporter)")
	fs.StringVar(&c.catalog.GPU.ProfMetric, "gpu-engine-active-metric", def.GPU.ProfMetric, "GPU engine-active ratio (0-1), preferred over --gpu-util-metric on GPUs that have it (dcgm-exporter profiling metric)")

	fs.StringVar(&c.tls.Cert, "tls-cert", "", "serve gRPC over TLS with this certificate")
	fs.StringVar(&c.tls.Key, "tls-key", "", "key of --tls-cert")
	fs.StringVar(&c.tls.ClientCA, "tls-client-ca", "", "require client certificates signed by this CA (mutual TLS)")

	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig for reading and writing workloads' ebb.dev/ annotations; in a cluster the service account is used; with neither, ebb runs on trigger metadata alone")
	fs.Var(&c.watchNamespaces, "watch-namespace", "namespace whose Deployments and StatefulSets ebb watches (repeatable; default all)")
	fs.Float64Var(&c.annotationQPS, "annotation-qps", 5, "most ebb.dev/state and ebb.dev/last-active writes per second")
	fs.IntVar(&c.annotationBurst, "annotation-burst", 10, "burst of annotation writes")

	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "json", "json or text")
	return fs
}

func (c *serveConfig) validate() error {
	if c.store.url == "" {
		return errors.New("--prometheus-url (or EBB_PROMETHEUS_URL) is required; to try ebb without a cluster or a Prometheus, run: ebb demo")
	}
	switch {
	case c.interval < time.Second || c.interval > 10*time.Minute:
		return fmt.Errorf("--interval = %s, must be in [1s, 10m]", c.interval)
	case c.maxStaleness < c.interval:
		return fmt.Errorf("--max-staleness = %s, must be at least --interval (%s)", c.maxStaleness, c.interval)
	case c.queryTimeout <= 0:
		return fmt.Errorf("--query-timeout = %s, must be positive", c.queryTimeout)
	case c.forgetAfter < c.interval:
		return fmt.Errorf("--forget-after = %s, must be at least --interval (%s)", c.forgetAfter, c.interval)
	case c.concurrency < 1 || c.concurrency > 64:
		return fmt.Errorf("--query-concurrency = %d, must be in [1, 64]", c.concurrency)
	case c.defaultWindow < externalscaler.MinWindow || c.defaultWindow > externalscaler.MaxWindow:
		return fmt.Errorf("--default-window = %s, must be in [10s, 1h]", c.defaultWindow)
	case c.shutdownGrace < 0:
		return fmt.Errorf("--shutdown-grace = %s, must not be negative", c.shutdownGrace)
	case c.maxWorkloads < 1:
		return fmt.Errorf("--max-workloads = %d, must be at least 1", c.maxWorkloads)
	case c.idleAfter <= 0 || c.idleAfter > shutdown.MaxIdleAfter:
		return fmt.Errorf("--idle-after = %s, must be in (0s, 720h]", c.idleAfter)
	case c.minUptime < 0 || c.minUptime > shutdown.MaxIdleAfter:
		return fmt.Errorf("--min-uptime = %s, must be in [0s, 720h]", c.minUptime)
	case c.annotationQPS <= 0 || c.annotationBurst < 1:
		return fmt.Errorf("--annotation-qps = %g and --annotation-burst = %d, must be positive", c.annotationQPS, c.annotationBurst)
	}
	if err := c.auto.validate(); err != nil {
		return err
	}
	if err := c.catalog.Validate(); err != nil {
		return err
	}
	if err := c.activator.validate(); err != nil {
		return err
	}
	return c.store.validate()
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want json or text", format)
}

func runServe(ctx context.Context, args []string, stderr io.Writer, deps serveDeps) error {
	var cfg serveConfig
	fs := serveFlags(&cfg)
	if err := parseFlags(fs, args, flagEnv{getenv: deps.getenv, environ: deps.environ, help: deps.stdout, warn: stderr}); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return usage("serve", err)
	}
	logger, err := newLogger(stderr, cfg.logLevel, cfg.logFormat)
	if err != nil {
		return usage("serve", err)
	}
	clk := deps.clock
	if clk == nil {
		clk = clock.New()
	}
	hc, err := cfg.store.httpConfig()
	if err != nil {
		return usage("serve", err)
	}
	var serverTLS *tls.Config
	if cfg.tls.Enabled() {
		if serverTLS, err = cfg.tls.Config(); err != nil {
			return usage("serve", err)
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	health := newStoreHealth(cfg.store.url, clk, logger)
	prom, err := promapi.NewPrometheus(promapi.PrometheusConfig{
		URL:     cfg.store.url,
		Catalog: cfg.catalog,
		Timeout: cfg.queryTimeout,
		HTTP:    hc,
		Logger:  logger,
		Observe: health.observe,
	})
	if err != nil {
		return err
	}
	metrics := scaler.NewMetrics(reg)
	source := checkedStore{Prometheus: prom, metrics: metrics}
	cluster, err := newCluster(cfg, clk, reg, logger)
	if err != nil {
		return err
	}
	edge, err := newActivatorEdge(cfg.activator, cluster, cfg.watchNamespaces, clk, reg, logger)
	if err != nil {
		return usage("serve", err)
	}
	defer edge.close() // when serve stops before it runs
	collector, err := scaler.NewCollector(scaler.Config{
		Source:       source,
		Interval:     cfg.interval,
		QueryTimeout: cfg.queryTimeout,
		ForgetAfter:  cfg.forgetAfter,
		Concurrency:  cfg.concurrency,
		KickGap:      deps.kickGap,
		Clock:        clk,
		Logger:       logger,
		Metrics:      metrics,
		MaxStaleness: cfg.maxStaleness,
		Policy:       cfg.auto.policy(shutdown.Policy{IdleAfter: cfg.idleAfter, MinUptime: cfg.minUptime}),
		Overrides:    cluster.overrides(),
		States:       edge.states(cluster.states()),
		IdleGate:     edge.gate(),
	})
	if err != nil {
		return err
	}
	scaler.RegisterSnapshotAge(reg, collector)
	scaler.RegisterDataAge(reg, collector, cfg.perWorkload)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ebb_ready",
		Help: "1 once a collection succeeded (/readyz answers ready), else 0.",
	}, func() float64 {
		select {
		case <-collector.Ready():
			return 1
		default:
			return 0
		}
	}))
	if deps.started != nil {
		deps.started(collector)
	}
	srv := externalscaler.NewServer(collector, externalscaler.Config{
		Parse: externalscaler.ParseOptions{
			DefaultWindow: cfg.defaultWindow,
			Enforce:       enforce.Options{NamespaceLabel: cfg.namespaceLabel},
		},
		Clock:        clk,
		Logger:       logger,
		MaxWorkloads: cfg.maxWorkloads,
	})
	grpcServer := externalscaler.NewGRPCServer(srv, collector.Ready(), externalscaler.GRPCConfig{TLS: serverTLS, Registry: reg, Logger: logger})
	if edge != nil {
		if err := edge.start(collector, cluster.holdTimeout, clk, reg); err != nil {
			return err
		}
	}

	grpcLis, err := net.Listen("tcp", cfg.grpcAddr)
	if err != nil {
		return fmt.Errorf("--grpc-addr: %w", err)
	}
	httpLis, err := net.Listen("tcp", cfg.httpAddr)
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("--http-addr: %w", err)
	}
	httpServer := &http.Server{Handler: httpHandler(reg, collector, health), ReadHeaderTimeout: httpReadHeaderTimeout, IdleTimeout: httpIdleTimeout}
	if deps.listening != nil {
		deps.listening(grpcLis.Addr().String(), httpLis.Addr().String())
	}
	logger.Info("serving", "grpc", grpcLis.Addr().String(), "http", httpLis.Addr().String(), "activator", edge.addr(),
		"prometheus", cfg.store.url, "interval", cfg.interval.String(), "tls", serverTLS != nil, "version", version)

	// Every part runs in one group: the first to fail stops the rest, and
	// a stop (ctx) ends them all, each with the grace it needs.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return ignoreCanceled(collector.Run(gctx)) })
	g.Go(func() error { cluster.run(gctx); return nil })
	g.Go(func() error { srv.RunSweeper(gctx); return nil })
	if edge != nil {
		g.Go(func() error { return edge.run(gctx, cfg.shutdownGrace) })
	}
	g.Go(func() error {
		if err := grpcServer.Serve(grpcLis); err != nil {
			return fmt.Errorf("grpc: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := httpServer.Serve(httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		logger.Info("stopping", "grace", cfg.shutdownGrace.String())
		srv.Shutdown() // end open streams; KEDA reconnects to another replica
		stopped := make(chan struct{})
		go func() { grpcServer.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(cfg.shutdownGrace):
			grpcServer.Stop()
		}
		sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownGrace)
		defer cancel()
		if err := httpServer.Shutdown(sctx); err != nil {
			return fmt.Errorf("http shutdown: %w", err)
		}
		return nil
	})
	return g.Wait()
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// httpHandler serves /metrics, /healthz (the process is up) and /readyz
// (the first collection succeeded; until then, what fails).
func httpHandler(reg *prometheus.Registry, c *scaler.Collector, health *storeHealth) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-c.Ready():
			io.WriteString(w, "ready\n")
		default:
			http.Error(w, health.notReady(), http.StatusServiceUnavailable)
		}
	})
	return mux
}
