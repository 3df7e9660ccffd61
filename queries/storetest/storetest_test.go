package storetest

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestTextFormats(t *testing.T) {
	series := []Series{
		{Metric: "up", Labels: map[string]string{"job": `a"b\c`, "instance": "x"}, Samples: []Sample{
			{T: Epoch, V: 1}, {T: Epoch.Add(1500 * time.Millisecond), V: 0.5},
		}},
		{Metric: "errors_total", Samples: Linear(Epoch, 15*time.Second, 2, 1000, 7.5)},
	}
	wantOM := `errors_total 1000 1767225600
errors_total 1007.5 1767225615
up{instance="x",job="a\"b\\c"} 1 1767225600
up{instance="x",job="a\"b\\c"} 0.5 1767225601.500
# EOF
`
	if got := OpenMetrics(series); got != wantOM {
		t.Errorf("OpenMetrics =\n%s\nwant\n%s", got, wantOM)
	}
	wantText := `errors_total 1000 1767225600000
errors_total 1007.5 1767225615000
up{instance="x",job="a\"b\\c"} 1 1767225600000
up{instance="x",job="a\"b\\c"} 0.5 1767225601500
`
	if got := PrometheusText(series); got != wantText {
		t.Errorf("PrometheusText =\n%s\nwant\n%s", got, wantText)
	}
}

// checkStopped fails unless s answers before Stop and refuses after it.
func checkStopped(t *testing.T, s *Server, path string) {
	t.Helper()
	resp, err := http.Get(s.URL + path)
	if err != nil {
		t.Fatalf("before Stop: %v", err)
	}
	resp.Body.Close()
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if resp, err := http.Get(s.URL + path); err == nil {
		resp.Body.Close()
		t.Errorf("after Stop: %s answered %s", s.URL, resp.Status)
	}
}

func TestPrometheusStartStop(t *testing.T) {
	s := StartPrometheus(t, PromOptions{
		History:             []Series{{Metric: "up", Samples: Constant(Epoch, time.Minute, 3, 1)}},
		RemoteWriteReceiver: true,
		ScrapeTarget:        "127.0.0.1:1", // nothing there; the config must load all the same
	})
	checkStopped(t, s, "/-/ready")
}

func TestVictoriaMetricsImport(t *testing.T) {
	s := StartVictoriaMetrics(t, VMOptions{History: []Series{{Metric: "up", Samples: Constant(Epoch, time.Minute, 3, 1)}}})
	// More data later: Import returns once it is all visible.
	if err := s.Import([]Series{{Metric: "up", Labels: map[string]string{"job": "b"}, Samples: Constant(Epoch, time.Minute, 2, 1)}}); err != nil {
		t.Fatal(err)
	}
	checkStopped(t, s, "/health")
}

// recorder is a testing.TB that records Skipf and Fatalf instead of ending
// the test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                       {}
func (r *recorder) Name() string                  { return "TestSomething" }
func (r *recorder) Skipf(format string, a ...any) { r.skipped = fmt.Sprintf(format, a...) }
func (r *recorder) Fatalf(format string, a ...any) {
	r.failed = fmt.Sprintf(format, a...)
}

func TestMissingBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, _, err := LaunchPrometheus(PromOptions{})
	if !errors.Is(err, ErrMissingBinary) || err.Error() != "prometheus: binary not found in PATH" {
		t.Fatalf("LaunchPrometheus error = %v, want ErrMissingBinary", err)
	}
	if _, _, err := LaunchVictoriaMetrics(VMOptions{}); !errors.Is(err, ErrMissingBinary) {
		t.Fatalf("LaunchVictoriaMetrics error = %v, want ErrMissingBinary", err)
	}

	t.Setenv("CI", "")
	r := &recorder{}
	Require(r, nil, err)
	if !strings.Contains(r.skipped, "prometheus: binary not found") || r.failed != "" {
		t.Errorf("locally: skipped %q, failed %q; want a skip", r.skipped, r.failed)
	}
	t.Setenv("CI", "true")
	r = &recorder{}
	Require(r, nil, err)
	if r.skipped != "" || !strings.Contains(r.failed, "prometheus: binary not found") {
		t.Errorf("in CI: skipped %q, failed %q; want a failure", r.skipped, r.failed)
	}
}
