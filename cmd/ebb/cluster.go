package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/ebbscale/ebb/kube"
	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/scaler"
	"github.com/ebbscale/ebb/shutdown"
)

// cluster is ebb's optional link to the Kubernetes API: the workloads'
// annotations in, their autoshutdown state out. Without cluster access both
// are nil and ebb runs on trigger metadata alone.
type cluster struct {
	client  kubernetes.Interface
	watcher *kube.Watcher
	writer  *kube.StateWriter
	logger  *slog.Logger
}

func newCluster(cfg serveConfig, clk clock.Clock, reg prometheus.Registerer, logger *slog.Logger) (*cluster, error) {
	rc, err := kube.Config(cfg.kubeconfig)
	if errors.Is(err, kube.ErrNoCluster) {
		logger.Info("no cluster access: running on trigger metadata alone (no ebb.dev/ annotations read or written)")
		return &cluster{}, nil
	}
	if err != nil {
		return nil, err
	}
	rc.UserAgent = kube.UserAgent + "/" + version
	// The writer has its own limiter; let the client's allow it.
	rc.QPS, rc.Burst = float32(cfg.annotationQPS)*2, cfg.annotationBurst*2
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	m := kube.NewMetrics(reg)
	w, err := kube.NewWatcher(kube.WatcherConfig{Client: client, Namespaces: cfg.watchNamespaces, Logger: logger, Metrics: m})
	if err != nil {
		return nil, err
	}
	sw, err := kube.NewStateWriter(kube.StateWriterConfig{Client: client, Targets: w, QPS: float32(cfg.annotationQPS),
		Burst: cfg.annotationBurst, Clock: clk, Logger: logger, Metrics: m})
	if err != nil {
		return nil, err
	}
	return &cluster{client: client, watcher: w, writer: sw, logger: logger}, nil
}

// overrides is the collector's OverrideSource: nil without a cluster.
func (c *cluster) overrides() scaler.OverrideSource {
	if c.watcher == nil {
		return nil
	}
	return syncGate{c.watcher}
}

// states is the collector's StateSink: nil without a cluster.
func (c *cluster) states() scaler.StateSink {
	if c.writer == nil {
		return nil
	}
	return c.writer
}

// holdTimeout is a workload's ebb.dev/hold-timeout, 0 when unset or bad.
func (c *cluster) holdTimeout(key queries.WorkloadKey) time.Duration {
	if c.watcher == nil {
		return 0
	}
	return c.watcher.HoldTimeout(key)
}

// run reads annotations until ctx is done, and writes states once they are
// read. A watcher that cannot read (RBAC) leaves every workload active. It
// returns when ctx is done, whatever happened before.
func (c *cluster) run(ctx context.Context) {
	defer func() { <-ctx.Done() }()
	if c.watcher == nil {
		return
	}
	go func() {
		select {
		case <-ctx.Done():
			return
		case <-c.watcher.Synced():
		}
		if err := c.writer.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			c.logger.Error("annotation writer stopped", "err", err)
		}
	}()
	if err := c.watcher.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		c.logger.Error("cannot read workloads' annotations: no workload will be shut down until ebb can", "err", err)
	}
}

// notSynced keeps every workload's state unknown (IsActive answers
// Unavailable) until the annotations are read: an opt-out or a keep-awake
// window must never be missed, and a restart must wake nothing.
const notSynced = "workload annotations not read yet"

// syncGate answers "unknown" (so: Unavailable) until the watcher's first
// full read of the cluster.
type syncGate struct{ w *kube.Watcher }

func (g syncGate) Overrides(key queries.WorkloadKey) (shutdown.Overrides, bool) {
	select {
	case <-g.w.Synced():
		return g.w.Overrides(key)
	default:
		return shutdown.Overrides{Unknown: notSynced}, false
	}
}
