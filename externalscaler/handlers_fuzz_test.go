package externalscaler

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/queriestest"
	"github.com/ebbscale/ebb/scaler"
)

// fuzzMetadata decodes a fuzzed metadata map: pairs "key=value" separated
// by newlines (a line without '=' is a key with an empty value); nil for
// the empty string, as KEDA sends no map for a trigger without metadata.
func fuzzMetadata(s string) map[string]string {
	if s == "" {
		return nil
	}
	md := map[string]string{}
	for line := range strings.SplitSeq(s, "\n") {
		k, v, _ := strings.Cut(line, "=")
		md[k] = v
	}
	return md
}

// FuzzHandlers feeds random ScaledObjectRefs (name, namespace, metadata)
// and metric names to the unary handlers KEDA calls, on one server whose
// cache outlives each input, bounded at 8 ScaledObjects. Every answer must
// be a value or one of the codes ebb answers with, the same on a second
// call, and the cache must stay within its bound.
func FuzzHandlers(f *testing.F) {
	f.Add("cart", "shop", "signal=requests\ntarget=10", "ebb-requests-cart")
	f.Add("checkout-7d9f8b6c5d", "shop", "scalerAddress=ebb.ebb-system:9090\nsignal=requests\ntarget=5\nactivation=0.5\nidleAfter=15m\nwindow=2m", "s0-ebb-requests-checkout-7d9f8b6c5d")
	f.Add("dcgm", "ml", "signal=gpu\ntarget=70\nworkload=llama-7b\nwindow=30s", "")
	f.Add("jobs", "batch", "signal=query\ntarget=3\nquery=sum(rate(jobs_total{queue=\"q\"}[1m]))", "ebb-query-jobs")
	f.Add("vllm-llama", "ml", "signal=kvcache\ntarget=70\nserver=vllm", "")
	f.Add("llm", "ml", "signal=ttft\ntarget=0.5\nwindow=5m\nquantile=0.95\nserver=sglang", "")
	f.Add("", "", "", "")
	f.Add("a", "UPPER", "signal", "x")
	f.Add("a", "b", "signal=requests\ntarget=1e309\n=\n\x00=\xff", "")
	f.Add(strings.Repeat("n", 254), "b", "signal=requests\ntarget=1\nworkload=w", "")
	f.Add("a", "b", "signal=query\ntarget=1\nquery="+strings.Repeat("(", 300), "")

	clk := clock.NewMock()
	clk.Set(t0)
	src := &queriestest.FakeSource{}
	c, err := scaler.NewCollector(scaler.Config{Source: src, Interval: 5 * time.Second, Clock: clk})
	if err != nil {
		f.Fatal(err)
	}
	s := NewServer(c, Config{Clock: clk, FirstWait: time.Millisecond, MaxWorkloads: 8})
	allowed := map[codes.Code]bool{codes.OK: true, codes.InvalidArgument: true, codes.Unavailable: true, codes.ResourceExhausted: true}
	f.Fuzz(func(t *testing.T, name, namespace, metadata, metric string) {
		ref := &pb.ScaledObjectRef{Name: name, Namespace: namespace, ScalerMetadata: fuzzMetadata(metadata)}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		spec, err := s.GetMetricSpec(ctx, ref)
		if !allowed[status.Code(err)] {
			t.Fatalf("GetMetricSpec: %v", err)
		}
		if err == nil {
			if len(spec.MetricSpecs) != 1 || spec.MetricSpecs[0].TargetSize < 1 || !strings.HasPrefix(spec.MetricSpecs[0].MetricName, "ebb-") {
				t.Fatalf("GetMetricSpec answered %v", spec)
			}
			src.Set(queries.Shape{Signal: queries.SignalRequests, Window: time.Minute}, queries.Sample{Workload: queries.WorkloadKey{Namespace: namespace, Name: name}, Value: 1})
		}
		_, err2 := s.GetMetricSpec(ctx, ref)
		if status.Code(err2) != status.Code(err) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("GetMetricSpec twice: %v, then %v", err, err2)
		}
		if _, err := s.IsActive(ctx, ref); !allowed[status.Code(err)] {
			t.Fatalf("IsActive: %v", err)
		}
		if _, err := s.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: metric}); !allowed[status.Code(err)] {
			t.Fatalf("GetMetrics: %v", err)
		}
		if _, err := s.GetMetrics(ctx, &pb.GetMetricsRequest{MetricName: metric}); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("GetMetrics without a ref: %v", err)
		}
		if len(metadata)%7 == 0 {
			clk.Add(5 * time.Second)
			c.Refresh(ctx)
		}
		if len(metadata)%31 == 0 {
			clk.Add(2 * time.Hour)
			s.Sweep()
		}
		s.mu.RLock()
		n := len(s.cache)
		s.mu.RUnlock()
		if n > 8 {
			t.Fatalf("cache holds %d ScaledObjects, limit 8", n)
		}
	})
}
