package externalscaler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/benbjohnson/clock"
	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/queriestest"
	"github.com/ebbscale/ebb/scaler"
)

var (
	t0       = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	reqShape = queries.Shape{Signal: queries.SignalRequests, Window: time.Minute}
	gpuShape = queries.Shape{Signal: queries.SignalGPU, Window: time.Minute}
)

// harness is ebb's gRPC server on a real 127.0.0.1 socket, fed by a fake
// source on a mock clock, and KEDA's generated client.
type harness struct {
	src       *queriestest.FakeSource
	clk       *clock.Mock
	collector *scaler.Collector
	server    *Server
	client    pb.ExternalScalerClient
	conn      *grpc.ClientConn
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{src: &queriestest.FakeSource{}, clk: clock.NewMock()}
	h.clk.Set(t0)
	var err error
	h.collector, err = scaler.NewCollector(scaler.Config{Source: h.src, Interval: 5 * time.Second, Clock: h.clk})
	if err != nil {
		t.Fatal(err)
	}
	h.server = NewServer(h.collector, Config{Clock: h.clk, FirstWait: 50 * time.Millisecond})
	g := NewGRPCServer(h.server, h.collector.Ready(), GRPCConfig{Registry: prometheus.NewRegistry()})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	t.Cleanup(h.server.Shutdown)
	h.conn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.conn.Close() })
	h.client = pb.NewExternalScalerClient(h.conn)
	return h
}

// tick advances the clock by one interval and runs one collector tick.
func (h *harness) tick() {
	h.clk.Add(5 * time.Second)
	h.collector.Refresh(context.Background())
}

func ref(name string, md map[string]string) *pb.ScaledObjectRef {
	return &pb.ScaledObjectRef{Name: name, Namespace: "shop", ScalerMetadata: md}
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestRPCs(t *testing.T) {
	h := newHarness(t)
	cart := ref("cart", map[string]string{"scalerAddress": "x", "signal": "requests", "target": "10", "activation": "1"})
	llm := ref("llm", map[string]string{"signal": "gpu", "target": "70"})
	h.src.Set(reqShape, queries.Sample{Workload: queries.WorkloadKey{Namespace: "shop", Name: "cart"}, Value: 34.5})
	h.src.Set(gpuShape, queries.Sample{Workload: queries.WorkloadKey{Namespace: "shop", Name: "llm"}, Value: 126})

	spec, err := h.client.GetMetricSpec(ctx(t), cart)
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.MetricSpecs; len(got) != 1 || got[0].MetricName != "ebb-requests-cart" || got[0].TargetSizeFloat != 10 || got[0].TargetSize != 10 {
		t.Errorf("GetMetricSpec = %v, want ebb-requests-cart target 10", got)
	}
	// No tick comes within the first call's wait: the activity is unknown,
	// which is no answer (KEDA keeps the replicas), and there is no value.
	_, err = h.client.IsActive(ctx(t), llm)
	if want := "shop/llm gpu[1m]: activity unknown: not collected yet: the store has not answered its first query"; status.Code(err) != codes.Unavailable || status.Convert(err).Message() != want {
		t.Errorf("IsActive before any data: %v\nwant Unavailable %q", err, want)
	}
	_, err = h.client.GetMetrics(ctx(t), &pb.GetMetricsRequest{ScaledObjectRef: cart, MetricName: "ebb-requests-cart"})
	if want := "shop/cart requests[1m]: activity unknown: not collected yet: the store has not answered its first query"; status.Code(err) != codes.Unavailable || status.Convert(err).Message() != want {
		t.Errorf("GetMetrics before any data: %v\nwant Unavailable %q", err, want)
	}

	h.tick()
	m, err := h.client.GetMetrics(ctx(t), &pb.GetMetricsRequest{ScaledObjectRef: cart, MetricName: "ebb-requests-cart"})
	if err != nil {
		t.Fatal(err)
	}
	if v := m.MetricValues[0]; v.MetricValueFloat != 34.5 || v.MetricValue != 35 || v.MetricName != "ebb-requests-cart" {
		t.Errorf("GetMetrics = %v, want 34.5 (int 35)", v)
	}
	m, err = h.client.GetMetrics(ctx(t), &pb.GetMetricsRequest{ScaledObjectRef: llm, MetricName: "ebb-gpu-llm"})
	if err != nil || m.MetricValues[0].MetricValueFloat != 126 {
		t.Errorf("GetMetrics gpu = %v, %v; want 126", m, err)
	}
	if act, err := h.client.IsActive(ctx(t), cart); err != nil || !act.Result {
		t.Errorf("IsActive at 34.5 > 1 = %v, %v; want true", act, err)
	}

	// The traffic stops: the series stay at 0. The workload stays active for
	// the default 15m idle-after, then goes idle.
	h.src.Set(reqShape, queries.Sample{Workload: queries.WorkloadKey{Namespace: "shop", Name: "cart"}, Value: 0})
	h.tick()
	if m, err := h.client.GetMetrics(ctx(t), &pb.GetMetricsRequest{ScaledObjectRef: cart}); err != nil || m.MetricValues[0].MetricValueFloat != 0 {
		t.Errorf("GetMetrics with no traffic = %v, %v; want 0", m, err)
	}
	if act, err := h.client.IsActive(ctx(t), cart); err != nil || !act.Result {
		t.Errorf("IsActive just after the traffic stopped = %v, %v; want true (idle after 15m)", act, err)
	}
	h.clk.Add(15 * time.Minute)
	h.collector.Refresh(context.Background())
	if act, err := h.client.IsActive(ctx(t), cart); err != nil || act.Result {
		t.Errorf("IsActive 15m after the traffic stopped = %v, %v; want false", act, err)
	}
	// A workload with no series at all has no traffic.
	nobody := ref("nobody", map[string]string{"signal": "requests", "target": "10"})
	h.client.IsActive(ctx(t), nobody)
	h.tick()
	if act, err := h.client.IsActive(ctx(t), nobody); err != nil || act.Result {
		t.Errorf("IsActive with no series = %v, %v; want false", act, err)
	}
}

func TestSourceOutage(t *testing.T) {
	h := newHarness(t)
	cart := ref("cart", map[string]string{"signal": "requests", "target": "10"})
	idle := ref("idle", map[string]string{"signal": "requests", "target": "10"})
	h.src.Set(reqShape, queries.Sample{Workload: queries.WorkloadKey{Namespace: "shop", Name: "cart"}, Value: 20})
	h.client.IsActive(ctx(t), cart)
	h.client.IsActive(ctx(t), idle)
	h.tick()
	if act, _ := h.client.IsActive(ctx(t), idle); act.GetResult() {
		t.Fatal("idle workload active before the outage")
	}

	h.src.Fail(&queries.QueryError{Shape: reqShape, Kind: "http_status", Status: 500, Err: errors.New("internal error")})
	// Within max staleness: the last answers stand, values are served.
	for range 6 {
		h.tick()
	}
	if act, _ := h.client.IsActive(ctx(t), cart); !act.GetResult() {
		t.Error("active workload went inactive during a 30s outage")
	}
	if m, err := h.client.GetMetrics(ctx(t), &pb.GetMetricsRequest{ScaledObjectRef: cart}); err != nil || m.MetricValues[0].MetricValueFloat != 20 {
		t.Errorf("GetMetrics 30s into an outage = %v, %v; want the last value 20", m, err)
	}
	// Past max staleness every workload's activity is unknown: IsActive
	// answers neither true nor false, and GetMetrics is Unavailable.
	for range 7 {
		h.tick()
	}
	for _, r := range []*pb.ScaledObjectRef{cart, idle} {
		_, err := h.client.IsActive(ctx(t), r)
		want := "shop/" + r.Name + " requests[1m]: activity unknown: source failing, last good data too old (data 1m5s old): query requests[1m]: http_status (HTTP 500): internal error"
		if status.Code(err) != codes.Unavailable || status.Convert(err).Message() != want {
			t.Errorf("%s: IsActive 65s into an outage: %v\nwant Unavailable %q", r.Name, err, want)
		}
	}
	_, err := h.client.GetMetrics(ctx(t), &pb.GetMetricsRequest{ScaledObjectRef: cart})
	want := "shop/cart requests[1m]: value is 1m5s old (max staleness 1m0s): query requests[1m]: http_status (HTTP 500): internal error"
	if status.Code(err) != codes.Unavailable || status.Convert(err).Message() != want {
		t.Errorf("GetMetrics 65s into an outage: %v\nwant Unavailable %q", err, want)
	}
}

func TestBadMetadataOverSocket(t *testing.T) {
	h := newHarness(t)
	for _, tt := range badMetadata {
		t.Run(tt.name, func(t *testing.T) {
			r := ref("cart", tt.md)
			calls := map[string]func() error{
				"IsActive":      func() error { _, err := h.client.IsActive(ctx(t), r); return err },
				"GetMetricSpec": func() error { _, err := h.client.GetMetricSpec(ctx(t), r); return err },
				"GetMetrics": func() error {
					_, err := h.client.GetMetrics(ctx(t), &pb.GetMetricsRequest{ScaledObjectRef: r})
					return err
				},
				"StreamIsActive": func() error {
					s, err := h.client.StreamIsActive(ctx(t), r)
					if err != nil {
						return err
					}
					_, err = s.Recv()
					return err
				},
				"StreamMetricSpec": func() error {
					s, err := h.client.StreamMetricSpec(ctx(t), r)
					if err != nil {
						return err
					}
					_, err = s.Recv()
					return err
				},
			}
			for method, call := range calls {
				err := call()
				if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != tt.want {
					t.Errorf("%s: got %v, want InvalidArgument %q", method, err, tt.want)
				}
			}
		})
	}
	if _, err := h.client.GetMetrics(ctx(t), &pb.GetMetricsRequest{}); status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != "scaledObjectRef is missing" {
		t.Errorf("GetMetrics without a ref: %v", err)
	}
	// The server is still healthy after all of that.
	hc := healthpb.NewHealthClient(h.conn)
	if r, err := hc.Check(ctx(t), &healthpb.HealthCheckRequest{}); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health after bad input: %v, %v", r, err)
	}
}

func TestStreamIsActive(t *testing.T) {
	h := newHarness(t)
	cart := ref("cart", map[string]string{"signal": "requests", "target": "10", "idleAfter": "10s"})
	key := queries.WorkloadKey{Namespace: "shop", Name: "cart"}
	h.src.Set(reqShape, queries.Sample{Workload: key, Value: 5})
	stream, err := h.client.StreamIsActive(ctx(t), cart)
	if err != nil {
		t.Fatal(err)
	}
	recv := func(want bool) {
		t.Helper()
		r, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if r.Result != want {
			t.Fatalf("stream sent %v, want %v", r.Result, want)
		}
	}
	waitRegistered(t, h, key)
	recv(true) // the first message comes with the first tick that saw the trigger
	h.tick()
	h.tick() // unchanged: nothing sent
	h.src.Set(reqShape, queries.Sample{Workload: key, Value: 0})
	for range 4 { // idleAfter 10s
		h.tick()
	}
	recv(false) // the change arrives after the tick that saw it
	h.src.Set(reqShape, queries.Sample{Workload: key, Value: 0.5})
	h.tick()
	recv(true)
}

// waitRegistered waits until a stream's handler has registered key's
// trigger with the collector, then runs one tick, so that the stream's
// first message is about collected data.
func waitRegistered(t *testing.T, h *harness, key queries.WorkloadKey) {
	t.Helper()
	// The client's stream is open before the server's handler has run:
	// wait until the handler has registered the trigger, then tick.
	registered := func() bool {
		h.server.mu.RLock()
		defer h.server.mu.RUnlock()
		for e := h.server.cache[refKey{key.Namespace, key.Name}]; e != nil; e = e.next {
			if e.interest.Load() != nil {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(10 * time.Second); !registered(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no stream registered it within 10s", key)
		}
	}
	h.tick()
	if _, queried := h.collector.Snapshot().ShapeErr(reqShape); !queried {
		t.Fatalf("%s not registered after the stream opened", key)
	}
}

func TestStreamMetricSpec(t *testing.T) {
	h := newHarness(t)
	r := ref("cart", map[string]string{"signal": "requests", "target": "2.5"})
	stream, err := h.client.StreamMetricSpec(ctx(t), r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	unary, err := h.client.GetMetricSpec(ctx(t), r)
	if err != nil {
		t.Fatal(err)
	}
	if g, u := got.MetricSpecs[0], unary.MetricSpecs[0]; g.MetricName != u.MetricName || g.TargetSizeFloat != 2.5 || g.TargetSize != u.TargetSize {
		t.Errorf("stream spec %v differs from GetMetricSpec %v", g, u)
	}
	h.server.Shutdown()
	if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("after Shutdown the stream got %v, want Unavailable", err)
	}
}

// cached counts the cache's entries for shop/name.
func (h *harness) cached(name string) int {
	h.server.mu.RLock()
	defer h.server.mu.RUnlock()
	n := 0
	for e := h.server.cache[refKey{"shop", name}]; e != nil; e = e.next {
		n++
	}
	return n
}

func TestMetadataCache(t *testing.T) {
	h := newHarness(t)
	md := map[string]string{"signal": "requests", "target": "10"}
	for range 3 {
		if _, err := h.client.GetMetricSpec(ctx(t), ref("cart", md)); err != nil {
			t.Fatal(err)
		}
	}
	if n := h.cached("cart"); n != 1 {
		t.Errorf("cache holds %d entries after 3 calls with the same metadata, want 1", n)
	}
	md2 := map[string]string{"signal": "gpu", "target": "70"} // a second trigger of the same ScaledObject
	h.client.GetMetricSpec(ctx(t), ref("cart", md2))
	if n := h.cached("cart"); n != 2 {
		t.Errorf("cache holds %d entries for one ScaledObject with two triggers, want 2", n)
	}
	// The map's key is the newest entry's own copy of the strings, next to
	// its metadata, not a request's.
	req := ref(strings.Clone("cart"), map[string]string{"signal": "requests", "target": "11"})
	if _, _, err := h.server.resolve(req); err != nil {
		t.Fatal(err)
	}
	h.server.mu.RLock()
	for key, e := range h.server.cache {
		if unsafe.StringData(key.name) == unsafe.StringData(req.Name) {
			t.Error("the cache's key holds the request's string")
		}
		if end := unsafe.Add(unsafe.Pointer(unsafe.StringData(key.name)), len(key.name)); end != unsafe.Pointer(unsafe.StringData(string(e.md))) {
			t.Error("the cache's key is not the newest entry's copy, just before its metadata")
		}
	}
	h.server.mu.RUnlock()

	// Sweep keeps what was asked about within ForgetAfter, in any position.
	h.clk.Add(30 * time.Minute)
	h.client.IsActive(ctx(t), ref("cart", md)) // the older entry, behind md2's
	h.clk.Add(40 * time.Minute)
	h.server.Sweep()
	if n := h.cached("cart"); n != 1 {
		t.Fatalf("after a sweep that forgets one trigger the cache holds %d, want 1", n)
	}
	h.server.mu.RLock()
	kept := h.server.cache[refKey{"shop", "cart"}]
	h.server.mu.RUnlock()
	if !kept.md.equal(md) {
		t.Errorf("the sweep kept %v, want the trigger asked about 40m ago (%v)", kept.md.pairs(), md)
	}

	h.clk.Add(2 * time.Hour)
	h.server.Sweep()
	h.server.mu.RLock()
	n := len(h.server.cache)
	h.server.mu.RUnlock()
	if n != 0 {
		t.Errorf("cache holds %d ScaledObjects after 2h unasked, want 0", n)
	}
}

// TestMetadataCacheBound: edits of one ScaledObject's metadata keep at most
// maxEntriesPerRef variants, the newest.
func TestMetadataCacheBound(t *testing.T) {
	h := newHarness(t)
	md := func(i int) map[string]string {
		return map[string]string{"signal": "requests", "target": strconv.Itoa(i + 1)}
	}
	for i := range maxEntriesPerRef + 5 {
		if _, err := h.client.GetMetricSpec(ctx(t), ref("cart", md(i))); err != nil {
			t.Fatal(err)
		}
	}
	if n := h.cached("cart"); n != maxEntriesPerRef {
		t.Errorf("cache holds %d variants after %d edits, want %d", n, maxEntriesPerRef+5, maxEntriesPerRef)
	}
	h.server.mu.RLock()
	defer h.server.mu.RUnlock()
	for i := range maxEntriesPerRef + 5 {
		found := false
		for e := h.server.cache[refKey{"shop", "cart"}]; e != nil; e = e.next {
			found = found || e.md.equal(md(i))
		}
		if want := i >= 5; found != want {
			t.Errorf("variant %d cached: %v, want %v (the newest %d stay)", i, found, want, maxEntriesPerRef)
		}
	}
}

// pairs returns m as a map.
func (m metadata) pairs() map[string]string {
	md := map[string]string{}
	for s := string(m); s != ""; {
		var k, v string
		k, s = cutField(s)
		v, s = cutField(s)
		md[k] = v
	}
	return md
}

func TestMetadataEncoding(t *testing.T) {
	long := strings.Repeat("x", 300) // a length of two uvarint bytes
	for _, md := range []map[string]string{
		nil,
		{},
		{"signal": "requests"},
		{"scalerAddress": "ebb:9090", "signal": "requests", "target": "10", "activation": "1", "idleAfter": "30m"},
		{"unknownKey": "v", "": "", "query": long, long: "other"},
	} {
		m := metadata(appendMetadata(nil, md))
		if !m.equal(md) {
			t.Errorf("metadata of %v is not equal to its source", md)
		}
		if got := m.pairs(); len(got) != len(md) || !maps.Equal(got, md) && len(md) > 0 {
			t.Errorf("metadata of %v holds %v", md, got)
		}
		for k := range md { // a pair more, less or changed is not equal
			changed := maps.Clone(md)
			changed[k] += "!"
			fewer := maps.Clone(md)
			delete(fewer, k)
			if m.equal(changed) || m.equal(fewer) {
				t.Errorf("metadata of %v equals %v or %v", md, changed, fewer)
			}
		}
		more := maps.Clone(md)
		if more == nil {
			more = map[string]string{}
		}
		more["extra"] = "1"
		if m.equal(more) {
			t.Errorf("metadata of %v equals %v", md, more)
		}
	}
	if !metadata(appendMetadata(nil, nil)).equal(map[string]string{}) || !metadata(appendMetadata(nil, map[string]string{})).equal(nil) {
		t.Error("nil and empty metadata differ")
	}
	// Keys are not matched by value alone: {a: b} is not {b: a}.
	if metadata(appendMetadata(nil, map[string]string{"signal": "target"})).equal(map[string]string{"target": "signal"}) {
		t.Error("a pair with key and value swapped is equal")
	}
}

// TestStreamKeepsItsInterest: KEDA keeps a StreamIsActive open for hours
// without another call while the workload is at zero; the collector must
// keep evaluating it, and the stream must still carry the wake-up.
func TestStreamKeepsItsInterest(t *testing.T) {
	h := newHarness(t)
	cart := ref("cart", map[string]string{"signal": "requests", "target": "10", "idleAfter": "10s"})
	key := queries.WorkloadKey{Namespace: "shop", Name: "cart"}
	stream, err := h.client.StreamIsActive(ctx(t), cart)
	if err != nil {
		t.Fatal(err)
	}
	waitRegistered(t, h, key)
	// No traffic ever seen: idle at the first tick, and the first message.
	if r, err := stream.Recv(); err != nil || r.Result {
		t.Fatalf("at the first tick: %v, %v; want idle", r, err)
	}
	h.clk.Add(2 * time.Hour) // twice ForgetAfter, no call but the open stream
	h.collector.Refresh(context.Background())
	if _, queried := h.collector.Snapshot().ShapeErr(reqShape); !queried {
		t.Fatal("the collector forgot the interest of an open stream")
	}
	h.src.Set(reqShape, queries.Sample{Workload: key, Value: 1})
	h.tick()
	if r, err := stream.Recv(); err != nil || !r.Result {
		t.Fatalf("after traffic: %v, %v; want active", r, err)
	}
}

// TestMetadataCacheConcurrent: calls with more metadata variants of one
// ScaledObject than the cache keeps, from several goroutines while sweeps
// run, each get the trigger of their own metadata (run with -race).
func TestMetadataCacheConcurrent(t *testing.T) {
	h := newHarness(t)
	const variants = maxEntriesPerRef + 4
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				v := (g*7 + i) % variants
				md := map[string]string{"signal": "requests", "target": strconv.Itoa(v + 1)}
				e, _, err := h.server.resolve(ref("cart", md))
				if err != nil {
					errs <- err
					return
				}
				if e.trigger.Target != float64(v+1) {
					errs <- fmt.Errorf("metadata with target %d resolved to a trigger with target %g", v+1, e.trigger.Target)
					return
				}
				if i%50 == 0 {
					h.server.Sweep()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := h.cached("cart"); n > maxEntriesPerRef {
		t.Errorf("cache holds %d variants, want at most %d", n, maxEntriesPerRef)
	}
}

// TestFirstCallWaitsForFirstCollection: with the collector running, as in
// ebb serve, the first calls for a new trigger get the real answer of its
// first collection, not "unknown": KEDA's first poll of a new ScaledObject
// succeeds. When the store does not answer within the first wait, the
// answer is Unavailable, never true.
func TestFirstCallWaitsForFirstCollection(t *testing.T) {
	h := newHarness(t)
	h.server.cfg.FirstWait = 2 * time.Second
	runCtx, stop := context.WithCancel(context.Background())
	defer stop()
	go h.collector.Run(runCtx)

	h.src.Set(reqShape, queries.Sample{Workload: queries.WorkloadKey{Namespace: "shop", Name: "cart"}, Value: 12})
	idle := ref("idle", map[string]string{"signal": "requests", "target": "10"})
	if r, err := h.client.IsActive(ctx(t), idle); err != nil || r.Result {
		t.Errorf("first IsActive of a workload without traffic: %v, %v; want false", r, err)
	}
	// KEDA's next new trigger comes a KickGap later on ebb's clock, when
	// the collector refreshes for it at once.
	h.clk.Add(scaler.DefaultKickGap)
	cart := ref("cart", map[string]string{"signal": "requests", "target": "10"})
	m, err := h.client.GetMetrics(ctx(t), &pb.GetMetricsRequest{ScaledObjectRef: cart})
	if err != nil || m.MetricValues[0].MetricValueFloat != 12 {
		t.Errorf("first GetMetrics of a new trigger: %v, %v; want 12", m, err)
	}
	if r, err := h.client.IsActive(ctx(t), cart); err != nil || !r.Result {
		t.Errorf("IsActive after it: %v, %v; want true", r, err)
	}
	h.clk.Add(scaler.DefaultKickGap)
	stream, err := h.client.StreamIsActive(ctx(t), ref("cart2", map[string]string{"signal": "requests", "target": "10", "workload": "idle"}))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := stream.Recv(); err != nil || r.Result {
		t.Errorf("first message of a new stream: %v, %v; want false", r, err)
	}

	// The store hangs: a new trigger's first call waits FirstWait, then
	// answers Unavailable.
	h.server.cfg.FirstWait = 100 * time.Millisecond
	h.src.Hang()
	defer h.src.Release()
	late := ref("late", map[string]string{"signal": "gpu", "target": "70"})
	_, err = h.client.IsActive(ctx(t), late)
	if want := "shop/late gpu[1m]: activity unknown: not collected yet: the store has not answered its first query"; status.Code(err) != codes.Unavailable || status.Convert(err).Message() != want {
		t.Errorf("first IsActive while the store hangs: %v\nwant Unavailable %q", err, want)
	}
}

// TestHeldRequestsWakeAtOnce: a request the activator holds for an idle
// workload at zero is demand ebb sees itself: the open stream pushes true
// without waiting for the store or a tick, IsActive answers true, and a
// requests trigger's GetMetrics answers at least one replica's worth.
func TestHeldRequestsWakeAtOnce(t *testing.T) {
	h := newHarness(t)
	key := queries.WorkloadKey{Namespace: "shop", Name: "cart"}
	cart := ref("cart", map[string]string{"signal": "requests", "target": "10"})
	stream, err := h.client.StreamIsActive(ctx(t), cart)
	if err != nil {
		t.Fatal(err)
	}
	waitRegistered(t, h, key)
	if r, err := stream.Recv(); err != nil || r.Result {
		t.Fatalf("first message without traffic: %v, %v; want false", r, err)
	}
	h.collector.Pending(key, 1) // no tick after this
	if r, err := stream.Recv(); err != nil || !r.Result {
		t.Fatalf("after the first held request: %v, %v; want true pushed", r, err)
	}
	if r, err := h.client.IsActive(ctx(t), cart); err != nil || !r.Result {
		t.Errorf("IsActive while a request is held: %v, %v; want true", r, err)
	}
	m, err := h.client.GetMetrics(ctx(t), &pb.GetMetricsRequest{ScaledObjectRef: cart})
	if err != nil || m.MetricValues[0].MetricValueFloat != 10 {
		t.Errorf("GetMetrics while a request is held: %v, %v; want the target, 10", m, err)
	}
	// The store down past max staleness: the held demand still answers.
	h.src.Fail(&queries.QueryError{Shape: reqShape, Kind: "unreachable", Err: errors.New("connection refused")})
	h.clk.Add(2 * time.Minute)
	h.collector.Refresh(context.Background())
	if m, err := h.client.GetMetrics(ctx(t), &pb.GetMetricsRequest{ScaledObjectRef: cart}); err != nil || m.MetricValues[0].MetricValueFloat != 10 {
		t.Errorf("GetMetrics while held with stale data: %v, %v; want 10", m, err)
	}
	if r, err := h.client.IsActive(ctx(t), cart); err != nil || !r.Result {
		t.Errorf("IsActive while held with stale data: %v, %v; want true", r, err)
	}
}
