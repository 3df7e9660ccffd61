package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Names of the binaries looked up in PATH.
const (
	PrometheusBinary      = "prometheus"
	PromtoolBinary        = "promtool"
	VictoriaMetricsBinary = "victoria-metrics"
)

// ErrMissingBinary reports that a store's binary is not installed.
var ErrMissingBinary = errors.New("binary not found in PATH")

// How long a store may take to start, to stop, and to show imported data.
const (
	startTimeout = 60 * time.Second
	stopTimeout  = 15 * time.Second
	pollInterval = 50 * time.Millisecond
	startTries   = 3
)

// Server is a store running as a child process of the test binary.
type Server struct {
	// Name is "prometheus" or "victoriametrics".
	Name string
	// URL is the base URL of the store's HTTP API, e.g. http://127.0.0.1:41234.
	URL string
	// Dir holds the store's configuration, data and log.
	Dir string

	logPath  string
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the process has exited
	waitErr  error         // set before exited is closed
	stopOnce sync.Once
	stopErr  error

	mu       sync.Mutex
	imported int // samples imported so far (VictoriaMetrics)
}

// Stop ends the store: SIGTERM, then SIGKILL if it has not exited after 15 s.
// It is safe to call more than once; later calls return the first result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		select {
		case <-s.exited:
			s.stopErr = fmt.Errorf("%s had already exited: %v", s.Name, s.waitErr)
			return
		default:
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(stopTimeout):
			_ = s.cmd.Process.Kill()
			<-s.exited
			s.stopErr = fmt.Errorf("%s did not stop within %v, killed", s.Name, stopTimeout)
		}
	})
	return s.stopErr
}

// Log returns the last few KiB the store wrote to its log.
func (s *Server) Log() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const max = 4 << 10
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// Require returns s when err is nil. Otherwise it ends the test: with a loud
// Skip when a binary is missing and CI is not "true", with Fatal in every
// other case. It lets tests use a server launched once in TestMain.
func Require(tb testing.TB, s *Server, err error) *Server {
	tb.Helper()
	if err == nil {
		return s
	}
	if errors.Is(err, ErrMissingBinary) && os.Getenv("CI") != "true" {
		fmt.Fprintf(os.Stderr, "\n*** storetest: SKIPPING %s: %v\n*** install the stores with `make test-deps`; under CI=true this test fails.\n\n", tb.Name(), err)
		tb.Skipf("SKIPPED, no real store: %v (install with `make test-deps`)", err)
		return nil
	}
	tb.Fatalf("storetest: %v", err)
	return nil
}

// lookPath finds a binary or returns an error wrapping ErrMissingBinary.
func lookPath(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, ErrMissingBinary)
	}
	return p, nil
}

// dataDir returns dir, or a new temporary directory and a func removing it.
func dataDir(dir, pattern string) (string, func(), error) {
	if dir != "" {
		return dir, func() {}, os.MkdirAll(dir, 0o755)
	}
	d, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", nil, err
	}
	return d, func() { _ = os.RemoveAll(d) }, nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// launch starts bin with the args returned by args(port) and waits until
// readyPath answers 200. A port taken in the meantime is retried on another.
func launch(name, bin, dir, readyPath string, args func(addr string) []string) (*Server, error) {
	var lastErr error
	for try := 0; try < startTries; try++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		s, err := spawn(name, bin, dir, addr, args(addr))
		if err != nil {
			return nil, err
		}
		if lastErr = s.waitReady(readyPath); lastErr == nil {
			return s, nil
		}
		_ = s.Stop()
		if !strings.Contains(s.Log(), "address already in use") {
			break
		}
	}
	return nil, lastErr
}

func spawn(name, bin, dir, addr string, args []string) (*Server, error) {
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &Server{Name: name, URL: "http://" + addr, Dir: dir, logPath: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		logFile.Close()
		close(s.exited)
	}()
	return s, nil
}

// waitReady polls path until it answers 200, the process exits, or time is up.
func (s *Server) waitReady(path string) error {
	deadline := time.Now().Add(startTimeout)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(s.URL + path)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("%s exited before it was ready (%v); log:\n%s", s.Name, s.waitErr, s.Log())
		case <-time.After(pollInterval):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready on %s after %v; log:\n%s", s.Name, s.URL+path, startTimeout, s.Log())
		}
	}
}

// PromOptions configures a Prometheus server.
type PromOptions struct {
	// History is loaded before start with promtool's OpenMetrics backfill.
	History []Series
	// RemoteWriteReceiver enables /api/v1/write.
	RemoteWriteReceiver bool
	// ScrapeTarget, if set, is a host:port Prometheus scrapes /metrics of
	// every ScrapeInterval (1 s when zero) as job "target".
	ScrapeTarget   string
	ScrapeInterval time.Duration
	// Dir holds data, config and log; a new temporary directory when empty.
	Dir string
}

// LaunchPrometheus starts Prometheus without a testing.TB, for TestMain.
// stop ends it and removes a directory it created; call it after m.Run.
func LaunchPrometheus(opts PromOptions) (s *Server, stop func(), err error) {
	bin, err := lookPath(PrometheusBinary)
	if err != nil {
		return nil, nil, err
	}
	dir, remove, err := dataDir(opts.Dir, "ebb-prometheus-*")
	if err != nil {
		return nil, nil, err
	}
	s, err = startPrometheus(bin, dir, opts)
	if err != nil {
		remove()
		return nil, nil, err
	}
	return s, func() { _ = s.Stop(); remove() }, nil
}

// StartPrometheus starts Prometheus for one test and stops it in Cleanup.
func StartPrometheus(tb testing.TB, opts PromOptions) *Server {
	tb.Helper()
	if opts.Dir == "" {
		opts.Dir = tb.TempDir()
	}
	s, stop, err := LaunchPrometheus(opts)
	Require(tb, s, err)
	tb.Cleanup(stop)
	return s
}

func startPrometheus(bin, dir string, opts PromOptions) (*Server, error) {
	data := filepath.Join(dir, "data")
	if len(opts.History) > 0 {
		if err := backfill(dir, data, opts.History); err != nil {
			return nil, err
		}
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(scrapeConfig(opts.ScrapeTarget, opts.ScrapeInterval, true)), 0o644); err != nil {
		return nil, err
	}
	return launch("prometheus", bin, dir, "/-/ready", func(addr string) []string {
		args := []string{
			"--config.file=" + cfgPath,
			"--storage.tsdb.path=" + data,
			"--storage.tsdb.retention.time=100y",
			"--web.listen-address=" + addr,
		}
		if opts.RemoteWriteReceiver {
			args = append(args, "--web.enable-remote-write-receiver")
		}
		return args
	})
}

// backfill writes history as OpenMetrics and turns it into TSDB blocks.
func backfill(dir, data string, history []Series) error {
	promtool, err := lookPath(PromtoolBinary)
	if err != nil {
		return err
	}
	file := filepath.Join(dir, "history.om")
	if err := os.WriteFile(file, []byte(OpenMetrics(history)), 0o644); err != nil {
		return err
	}
	out, err := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", file, data).CombinedOutput()
	if err != nil {
		return fmt.Errorf("promtool create-blocks-from openmetrics: %v: %s", err, out)
	}
	return nil
}

// scrapeConfig is a Prometheus configuration that scrapes target every
// interval (1 s when zero) as job "target", or nothing when target is empty;
// with evaluation, rules are evaluated as often.
func scrapeConfig(target string, interval time.Duration, evaluation bool) string {
	if interval <= 0 {
		interval = time.Second
	}
	var b strings.Builder
	b.WriteString("global:\n  scrape_interval: " + interval.String() + "\n")
	if evaluation {
		b.WriteString("  evaluation_interval: " + interval.String() + "\n")
	}
	if target == "" {
		b.WriteString("scrape_configs: []\n")
		return b.String()
	}
	b.WriteString("scrape_configs:\n  - job_name: target\n    static_configs:\n      - targets: [" + strconv.Quote(target) + "]\n")
	return b.String()
}

// VMOptions configures a VictoriaMetrics server.
type VMOptions struct {
	// History is imported after start; Launch returns once a query sees it.
	History []Series
	// ScrapeTarget, if set, is a host:port VictoriaMetrics scrapes /metrics
	// of every ScrapeInterval (1 s when zero) as job "target", with the
	// scrape configuration Prometheus would be given.
	ScrapeTarget   string
	ScrapeInterval time.Duration
	// Dir holds data and log; a new temporary directory when empty.
	Dir string
}

// LaunchVictoriaMetrics starts VictoriaMetrics without a testing.TB, for
// TestMain. stop ends it and removes a directory it created.
func LaunchVictoriaMetrics(opts VMOptions) (s *Server, stop func(), err error) {
	bin, err := lookPath(VictoriaMetricsBinary)
	if err != nil {
		return nil, nil, err
	}
	dir, remove, err := dataDir(opts.Dir, "ebb-victoriametrics-*")
	if err != nil {
		return nil, nil, err
	}
	var scrape []string
	if opts.ScrapeTarget != "" {
		cfgPath := filepath.Join(dir, "scrape.yml")
		// VictoriaMetrics evaluates no rules and refuses the unknown key.
		cfg := scrapeConfig(opts.ScrapeTarget, opts.ScrapeInterval, false)
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			remove()
			return nil, nil, err
		}
		scrape = []string{"-promscrape.config=" + cfgPath}
	}
	s, err = launch("victoriametrics", bin, dir, "/health", func(addr string) []string {
		return append([]string{
			"-storageDataPath=" + filepath.Join(dir, "data"),
			"-retentionPeriod=100y",
			"-httpListenAddr=" + addr,
			// Answers must reflect the data as it is now, not as cached.
			"-search.disableCache",
		}, scrape...)
	})
	if err != nil {
		remove()
		return nil, nil, err
	}
	stop = func() { _ = s.Stop(); remove() }
	if len(opts.History) > 0 {
		if err := s.Import(opts.History); err != nil {
			stop()
			return nil, nil, err
		}
	}
	return s, stop, nil
}

// StartVictoriaMetrics starts VictoriaMetrics for one test and stops it in
// Cleanup.
func StartVictoriaMetrics(tb testing.TB, opts VMOptions) *Server {
	tb.Helper()
	if opts.Dir == "" {
		opts.Dir = tb.TempDir()
	}
	s, stop, err := LaunchVictoriaMetrics(opts)
	Require(tb, s, err)
	tb.Cleanup(stop)
	return s
}

// Import loads series into a VictoriaMetrics server through
// /api/v1/import/prometheus, flushes, and waits until an export sees every
// sample imported so far.
func (s *Server) Import(series []Series) error {
	if s.Name != "victoriametrics" {
		return fmt.Errorf("import: %s cannot import, load history at start", s.Name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := s.call(ctx, http.MethodPost, "/api/v1/import/prometheus", strings.NewReader(PrometheusText(series)), nil); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	s.imported += countSamples(series)
	for {
		if err := s.call(ctx, http.MethodGet, "/internal/force_flush", nil, nil); err != nil {
			return fmt.Errorf("force flush: %w", err)
		}
		n, err := s.exportedSamples(ctx)
		if err != nil {
			return err
		}
		if n >= s.imported {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("import: %d of %d samples visible after %v", n, s.imported, startTimeout)
		case <-time.After(pollInterval):
		}
	}
}

// exportedSamples counts every raw sample /api/v1/export returns.
func (s *Server) exportedSamples(ctx context.Context) (int, error) {
	q := url.Values{"match[]": {`{__name__=~".+"}`}, "start": {"0"}}
	n := 0
	err := s.call(ctx, http.MethodGet, "/api/v1/export?"+q.Encode(), nil, func(body io.Reader) error {
		dec := json.NewDecoder(body)
		for {
			var line struct {
				Timestamps []int64 `json:"timestamps"`
			}
			if err := dec.Decode(&line); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
			n += len(line.Timestamps)
		}
	})
	if err != nil {
		return 0, fmt.Errorf("export: %w", err)
	}
	return n, nil
}

// call sends one request to the store and fails on a status other than 2xx.
func (s *Server) call(ctx context.Context, method, path string, body io.Reader, read func(io.Reader) error) error {
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, body)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(msg))
	}
	if read != nil {
		return read(resp.Body)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}
