package externalscaler

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ebbscale/ebb/queries/queriestest"
	"github.com/ebbscale/ebb/scaler"
)

// lockedBuffer is a log sink the server's goroutines write to.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// limitedServer is ebb's gRPC server with cfg on a real 127.0.0.1 socket,
// and its address.
func limitedServer(t *testing.T, cfg Config) (*Server, *clock.Mock, string) {
	t.Helper()
	clk := clock.NewMock()
	clk.Set(t0)
	c, err := scaler.NewCollector(scaler.Config{Source: &queriestest.FakeSource{}, Interval: 5 * time.Second, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Clock = clk
	srv := NewServer(c, cfg)
	g := NewGRPCServer(srv, c.Ready(), GRPCConfig{Registry: prometheus.NewRegistry()})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	t.Cleanup(srv.Shutdown)
	return srv, clk, lis.Addr().String()
}

func kedaClient(t *testing.T, addr string) pb.ExternalScalerClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewExternalScalerClient(conn)
}

// TestMaxWorkloads registers far more distinct ScaledObjects than
// --max-workloads through KEDA's client: the overflow is refused with
// ResourceExhausted naming the limit, the cache stays at the limit, the
// refusal is logged once, the admitted ones still answer, and a place
// freed by the sweep is taken again.
func TestMaxWorkloads(t *testing.T) {
	logs := &lockedBuffer{}
	srv, clk, addr := limitedServer(t, Config{MaxWorkloads: 3, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	client := kedaClient(t, addr)
	md := map[string]string{"signal": "requests", "target": "10"}
	spec := func(name string) error {
		_, err := client.GetMetricSpec(ctx(t), &pb.ScaledObjectRef{Name: name, Namespace: "shop", ScalerMetadata: md})
		return err
	}
	for i := range 3 {
		if err := spec(fmt.Sprintf("cart-%d", i)); err != nil {
			t.Fatalf("cart-%d: %v", i, err)
		}
	}
	for i := range 2000 {
		err := spec(fmt.Sprintf("bogus-%d", i))
		want := fmt.Sprintf("ebb serves at most 3 ScaledObjects (--max-workloads); shop/bogus-%d is refused until one is forgotten (--forget-after)", i)
		if status.Code(err) != codes.ResourceExhausted || status.Convert(err).Message() != want {
			t.Fatalf("bogus-%d: got %v, want ResourceExhausted %q", i, err, want)
		}
	}
	srv.mu.RLock()
	n := len(srv.cache)
	srv.mu.RUnlock()
	if n != 3 {
		t.Errorf("cache holds %d ScaledObjects after 2,000 refused, want 3", n)
	}
	// A trigger edit of an admitted ScaledObject is not a new workload.
	edited := map[string]string{"signal": "requests", "target": "20"}
	if _, err := client.GetMetricSpec(ctx(t), &pb.ScaledObjectRef{Name: "cart-1", Namespace: "shop", ScalerMetadata: edited}); err != nil {
		t.Errorf("edit of cart-1: %v", err)
	}
	if got := strings.Count(logs.String(), "workload limit reached"); got != 1 {
		t.Errorf("logged the limit %d times, want once:\n%s", got, logs)
	}
	if !strings.Contains(logs.String(), `level=WARN msg="workload limit reached: new ScaledObjects are refused until one is forgotten" limit=3 namespace=shop scaledObject=bogus-0`) {
		t.Errorf("log line missing or different:\n%s", logs)
	}
	// cart-0 and cart-1 are asked about; cart-2 is not, and is forgotten.
	clk.Add(2 * time.Hour)
	for _, name := range []string{"cart-0", "cart-1"} {
		if err := spec(name); err != nil {
			t.Fatal(err)
		}
	}
	srv.Sweep()
	if err := spec("new-0"); err != nil {
		t.Errorf("after the sweep freed a place: %v", err)
	}
	if err := spec("new-1"); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("beyond the limit again: got %v, want ResourceExhausted", err)
	}
}

// TestMessageSizeLimit sends a request larger than MaxRecvMsgSize.
func TestMessageSizeLimit(t *testing.T) {
	_, _, addr := limitedServer(t, Config{})
	client := kedaClient(t, addr)
	big := strings.Repeat("x", MaxRecvMsgSize)
	_, err := client.IsActive(ctx(t), &pb.ScaledObjectRef{Name: "cart", Namespace: "shop", ScalerMetadata: map[string]string{"query": big}})
	const want = "grpc: received message larger than max (1048603 vs. 1048576)"
	if status.Code(err) != codes.ResourceExhausted || status.Convert(err).Message() != want {
		t.Errorf("got %v, want ResourceExhausted %q", err, want)
	}
}

// TestHTTP2Limits reads the server's HTTP/2 settings as a client sees
// them, then pings faster than KeepaliveMinTime and is sent GOAWAY.
func TestHTTP2Limits(t *testing.T) {
	_, _, addr := limitedServer(t, Config{})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok {
		t.Fatalf("first frame %v, want SETTINGS", f)
	}
	if v, ok := sf.Value(http2.SettingMaxConcurrentStreams); !ok || v != MaxConcurrentStreams {
		t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS = %d (%v), want %d", v, ok, MaxConcurrentStreams)
	}
	for i := range 5 {
		if err := fr.WritePing(false, [8]byte{byte(i)}); err != nil {
			break // the server may close first
		}
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no GOAWAY before %v", err)
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			if g.ErrCode != http2.ErrCodeEnhanceYourCalm || string(g.DebugData()) != "too_many_pings" {
				t.Errorf("GOAWAY %v %q, want ENHANCE_YOUR_CALM too_many_pings", g.ErrCode, g.DebugData())
			}
			return
		}
	}
}

// TestMetadataSizeLimits checks the exact error for a value, a query and
// a name over their limits, and that values at the limit pass the check.
func TestMetadataSizeLimits(t *testing.T) {
	f := func(name string, md map[string]string, want string) {
		t.Helper()
		_, err := ParseTrigger(name, "shop", md, ParseOptions{})
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	long := strings.Repeat("1", MaxValueLen+1)
	f("cart", map[string]string{"signal": "requests", "target": long}, "metadata target: 257 bytes, longer than the limit of 256")
	f("cart", map[string]string{"signal": long, "target": "1"}, "metadata signal: 257 bytes, longer than the limit of 256")
	f("cart", map[string]string{"signal": "requests", "target": "1", "workload": strings.Repeat("a", 300)}, "metadata workload: 300 bytes, longer than the limit of 256")
	q := "sum(rate(http_requests_total[1m]))" + strings.Repeat(" ", MaxQueryLen)
	f("cart", map[string]string{"signal": "query", "target": "1", "query": q}, fmt.Sprintf("metadata query: %d bytes, longer than the limit of 4096", len(q)))
	f(strings.Repeat("c", 254), map[string]string{"signal": "requests", "target": "1", "workload": "cart"}, "scaledObjectRef name is 254 bytes, longer than the limit of 253")
	// At the limits: a query of 4096 bytes and a 253-byte name pass.
	q = "sum(rate(http_requests_total[1m]))"
	q += strings.Repeat(" ", MaxQueryLen-len(q))
	f("cart", map[string]string{"signal": "query", "target": "1", "query": q}, "")
	f(strings.Repeat("c", 253), map[string]string{"signal": "requests", "target": "1", "workload": "cart"}, "")
	// Many unknown keys: five are listed.
	md := map[string]string{"signal": "requests", "target": "1"}
	for i := range 1000 {
		md[fmt.Sprintf("k%04d", i)] = "v"
	}
	_, err := ParseTrigger("cart", "shop", md, ParseOptions{})
	want := "metadata k0000: unknown key (known: activation, idleAfter, quantile, query, server, signal, target, window, workload); unknown keys: k0000, k0001, k0002, k0003, k0004 and 995 more"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

// TestLimitsInREADME fails when the README does not state the metadata
// limits as LimitsText renders them.
func TestLimitsInREADME(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := LimitsText(); !strings.Contains(strings.Join(strings.Fields(string(readme)), " "), want) {
		t.Errorf("README.md's Trigger metadata section should say:\n%s", want)
	}
}
