package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/ebbscale/ebb/activator"
	"github.com/ebbscale/ebb/kube"
	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/scaler"
)

// activatorConfig is serve's activator flags: the proxy that holds requests
// for idle workloads that opt in, while they wake.
type activatorConfig struct {
	addr            string
	service         string
	ips             stringList
	maxPending      int
	maxPendingTotal int
	holdTimeout     time.Duration
	clusterDomain   string
}

func (c *activatorConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "activator-addr", "", `address of the activator, which holds the requests of idle workloads that opt in (ebb.dev/hold-requests: "true") while they wake, e.g. :8012; empty: off`)
	fs.StringVar(&c.service, "activator-service", "", "ebb's own Service, namespace/name, whose ready endpoints the activator's EndpointSlices point at (in a cluster)")
	fs.Var(&c.ips, "activator-ip", "an address of the activator for its EndpointSlices, where ebb runs outside the cluster (repeatable; instead of --activator-service)")
	fs.IntVar(&c.maxPending, "hold-max-pending", activator.DefaultMaxPending, "most requests held for one workload; more are answered 503 with Retry-After")
	fs.IntVar(&c.maxPendingTotal, "hold-max-pending-total", activator.DefaultMaxPendingTotal, "most requests held for all workloads together")
	fs.DurationVar(&c.holdTimeout, "hold-timeout", activator.DefaultHoldTimeout, "longest a request is held before a 503; a workload's ebb.dev/hold-timeout sets its own")
	fs.StringVar(&c.clusterDomain, "cluster-domain", activator.DefaultClusterDomain, "the cluster's DNS domain, for Host headers such as svc.ns.svc.cluster.local")
}

// on reports whether the activator is turned on.
func (c *activatorConfig) on() bool { return c.addr != "" }

// checkAddr checks --activator-addr: a host (may be empty) and a port
// number; port 0 (any free port, for tests) is allowed.
func (c *activatorConfig) checkAddr() error {
	_, p, err := net.SplitHostPort(c.addr)
	if err != nil {
		return fmt.Errorf("--activator-addr %q: %w", c.addr, err)
	}
	if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("--activator-addr %q: the port must be a number in [0, 65535]", c.addr)
	}
	return nil
}

func (c *activatorConfig) validate() error {
	if !c.on() {
		if c.service != "" || len(c.ips) > 0 {
			return errors.New("--activator-service and --activator-ip need --activator-addr")
		}
		return nil
	}
	var errs []error
	if err := c.checkAddr(); err != nil {
		errs = append(errs, err)
	}
	switch {
	case c.service == "" && len(c.ips) == 0:
		errs = append(errs, errors.New("--activator-addr needs --activator-service (ebb in the cluster) or --activator-ip (outside it)"))
	case c.service != "" && len(c.ips) > 0:
		errs = append(errs, errors.New("--activator-service and --activator-ip exclude each other"))
	case c.service != "":
		ns, name, ok := strings.Cut(c.service, "/")
		if !ok || len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Label(name)) > 0 {
			errs = append(errs, fmt.Errorf("--activator-service %q: want namespace/name, e.g. ebb-system/ebb", c.service))
		}
	}
	for _, ip := range c.ips {
		a := net.ParseIP(ip)
		switch {
		case a == nil:
			errs = append(errs, fmt.Errorf("--activator-ip %q: not an IP address", ip))
		case a.IsLoopback() || a.IsUnspecified():
			errs = append(errs, fmt.Errorf("--activator-ip %s: the API server refuses loopback and unspecified addresses in EndpointSlices; give an address the cluster reaches", ip))
		}
	}
	if c.maxPending <= 0 {
		errs = append(errs, fmt.Errorf("--hold-max-pending = %d, must be > 0", c.maxPending))
	}
	if c.maxPendingTotal < c.maxPending {
		errs = append(errs, fmt.Errorf("--hold-max-pending-total = %d, must be at least --hold-max-pending (%d)", c.maxPendingTotal, c.maxPending))
	}
	if c.holdTimeout <= 0 || c.holdTimeout > kube.MaxHoldTimeout {
		errs = append(errs, fmt.Errorf("--hold-timeout = %s, must be > 0 and <= %s", c.holdTimeout, kube.MaxHoldTimeout))
	}
	if len(validation.IsDNS1123Subdomain(c.clusterDomain)) > 0 {
		errs = append(errs, fmt.Errorf("--cluster-domain %q: not a DNS name", c.clusterDomain))
	}
	return errors.Join(errs...)
}

// activatorEdge is the activator with the kube edge that switches
// Services to it through EndpointSlices.
type activatorEdge struct {
	cfg      activatorConfig
	switcher *kube.Switcher
	act      *activator.Activator
	server   *http.Server
	lis      net.Listener
	logger   *slog.Logger
	// kick asks the collector for a refresh once a slice is written, so
	// that an idle answer held back for it goes out (set by start).
	kick atomic.Pointer[func()]
}

// newActivatorEdge binds the activator's address and builds the switcher;
// nil when the activator is off. It needs cluster access: the Services and
// EndpointSlices are the switch.
func newActivatorEdge(cfg activatorConfig, c *cluster, namespaces []string, clk clock.Clock, reg prometheus.Registerer, logger *slog.Logger) (*activatorEdge, error) {
	if !cfg.on() {
		return nil, nil
	}
	if c.client == nil {
		return nil, errors.New("--activator-addr needs cluster access (in-cluster config or --kubeconfig): Services are switched to the activator through EndpointSlices")
	}
	lis, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return nil, fmt.Errorf("--activator-addr: %w", err)
	}
	e := &activatorEdge{cfg: cfg, lis: lis, logger: logger}
	sw, err := kube.NewSwitcher(kube.SwitcherConfig{
		Client:           c.client,
		Workloads:        c.watcher,
		Namespaces:       namespaces,
		ActivatorPort:    int32(lis.Addr().(*net.TCPAddr).Port),
		ActivatorService: cfg.service,
		ActivatorIPs:     cfg.ips,
		Clock:            clk,
		Logger:           logger,
		Metrics:          kube.NewSwitchMetrics(reg),
		Switched: func(queries.WorkloadKey) {
			if k := e.kick.Load(); k != nil {
				(*k)()
			}
		},
	})
	if err != nil {
		lis.Close()
		return nil, err
	}
	e.switcher = sw
	return e, nil
}

// gate is the collector's IdleGate: a workload that holds requests is
// answered idle only once ebb's slices are in front of its Services. Nil
// when the activator is off.
func (e *activatorEdge) gate() scaler.IdleGate {
	if e == nil {
		return nil
	}
	return e.switcher
}

// states returns the sink that tells both the state writer and the
// switcher about ebb's decisions.
func (e *activatorEdge) states(writer scaler.StateSink) scaler.StateSink {
	if e == nil {
		return writer
	}
	if writer == nil {
		return e.switcher
	}
	return fanout{writer, e.switcher}
}

// start builds the activator, which tells demand to the collector, and
// lets the switcher kick the collector.
func (e *activatorEdge) start(collector *scaler.Collector, holdTimeout func(queries.WorkloadKey) time.Duration, clk clock.Clock, reg prometheus.Registerer) error {
	kick := collector.Kick
	e.kick.Store(&kick)
	var demand activator.Demand = collector
	act, err := activator.New(activator.Config{
		Endpoints:       e.switcher,
		Demand:          demand,
		ClusterDomain:   e.cfg.clusterDomain,
		MaxPending:      e.cfg.maxPending,
		MaxPendingTotal: e.cfg.maxPendingTotal,
		HoldTimeout:     e.cfg.holdTimeout,
		HoldTimeoutFor:  holdTimeout,
		Clock:           clk,
		Logger:          e.logger,
		Registerer:      reg,
	})
	if err != nil {
		return fmt.Errorf("activator: %w", err)
	}
	e.act, e.server = act, act.Server(e.cfg.addr)
	return nil
}

// run serves the activator and switches Services until ctx is done or
// either fails; on the way out it lets held and forwarded requests finish
// for up to grace.
func (e *activatorEdge) run(ctx context.Context, grace time.Duration) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() {
		if err := e.switcher.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			errc <- fmt.Errorf("activator switcher: %w", err)
			return
		}
		errc <- nil
	}()
	go func() {
		if err := e.server.Serve(e.lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("activator: %w", err)
			return
		}
		errc <- nil
	}()
	var first error
	left := 2
	select {
	case <-ctx.Done():
	case first = <-errc:
		left--
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), grace)
	defer scancel()
	if err := e.server.Shutdown(sctx); err != nil {
		// Held requests wait up to their hold timeout: past the grace,
		// cut them (their clients get a broken connection and retry).
		e.server.Close()
		e.logger.Warn("activator stopped with requests still held or in flight", "grace", grace.String(), "err", err)
	}
	for ; left > 0; left-- {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// close releases the activator's address if run never served it.
func (e *activatorEdge) close() {
	if e != nil && e.server == nil {
		e.lis.Close()
	}
}

// addr returns the activator's bound address, or "off".
func (e *activatorEdge) addr() string {
	if e == nil || e.lis == nil {
		return "off"
	}
	return e.lis.Addr().String()
}

// The switcher is the activator's view of the cluster, bare names included.
var (
	_ activator.Endpoints       = (*kube.Switcher)(nil)
	_ activator.NamespaceFinder = (*kube.Switcher)(nil)
)

// fanout tells several sinks.
type fanout []scaler.StateSink

func (f fanout) Publish(s scaler.WorkloadState) {
	for _, sink := range f {
		sink.Publish(s)
	}
}
