package externalscaler

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// TLSFiles names the PEM files for serving TLS; with ClientCA set, clients
// must present a certificate it signed (mutual TLS).
type TLSFiles struct {
	Cert, Key, ClientCA string
}

// Enabled reports whether any TLS file is set.
func (f TLSFiles) Enabled() bool { return f.Cert != "" || f.Key != "" || f.ClientCA != "" }

// Config builds the server's TLS configuration. The certificate and the
// client CA are read again from disk on every handshake, so a rotated secret
// needs no restart; while a new file does not load (a rotation half done),
// the last good one stays in use.
func (f TLSFiles) Config() (*tls.Config, error) {
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("tls: --tls-cert and --tls-key go together")
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	var lastPair atomic.Pointer[tls.Certificate]
	lastPair.Store(&pair)
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(f.Cert, f.Key)
			if err != nil {
				return lastPair.Load(), nil
			}
			lastPair.Store(&c)
			return &c, nil
		},
	}
	if f.ClientCA != "" {
		pool, err := loadCertPool(f.ClientCA)
		if err != nil {
			return nil, err
		}
		var lastPool atomic.Pointer[x509.CertPool]
		lastPool.Store(pool)
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		base := cfg.Clone()
		cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			p, err := loadCertPool(f.ClientCA)
			if err != nil {
				p = lastPool.Load()
			} else {
				lastPool.Store(p)
			}
			c := base.Clone()
			c.ClientCAs = p
			return c, nil
		}
	}
	return cfg, nil
}

// loadCertPool reads a PEM bundle of CA certificates.
func loadCertPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tls: client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: client CA %s: no PEM certificate found", file)
	}
	return pool, nil
}

// GRPCConfig configures NewGRPCServer.
type GRPCConfig struct {
	TLS      *tls.Config // nil serves plaintext
	Registry prometheus.Registerer
	Logger   *slog.Logger
}

// NewGRPCServer returns a gRPC server with the external scaler, the health
// service (reported SERVING for the scaler once ready is closed), reflection,
// keepalive, panic recovery and RPC metrics.
func NewGRPCServer(srv *Server, ready <-chan struct{}, cfg GRPCConfig) *grpc.Server {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := newRPCMetrics(cfg.Registry)
	gopts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(m.unary, recoverUnary(logger)),
		grpc.ChainStreamInterceptor(m.stream, recoverStream(logger)),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		// KEDA keeps long-lived connections and may ping while streams are
		// idle; a client pinging more often than KeepaliveMinTime is sent
		// GOAWAY too_many_pings.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: KeepaliveMinTime, PermitWithoutStream: true}),
		grpc.MaxRecvMsgSize(MaxRecvMsgSize),
		grpc.MaxConcurrentStreams(MaxConcurrentStreams),
	}
	if cfg.TLS != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	g := grpc.NewServer(gopts...)
	pb.RegisterExternalScalerServer(g, srv)
	hs := health.NewServer()
	const service = "externalscaler.ExternalScaler"
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(service, healthpb.HealthCheckResponse_NOT_SERVING)
	go func() {
		<-ready
		hs.SetServingStatus(service, healthpb.HealthCheckResponse_SERVING)
	}()
	healthpb.RegisterHealthServer(g, hs)
	reflection.Register(g)
	return g
}

func recoverUnary(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				logger.Error("panic in handler", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
				err = status.Errorf(codes.Internal, "internal error in %s", info.FullMethod)
			}
		}()
		return handler(ctx, req)
	}
}

func recoverStream(logger *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				logger.Error("panic in stream", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
				err = status.Errorf(codes.Internal, "internal error in %s", info.FullMethod)
			}
		}()
		return handler(srv, ss)
	}
}

// rpcMetrics counts and times RPCs by method and code.
type rpcMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newRPCMetrics(reg prometheus.Registerer) *rpcMetrics {
	m := &rpcMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebb_grpc_requests_total",
			Help: "gRPC calls handled, by method and status code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ebb_grpc_request_duration_seconds",
			Help:    "Handling time of unary gRPC calls, and lifetime of streams, by method.",
			Buckets: []float64{1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.1, 1, 10, 60, 600},
		}, []string{"method"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency)
	}
	return m
}

func (m *rpcMetrics) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	m.observe(info.FullMethod, start, err)
	return resp, err
}

func (m *rpcMetrics) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	err := handler(srv, ss)
	m.observe(info.FullMethod, start, err)
	return err
}

func (m *rpcMetrics) observe(method string, start time.Time, err error) {
	m.latency.WithLabelValues(method).Observe(time.Since(start).Seconds())
	m.requests.WithLabelValues(method, status.Code(err).String()).Inc()
}
