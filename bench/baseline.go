package bench

import (
	"context"
	"net"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc"
)

// baseline is the control for the load harness: KEDA's external scaler
// service answering every call from constants, on a bare grpc.NewServer
// (no interceptors, metrics, health or keepalive settings). Loaded as ebb
// is, it measures the floor that gRPC-go and the machine set, apart from
// anything ebb does: ebb's latency above it is ebb's.
type baseline struct {
	pb.UnimplementedExternalScalerServer
}

func (baseline) IsActive(context.Context, *pb.ScaledObjectRef) (*pb.IsActiveResponse, error) {
	return &pb.IsActiveResponse{Result: true}, nil
}

func (baseline) GetMetricSpec(_ context.Context, ref *pb.ScaledObjectRef) (*pb.GetMetricSpecResponse, error) {
	return &pb.GetMetricSpecResponse{MetricSpecs: []*pb.MetricSpec{{MetricName: "ebb-requests-" + ref.Name, TargetSize: 10, TargetSizeFloat: 10}}}, nil
}

// GetMetrics answers 0, which the harness accepts as a workload without
// traffic.
func (baseline) GetMetrics(_ context.Context, req *pb.GetMetricsRequest) (*pb.GetMetricsResponse, error) {
	return &pb.GetMetricsResponse{MetricValues: []*pb.MetricValue{{MetricName: req.MetricName}}}, nil
}

// StreamIsActive sends true once and holds the stream open.
func (baseline) StreamIsActive(_ *pb.ScaledObjectRef, stream pb.ExternalScaler_StreamIsActiveServer) error {
	if err := stream.Send(&pb.IsActiveResponse{Result: true}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

// serveBaseline runs the baseline server on lis until ctx ends.
func serveBaseline(ctx context.Context, lis net.Listener) error {
	g := grpc.NewServer()
	pb.RegisterExternalScalerServer(g, baseline{})
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(lis) }()
	select {
	case <-ctx.Done():
		g.Stop()
		return nil
	case err := <-errc:
		return err
	}
}
