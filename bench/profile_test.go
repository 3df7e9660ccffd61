package bench

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ebbscale/ebb/queries/storetest"
)

// TestStoreProfile writes CPU profiles of Prometheus itself while it answers
// KEDA's per-object queries and while it answers ebb's batched query, at
// 1,000 workloads, to the directory EBB_BENCH_PROFILE names:
// prometheus-per-object.pprof and prometheus-batched.pprof. Read them with
// `go tool pprof -top FILE`.
func TestStoreProfile(t *testing.T) {
	dir := os.Getenv("EBB_BENCH_PROFILE")
	if dir == "" {
		t.Skip("set EBB_BENCH_PROFILE to a directory for Prometheus' profiles")
	}
	h := DefaultHistory(1_000)
	prom := storetest.StartPrometheus(t, storetest.PromOptions{History: h.Series()})
	ctx := context.Background()
	// One comparison first: it checks the values, and it leaves the
	// per-object connections' pool warm.
	if _, err := RunSideBySide(ctx, SideBySideConfig{URL: prom.URL, History: h, PerObjectRounds: 1, BatchedRounds: 1, Idle: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	for _, side := range []string{"per-object", "batched"} {
		// RunSideBySide runs both sides; profile while it repeats one of them.
		cfg := SideBySideConfig{URL: prom.URL, History: h, Idle: 100 * time.Millisecond, PerObjectRounds: 1, BatchedRounds: 1}
		if side == "per-object" {
			cfg.PerObjectRounds = 1_000_000
		} else {
			cfg.BatchedRounds = 1_000_000
		}
		pctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			RunSideBySide(pctx, cfg) // ends with an error when canceled
		}()
		time.Sleep(5 * time.Second) // past the warm-up and the other side
		err := fetchProfile(ctx, prom.URL, 10*time.Second, filepath.Join(dir, "prometheus-"+side+".pprof"))
		cancel()
		<-done
		if err != nil {
			t.Fatal(err)
		}
	}
}

func fetchProfile(ctx context.Context, storeURL string, d time.Duration, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, storeURL+"/debug/pprof/profile?seconds="+strconv.Itoa(int(d.Seconds())), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
