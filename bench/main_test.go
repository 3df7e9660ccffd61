package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestMain(m *testing.M) {
	ServeIfChild() // the load tests start this binary again as the server
	os.Exit(m.Run())
}

// The measured harness is off by default so that `go test ./...` stays
// fast: EBB_BENCH=1 runs the quick set, EBB_BENCH_LARGE=1 the large one.
// EBB_BENCH_REPEAT repeats each measured case (default 1, 3 when large).
// EBB_BENCH_OUT names a directory the results are also appended to (a
// relative one is relative to this package's directory).
func benchEnabled() bool { return os.Getenv("EBB_BENCH") == "1" || benchLarge() }

func benchLarge() bool { return os.Getenv("EBB_BENCH_LARGE") == "1" }

func requireBench(t *testing.T) {
	t.Helper()
	if !benchEnabled() {
		t.Skip("measurement harness: set EBB_BENCH=1 (quick) or EBB_BENCH_LARGE=1 (large); see bench/README.md")
	}
}

func repeats() int {
	if n, err := strconv.Atoi(os.Getenv("EBB_BENCH_REPEAT")); err == nil && n > 0 {
		return n
	}
	if benchLarge() {
		return 3
	}
	return 1
}

// record logs a result line and appends it to $EBB_BENCH_OUT/<file>.
func record(t *testing.T, file, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	t.Log(line)
	dir := os.Getenv("EBB_BENCH_OUT")
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, file), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintln(f, line); err != nil {
		t.Fatal(err)
	}
}
