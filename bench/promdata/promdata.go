// Package promdata generates, deterministically, the Prometheus HTTP API
// answers ebb's batched queries get for N workloads, and serves them from
// memory, so that benchmarks decode realistic bodies without a network or
// committed testdata.
package promdata

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Namespaces is how many namespaces the workloads are spread over.
const Namespaces = 50

// Namespace returns the namespace of workload i: "team-07".
func Namespace(i int) string { return "team-" + pad2(i%Namespaces) }

// Name returns the name of workload i: "checkout-api-123". Names vary in
// length as real ones do.
func Name(i int) string { return prefixes[i%len(prefixes)] + "-" + strconv.Itoa(i) }

var prefixes = []string{"checkout-api", "cart", "llm-serving", "search-frontend", "notebook", "recommendations-v2", "auth"}

func pad2(n int) string {
	if n < 10 {
		return "0" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}

// RequestRate returns workload i's request rate in the generated answers. It
// is a multiple of 1/8, so it prints and parses exactly.
func RequestRate(i int) float64 { return float64(i%997) / 8 }

// GPUUtil returns the mean GPU utilization of workload i's pod.
func GPUUtil(i int) float64 { return float64(i%101) / 4 }

// Pod returns the name of workload i's pod, as a Deployment names it:
// "<name>-<pod-template-hash>-<suffix>".
func Pod(i int) string { return Name(i) + "-7d9f8c6b5d-" + suffix(i) }

// suffix returns 5 characters from Kubernetes' safe alphabet, distinct per i.
func suffix(i int) string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	var b [5]byte
	for k := range b {
		b[k] = alphabet[i%len(alphabet)]
		i /= len(alphabet)
	}
	return string(b[:])
}

// RequestsVector returns the answer to ebb's requests query at at: one
// series per workload 0..n-1, labelled with destination_workload_namespace
// and destination_workload, as Prometheus renders it.
func RequestsVector(n int, at time.Time) []byte {
	ts := formatTime(at)
	var b bytes.Buffer
	b.Grow(n * 130)
	b.WriteString(`{"status":"success","data":{"resultType":"vector","result":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"metric":{"destination_workload":"`)
		b.WriteString(Name(i))
		b.WriteString(`","destination_workload_namespace":"`)
		b.WriteString(Namespace(i))
		b.WriteString(`"},"value":[`)
		b.WriteString(ts)
		b.WriteString(`,"`)
		b.WriteString(strconv.FormatFloat(RequestRate(i), 'g', -1, 64))
		b.WriteString(`"]}`)
	}
	b.WriteString(`]}}`)
	return b.Bytes()
}

// GPUVector returns the answer to ebb's gpu query at at: one series per pod
// of workloads 0..n-1 (one pod each), labelled with namespace and pod.
func GPUVector(n int, at time.Time) []byte {
	ts := formatTime(at)
	var b bytes.Buffer
	b.Grow(n * 120)
	b.WriteString(`{"status":"success","data":{"resultType":"vector","result":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"metric":{"namespace":"`)
		b.WriteString(Namespace(i))
		b.WriteString(`","pod":"`)
		b.WriteString(Pod(i))
		b.WriteString(`"},"value":[`)
		b.WriteString(ts)
		b.WriteString(`,"`)
		b.WriteString(strconv.FormatFloat(GPUUtil(i), 'g', -1, 64))
		b.WriteString(`"]}`)
	}
	b.WriteString(`]}}`)
	return b.Bytes()
}

// EmptyMatrix is the answer to a range query that matched nothing.
var EmptyMatrix = []byte(`{"status":"success","data":{"resultType":"matrix","result":[]}}`)

func formatTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', -1, 64)
}

// Store is an http.RoundTripper that answers ebb's queries from memory:
// instant queries whose expression mentions GPUMetric get GPU, other
// instant queries Requests, and range queries EmptyMatrix. It counts
// nothing and never fails.
type Store struct {
	Requests, GPU []byte
	// GPUMetric tells the gpu query apart; "DCGM_FI_DEV_GPU_UTIL" when empty.
	GPUMetric string
}

var _ http.RoundTripper = (*Store)(nil)

// RoundTrip implements http.RoundTripper.
func (s *Store) RoundTrip(req *http.Request) (*http.Response, error) {
	var form url.Values
	if req.Body != nil {
		raw, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		if form, err = url.ParseQuery(string(raw)); err != nil {
			return nil, err
		}
	}
	for k, v := range req.URL.Query() {
		if form == nil {
			form = url.Values{}
		}
		form[k] = append(form[k], v...)
	}
	gpuMetric := s.GPUMetric
	if gpuMetric == "" {
		gpuMetric = "DCGM_FI_DEV_GPU_UTIL"
	}
	body := s.Requests
	switch {
	case strings.HasSuffix(req.URL.Path, "/query_range"):
		body = EmptyMatrix
	case strings.Contains(form.Get("query"), gpuMetric):
		body = s.GPU
	}
	return &http.Response{
		StatusCode:    http.StatusOK,
		Status:        "200 OK",
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}, nil
}
