package tools

// These tests drive `ebb serve` with KEDA's own external-scaler client code
// (github.com/kedacore/keda/v2/pkg/scalers), the code the KEDA operator runs
// for `external` and `external-push` triggers. They live in this module, not
// in ebb's, because pkg/scalers pulls in every cloud SDK that KEDA supports;
// the operator build has compiled all of it already. Run them the way
// `make test` does: `cd test/tools/keda && CGO_ENABLED=0 go test -trimpath .`
// (the same flags as the operator build, so that its build cache serves).

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kedacore/keda/v2/pkg/scalers"
	"github.com/kedacore/keda/v2/pkg/scalers/scalersconfig"
)

// need returns the path of a binary the tests need: they fail without it
// under CI=true and skip elsewhere.
func need(t *testing.T, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found: %s", name, install)
	}
	t.Skipf("%s not found: %s", name, install)
	return ""
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs a command until the test ends, its output in a log file that a
// failure shows.
func start(t *testing.T, name string, cmd *exec.Cmd) (logs func() string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		f.Close()
	})
	return func() string {
		b, _ := os.ReadFile(path)
		return string(b)
	}
}

// waitFor polls cond every 100 ms until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v\n%s", what, timeout, logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func httpOK(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// exporter serves Istio's request counter for shop/cart growing at 10 req/s
// in two series (as two sidecars report it), and nothing for shop/idle.
func exporter(t *testing.T) *httptest.Server {
	began := time.Now()
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		// Starting far from zero keeps Prometheus from shortening its
		// extrapolation toward a zero crossing.
		n := 1000 + time.Since(began).Seconds()*5
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintln(w, "# TYPE istio_requests_total counter")
		for _, pod := range []string{"cart-7c9d8b6f5d-x2kqp", "cart-7c9d8b6f5d-9rj4w"} {
			fmt.Fprintf(w, "istio_requests_total{reporter=\"destination\",source_workload=\"frontend\",source_workload_namespace=\"shop\",destination_workload=\"cart\",destination_workload_namespace=\"shop\",destination_service_name=\"cart\",destination_service_namespace=\"shop\",response_code=\"200\",pod=%q,namespace=\"shop\"} %g\n", pod, n)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// ebbBinary builds ebb from this checkout into a temporary folder, unless
// EBB_BIN names one.
func ebbBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("EBB_BIN"); p != "" {
		return p
	}
	out := filepath.Join(t.TempDir(), "ebb")
	cmd := exec.Command("go", "build", "-C", "../../..", "-o", out, "./cmd/ebb")
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build ebb: %v\n%s", err, b)
	}
	return out
}

// stack is a real Prometheus scraping the exporter every second, and
// `ebb serve` on it; it returns ebb's gRPC address.
func stack(t *testing.T) string {
	t.Helper()
	prom := need(t, "prometheus", "run 'make test-deps' (apt-get install prometheus)")
	bin := ebbBinary(t)
	x := exporter(t)

	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mesh\n    static_configs:\n      - targets: [%q]\n", strings.TrimPrefix(x.URL, "http://"))), 0o644)
	promAddr := freeAddr(t)
	promLogs := start(t, "prometheus", exec.Command(prom, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr))
	promURL := "http://" + promAddr
	// A full 10s window of scrapes: Prometheus' own rate is steady at 10.
	waitFor(t, "prometheus has cart's rate at 10/s", 60*time.Second, func() bool {
		resp, err := http.Get(promURL + "/api/v1/query?query=" + url.QueryEscape("sum(rate(istio_requests_total[10s])) > 9 < 11"))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `"value":[`)
	}, promLogs)

	grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
	ebbLogs := start(t, "ebb", exec.Command(bin, "serve", "--prometheus-url="+promURL, "--grpc-addr="+grpcAddr,
		"--http-addr="+httpAddr, "--interval=1s", "--log-format=text"))
	waitFor(t, "ebb ready", 30*time.Second, func() bool { return httpOK("http://" + httpAddr + "/readyz") }, ebbLogs)
	return grpcAddr
}

func config(addr, name string, index int) *scalersconfig.ScalerConfig {
	return &scalersconfig.ScalerConfig{
		ScalableObjectName:      name,
		ScalableObjectNamespace: "shop",
		ScalableObjectType:      "ScaledObject",
		TriggerType:             "external",
		TriggerIndex:            index,
		GlobalHTTPTimeout:       3 * time.Second,
		TriggerMetadata: map[string]string{
			"scalerAddress": addr, "signal": "requests", "target": "5", "window": "10s", "workload": name,
		},
	}
}

// TestKEDAFirstPoll: the first poll KEDA's scale loop makes for a new
// ScaledObject (GetMetricSpecForScaling, then GetMetricsAndActivity, which
// calls GetMetrics and IsActive and gives up at the first error) gets the
// workload's real value and activity. Before ebb waited for a trigger's
// first collection, this poll failed with "no value observed yet", and the
// next try came a polling interval later.
func TestKEDAFirstPoll(t *testing.T) {
	addr := stack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for i, tt := range []struct {
		name       string
		min, max   float64
		wantActive bool
	}{
		{"cart", 7, 13, true}, // 10 req/s, give or take the rate's edges
		{"idle", 0, 0, false}, // no series: no traffic, and never active since ebb started
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := scalers.NewExternalScaler(config(addr, tt.name, i))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(ctx)
			specs := s.GetMetricSpecForScaling(ctx)
			if len(specs) != 1 || specs[0].External == nil {
				t.Fatalf("GetMetricSpecForScaling = %+v, want one external metric", specs)
			}
			name := specs[0].External.Metric.Name
			if want := fmt.Sprintf("s%d-ebb-requests-%s", i, tt.name); name != want {
				t.Errorf("metric name %q, want %q", name, want)
			}
			if got := specs[0].External.Target.AverageValue; got == nil || got.Value() != 5 {
				t.Errorf("target %v, want an average value of 5", got)
			}
			metrics, active, err := s.GetMetricsAndActivity(ctx, name)
			if err != nil {
				t.Fatalf("first GetMetricsAndActivity: %v", err)
			}
			if len(metrics) != 1 {
				t.Fatalf("got %d metrics, want 1", len(metrics))
			}
			v := metrics[0].Value.AsApproximateFloat64()
			if v < tt.min || v > tt.max || active != tt.wantActive {
				t.Errorf("first poll: value %g, active %v; want %g..%g, %v", v, active, tt.min, tt.max, tt.wantActive)
			}
		})
	}
}

// TestKEDAFirstPush: KEDA's external-push client, opened for a new
// ScaledObject, receives the real activity as its first message: true for
// a workload with traffic, false for one without. A true that ebb does not
// know to be true would make KEDA scale the workload up at once.
func TestKEDAFirstPush(t *testing.T) {
	addr := stack(t)
	for i, tt := range []struct {
		name string
		want bool
	}{{"cart", true}, {"idle", false}} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cfg := config(addr, tt.name, i)
			cfg.TriggerType = "external-push"
			s, err := scalers.NewExternalPushScaler(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(ctx)
			active := make(chan bool, 4)
			go s.Run(ctx, active)
			select {
			case got := <-active:
				if got != tt.want {
					t.Errorf("first pushed activity %v, want %v", got, tt.want)
				}
			case <-ctx.Done():
				t.Fatal("nothing pushed within 30s")
			}
			// Nothing else follows while nothing changes.
			select {
			case got := <-active:
				t.Errorf("a second message %v while nothing changed", got)
			case <-time.After(3 * time.Second):
			}
		})
	}
}
