package externalscaler

import (
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultMaxWorkloads is Config.MaxWorkloads' default: ten times the
// largest fleet ebb is measured at, and a bound on what a client that
// registers bogus ScaledObjects can make ebb hold.
const DefaultMaxWorkloads = 50_000

// refuse is the error for a ScaledObject beyond Config.MaxWorkloads; s.mu
// is held. The first refusal after a sweep is logged, so that a flood of
// bogus ScaledObjects writes one line, not one per call.
func (s *Server) refuse(key refKey) error {
	if s.full.CompareAndSwap(false, true) {
		s.cfg.Logger.Warn("workload limit reached: new ScaledObjects are refused until one is forgotten",
			"limit", s.cfg.MaxWorkloads, "namespace", key.namespace, "scaledObject", key.name)
	}
	return status.Error(codes.ResourceExhausted, fmt.Sprintf(
		"ebb serves at most %d ScaledObjects (--max-workloads); %s/%s is refused until one is forgotten (--forget-after)",
		s.cfg.MaxWorkloads, key.namespace, key.name))
}

// The gRPC server's limits, in the README's flags table.
const (
	// MaxRecvMsgSize bounds one request: a ScaledObjectRef with its
	// metadata is well under a kilobyte, a long custom query a few.
	MaxRecvMsgSize = 1 << 20
	// MaxConcurrentStreams bounds the streams of one connection. KEDA
	// shares one connection per scalerAddress, so one connection carries
	// an external-push stream per ScaledObject: the bound is twice
	// DefaultMaxWorkloads, so that a fleet at the limit fits.
	MaxConcurrentStreams = 2 * DefaultMaxWorkloads
	// KeepaliveMinTime is the shortest interval between a client's pings
	// that ebb accepts, with or without streams open.
	KeepaliveMinTime = 10 * time.Second
)
