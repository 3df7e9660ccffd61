package promapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fastjson"

	"github.com/ebbscale/ebb/bench/promdata"
	"github.com/ebbscale/ebb/queries"
)

// The A/B of issue 16: the hand-written scanner against two well-kept
// decoders, github.com/valyala/fastjson (pooled, as VictoriaMetrics uses it)
// and encoding/json's streaming Decoder, on the answers BenchmarkInstant and
// scaler's BenchmarkRefreshPrometheus decode. Each turns a requests answer
// into samples as Instant does, interning the label values in a shape's
// answer cache where the decoder hands out bytes. bench/RESULTS.md holds
// the figures.

// decodeWith decodes a requests answer into samples.
type decodeWith func(body []byte, cache *answerCache, out []queries.Sample) ([]queries.Sample, error)

var requestLabels = [2]string{"destination_workload_namespace", "destination_workload"}

func decodeScanner(body []byte, cache *answerCache, out []queries.Sample) ([]queries.Sample, error) {
	d := &instantDecoder{labels: requestLabels[:], intern: cache.intern}
	d.emit = func(vals []string, v float64) {
		if vals[0] != "" && vals[1] != "" {
			out = append(out, queries.Sample{Workload: queries.WorkloadKey{Namespace: vals[0], Name: vals[1]}, Value: v})
		}
	}
	env, err := decodeResponse(body, d)
	if err == nil && env.Status != "success" {
		err = errors.New("status " + env.Status)
	}
	return out, err
}

var fastjsonParsers fastjson.ParserPool

// decodeFastjsonPooled takes a parser from a pool, as VictoriaMetrics does.
func decodeFastjsonPooled(body []byte, cache *answerCache, out []queries.Sample) ([]queries.Sample, error) {
	p := fastjsonParsers.Get()
	defer fastjsonParsers.Put(p)
	return decodeFastjson(p, body, cache, out)
}

// heldParser is the parser decodeFastjsonHeld keeps from one answer to the
// next, as a shape's answer cache could; the benchmarks run one at a time.
var heldParser fastjson.Parser

// decodeFastjsonHeld reuses one parser, which a pool cannot promise between
// ticks seconds apart: the garbage collector empties pools.
func decodeFastjsonHeld(body []byte, cache *answerCache, out []queries.Sample) ([]queries.Sample, error) {
	return decodeFastjson(&heldParser, body, cache, out)
}

func decodeFastjson(p *fastjson.Parser, body []byte, cache *answerCache, out []queries.Sample) ([]queries.Sample, error) {
	v, err := p.ParseBytes(body)
	if err != nil {
		return out, err
	}
	if s := v.GetStringBytes("status"); string(s) != "success" {
		return out, fmt.Errorf("status %q", s)
	}
	if t := v.GetStringBytes("data", "resultType"); string(t) != "vector" {
		return out, fmt.Errorf("resultType %q", t)
	}
	rows, err := v.Get("data", "result").Array()
	if err != nil {
		return out, err
	}
	for _, r := range rows {
		ns, name := r.GetStringBytes("metric", requestLabels[0]), r.GetStringBytes("metric", requestLabels[1])
		pt := r.GetArray("value")
		if len(pt) != 2 {
			return out, errors.New("vector sample without value")
		}
		vs, err := pt[1].StringBytes()
		if err != nil {
			return out, err
		}
		f, err := strconv.ParseFloat(string(vs), 64)
		if err != nil {
			return out, err
		}
		if math.IsNaN(f) || math.IsInf(f, 0) || len(ns) == 0 || len(name) == 0 {
			continue
		}
		out = append(out, queries.Sample{Workload: queries.WorkloadKey{Namespace: cache.intern(ns), Name: cache.intern(name)}, Value: f})
	}
	return out, nil
}

// jsonResponse is a requests answer as encoding/json reads it.
type jsonResponse struct {
	Status string `json:"status"`
	Data   struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	} `json:"data"`
}

func decodeEncodingJSON(body []byte, _ *answerCache, out []queries.Sample) ([]queries.Sample, error) {
	var resp jsonResponse
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&resp); err != nil {
		return out, err
	}
	if resp.Status != "success" || resp.Data.ResultType != "vector" {
		return out, fmt.Errorf("status %q, resultType %q", resp.Status, resp.Data.ResultType)
	}
	for _, r := range resp.Data.Result {
		vs, ok := r.Value[1].(string)
		if !ok {
			return out, errors.New("vector sample without value")
		}
		f, err := strconv.ParseFloat(vs, 64)
		if err != nil {
			return out, err
		}
		ns, name := r.Metric[requestLabels[0]], r.Metric[requestLabels[1]]
		if math.IsNaN(f) || math.IsInf(f, 0) || ns == "" || name == "" {
			continue
		}
		out = append(out, queries.Sample{Workload: queries.WorkloadKey{Namespace: ns, Name: name}, Value: f})
	}
	return out, nil
}

var decoders = []struct {
	name   string
	decode decodeWith
}{
	{"scanner", decodeScanner},
	{"fastjson-pooled", decodeFastjsonPooled},
	{"fastjson-held", decodeFastjsonHeld},
	{"encoding-json", decodeEncodingJSON},
}

func TestDecodersAgree(t *testing.T) {
	body := promdata.RequestsVector(1000, time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC))
	want, err := decodeScanner(body, newAnswerCache(), nil)
	if err != nil || len(want) != 1000 {
		t.Fatalf("scanner: %d samples, %v", len(want), err)
	}
	for _, d := range decoders[1:] {
		got, err := d.decode(body, newAnswerCache(), nil)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %d samples, %v; want the scanner's %d", d.name, len(got), err, len(want))
		}
	}
}

// newAnswerCache returns an unlocked cache for one decoder at a time.
func newAnswerCache() *answerCache { return &answerCache{strs: make(map[string]*interned)} }

var sinkAB []queries.Sample

// BenchmarkDecodeAB decodes one requests answer of n series per iteration
// with each decoder, reusing the answer cache and the samples' capacity as
// Instant does from one tick to the next.
func BenchmarkDecodeAB(b *testing.B) {
	at := time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)
	for _, n := range []int{100, 1_000, 10_000} {
		body := promdata.RequestsVector(n, at)
		for _, d := range decoders {
			b.Run(fmt.Sprintf("impl=%s/n=%d", d.name, n), func(b *testing.B) {
				cache := newAnswerCache()
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for b.Loop() {
					cache.gen++
					cache.inUse = 0
					out, err := d.decode(body, cache, make([]queries.Sample, 0, cache.rows))
					if err != nil {
						b.Fatal(err)
					}
					cache.rows = len(out)
					sinkAB = out
				}
			})
		}
	}
}
