package promapi

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ebbscale/ebb/queries"
)

// vec renders a vector response of rows, each a metric object and a value.
func vec(rows ...string) string {
	return `{"status":"success","data":{"resultType":"vector","result":[` + strings.Join(rows, ",") + `]}}`
}

func row(metric, value string) string {
	return `{"metric":` + metric + `,"value":[1767225600,"` + value + `"]}`
}

func TestDecodeResponses(t *testing.T) {
	gpu1m := queries.Shape{Signal: queries.SignalGPU, Window: time.Minute}
	query := queries.Shape{Signal: queries.SignalQuery, Expr: `sum(up{namespace="a"})`}
	wl := func(ns, name string, v float64) queries.Sample {
		return queries.Sample{Workload: queries.WorkloadKey{Namespace: ns, Name: name}, Value: v}
	}
	const html502 = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"

	tests := []struct {
		name   string
		shape  queries.Shape
		status int
		body   string
		want   []queries.Sample
		// when kind is set, the error wanted: its kind, HTTP status, and
		// a part of its message
		kind, msg  string
		wantStatus int
	}{
		{name: "requests vector", shape: requests1m, status: 200,
			body: vec(
				row(`{"destination_workload_namespace":"shop","destination_workload":"web"}`, "2.5"),
				row(`{"destination_workload":"infer","destination_workload_namespace":"ml","extra":"x"}`, "4"),
			),
			want: []queries.Sample{wl("shop", "web", 2.5), wl("ml", "infer", 4)}},
		{name: "requests rows without a workload are dropped", shape: requests1m, status: 200,
			body: vec(
				row(`{"destination_workload_namespace":"shop"}`, "1"),
				row(`{"destination_workload":"web"}`, "1"),
				row(`{}`, "1"),
				row(`{"destination_workload_namespace":"shop","destination_workload":"cart"}`, "0"),
			),
			want: []queries.Sample{wl("shop", "cart", 0)}},
		{name: "empty vector", shape: requests1m, status: 200, body: emptyVector},
		{name: "NaN and infinities are dropped", shape: requests1m, status: 200,
			body: vec(
				row(`{"destination_workload_namespace":"a","destination_workload":"nan"}`, "NaN"),
				row(`{"destination_workload_namespace":"a","destination_workload":"inf"}`, "+Inf"),
				row(`{"destination_workload_namespace":"a","destination_workload":"-inf"}`, "-Inf"),
				row(`{"destination_workload_namespace":"a","destination_workload":"ok"}`, "1e3"),
			),
			want: []queries.Sample{wl("a", "ok", 1000)}},
		{name: "native histograms are dropped", shape: requests1m, status: 200,
			body: vec(`{"metric":{"destination_workload_namespace":"a","destination_workload":"h"},"histogram":[1767225600,{"count":"1","sum":"2"}]}`)},
		{name: "gpu sums pods of a workload", shape: gpu1m, status: 200,
			body: vec(
				// Two replicas of Deployment ml/infer at 63%, seen through
				// the exporter's own namespace and pod: 63 + 63 = 126.
				row(`{"namespace":"gpu-operator","pod":"dcgm-exporter-x2k4z","exported_namespace":"ml","exported_pod":"infer-7c9d8f6b5-x2k4z"}`, "63"),
				row(`{"namespace":"gpu-operator","pod":"dcgm-exporter-x2k4z","exported_namespace":"ml","exported_pod":"infer-7c9d8f6b5-q9w8r"}`, "63"),
				// StatefulSet ml/trainer: pod 0 at 35 (its GPUs' mean), pod 1
				// at 20: 35 + 20 = 55.
				row(`{"namespace":"ml","pod":"trainer-0"}`, "35"),
				row(`{"namespace":"ml","pod":"trainer-1"}`, "20"),
				// A pod named like no controller is its own workload.
				row(`{"namespace":"research","pod":"notebook-alice"}`, "12.5"),
				// The same pod under its own and its exported labels:
				// the rows are averaged, (10 + 30) / 2 = 20.
				row(`{"namespace":"lab","pod":"sim-0"}`, "10"),
				row(`{"namespace":"gpu-operator","pod":"dcgm-exporter-b2k4z","exported_namespace":"lab","exported_pod":"sim-0"}`, "30"),
				// A GPU in no pod is dropped.
				row(`{}`, "0"),
				row(`{"namespace":"ml","pod":"trainer-2"}`, "NaN"),
			),
			want: []queries.Sample{wl("lab", "sim", 20), wl("ml", "infer", 126), wl("ml", "trainer", 55), wl("research", "notebook-alice", 12.5)}},
		{name: "query vector is summed", shape: query, status: 200,
			body: vec(row(`{"a":"1"}`, "1.5"), row(`{"a":"2"}`, "NaN"), row(`{"a":"3"}`, "2")),
			want: []queries.Sample{{Value: 3.5}}},
		{name: "query scalar", shape: query, status: 200,
			body: `{"status":"success","data":{"resultType":"scalar","result":[1767225600,"-4"]}}`,
			want: []queries.Sample{{Value: -4}}},
		{name: "query NaN scalar is no value", shape: query, status: 200,
			body: `{"status":"success","data":{"resultType":"scalar","result":[1767225600,"NaN"]}}`},
		{name: "query only NaN is no value", shape: query, status: 200, body: vec(row(`{}`, "NaN"))},
		{name: "query empty vector", shape: query, status: 200, body: emptyVector},
		{name: "result before resultType", shape: query, status: 200,
			body: `{"data":{"result":[{"value":[1767225600,"5"],"metric":{}}],"resultType":"vector"},"status":"success"}`,
			want: []queries.Sample{{Value: 5}}},
		{name: "warnings and unknown fields", shape: query, status: 200,
			body: `{"status":"success","isPartial":false,"warnings":["partial response"],"data":{"resultType":"vector","result":[` + row(`{}`, "1") + `],"stats":{"seriesFetched":"1"}}}`,
			want: []queries.Sample{{Value: 1}}},

		{name: "matrix", shape: requests1m, status: 200,
			body: `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1767225600,"1"]]}]}}`,
			kind: queries.KindBadResponse, wantStatus: 200, msg: `unexpected resultType "matrix"`},
		{name: "matrix for a query", shape: query, status: 200,
			body: `{"status":"success","data":{"resultType":"matrix","result":[]}}`,
			kind: queries.KindBadResponse, wantStatus: 200, msg: `unexpected resultType "matrix"`},
		{name: "string", shape: query, status: 200,
			body: `{"status":"success","data":{"resultType":"string","result":[1767225600,"x"]}}`,
			kind: queries.KindBadResponse, wantStatus: 200, msg: `unexpected resultType "string"`},
		{name: "scalar for a signal", shape: requests1m, status: 200,
			body: `{"status":"success","data":{"resultType":"scalar","result":[1767225600,"1"]}}`,
			kind: queries.KindBadResponse, wantStatus: 200, msg: `unexpected resultType "scalar"`},
		{name: "truncated", shape: requests1m, status: 200,
			body: vec(row(`{"destination_workload_namespace":"a","destination_workload":"b"}`, "1"))[:90],
			kind: queries.KindBadResponse, wantStatus: 200, msg: "invalid JSON at offset 90: unexpected end of JSON input"},
		{name: "empty body", shape: requests1m, status: 200, body: "",
			kind: queries.KindBadResponse, wantStatus: 200, msg: "invalid JSON at offset 0: unexpected end of JSON input"},
		{name: "HTML with 200", shape: requests1m, status: 200, body: "<html>hello</html>",
			kind: queries.KindBadResponse, wantStatus: 200, msg: "invalid JSON at offset 1: invalid character '<' looking for beginning of value"},
		{name: "no data", shape: requests1m, status: 200, body: `{"status":"success"}`,
			kind: queries.KindBadResponse, wantStatus: 200, msg: "no data.result"},
		{name: "no status", shape: requests1m, status: 200, body: `{"data":{"resultType":"vector","result":[]}}`,
			kind: queries.KindBadResponse, wantStatus: 200, msg: `status "", want success or error`},
		{name: "value not a number", shape: requests1m, status: 200,
			body: vec(row(`{}`, "lots")),
			kind: queries.KindBadResponse, wantStatus: 200, msg: `data.result[0].value[1]: value "lots" is not a number`},
		{name: "sample without value", shape: requests1m, status: 200,
			body: vec(`{"metric":{}}`),
			kind: queries.KindBadResponse, wantStatus: 200, msg: "data.result[0]: vector sample without value"},
		{name: "data after the response", shape: requests1m, status: 200, body: emptyVector + ` {}`,
			kind: queries.KindBadResponse, wantStatus: 200, msg: "invalid JSON at offset 65: invalid character '{' after top-level value"},
		{name: "array for a response", shape: requests1m, status: 200, body: `[]`,
			kind: queries.KindBadResponse, wantStatus: 200, msg: "response is an array, want an object"},
		{name: "status not a string", shape: requests1m, status: 200, body: `{"status":true,"data":{"resultType":"vector","result":[]}}`,
			kind: queries.KindBadResponse, wantStatus: 200, msg: "status is true, want a string"},
		{name: "errorType not a string", shape: requests1m, status: 200, body: `{"status":"error","errorType":422,"error":"x"}`,
			kind: queries.KindBadResponse, wantStatus: 200, msg: "errorType is a number, want a string"},
		{name: "warnings not strings", shape: requests1m, status: 200, body: `{"status":"success","warnings":[null],"data":{"resultType":"vector","result":[]}}`,
			kind: queries.KindBadResponse, wantStatus: 200, msg: "warnings[0] is null, want a string"},
		{name: "data not an object", shape: requests1m, status: 200, body: `{"status":"success","data":[]}`,
			kind: queries.KindBadResponse, wantStatus: 200, msg: "data is an array, want an object"},
		{name: "result without resultType", shape: requests1m, status: 200, body: `{"status":"success","data":{"result":[]}}`,
			kind: queries.KindBadResponse, wantStatus: 200, msg: "data.result without data.resultType"},
		{name: "result not an array", shape: requests1m, status: 200, body: `{"status":"success","data":{"resultType":"vector","result":{}}}`,
			kind: queries.KindBadResponse, wantStatus: 200, msg: "data.result is an object, want an array"},
		{name: "sample not an object", shape: requests1m, status: 200, body: vec(row(`{}`, "1"), `"x"`),
			kind: queries.KindBadResponse, wantStatus: 200, msg: "data.result[1] is a string, want an object"},
		{name: "metric not an object", shape: requests1m, status: 200, body: vec(`{"metric":null,"value":[1767225600,"1"]}`),
			kind: queries.KindBadResponse, wantStatus: 200, msg: "data.result[0].metric is null, want an object"},
		{name: "value of three elements", shape: requests1m, status: 200, body: vec(`{"metric":{},"value":[1767225600,"1","2"]}`),
			kind: queries.KindBadResponse, wantStatus: 200, msg: `data.result[0].value is an array of 3, want [<unix time>, "<value>"]`},
		{name: "value a number, not a string", shape: requests1m, status: 200, body: vec(`{"metric":{},"value":[1767225600,1]}`),
			kind: queries.KindBadResponse, wantStatus: 200, msg: "data.result[0].value[1] is a number, want a string"},
		{name: "NaN time", shape: requests1m, status: 200, body: vec(`{"metric":{},"value":[NaN,"1"]}`),
			kind: queries.KindBadResponse, wantStatus: 200, msg: "data.result[0].value[0] = NaN, not a finite number"},
		{name: "scalar not a point", shape: query, status: 200, body: `{"status":"success","data":{"resultType":"scalar","result":"1"}}`,
			kind: queries.KindBadResponse, wantStatus: 200, msg: `data.result is a string, want [<unix time>, "<value>"]`},
		{name: "label value not a string", shape: requests1m, status: 200,
			body: vec(`{"metric":{"a":1},"value":[1767225600,"1"]}`),
			kind: queries.KindBadResponse, wantStatus: 200, msg: `data.result[0].metric["a"] is a number, want a string`},
		{name: "timestamp not a number", shape: requests1m, status: 200,
			body: vec(`{"metric":{},"value":["now","1"]}`),
			kind: queries.KindBadResponse, wantStatus: 200, msg: "data.result[0].value[0] is a string, want a number (the unix time)"},

		{name: "Prometheus bad_data", shape: query, status: 400,
			body: `{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:10: parse error: unclosed left parenthesis"}`,
			kind: queries.KindBadData, wantStatus: 400, msg: `bad_data: invalid parameter "query": 1:10: parse error: unclosed left parenthesis`},
		{name: "VictoriaMetrics refused query", shape: query, status: 422,
			body: `{"status":"error","errorType":"422","error":"error when executing query=\"sum(rate(\": unexpected token"}`,
			kind: queries.KindBadData, wantStatus: 422, msg: `422: error when executing query="sum(rate(": unexpected token`},
		{name: "Prometheus execution error", shape: requests1m, status: 422,
			body: `{"status":"error","errorType":"execution","error":"found duplicate series for the match group"}`,
			kind: queries.KindBadData, wantStatus: 422, msg: "execution: found duplicate series"},
		{name: "error in a 200", shape: requests1m, status: 200,
			body: `{"status":"error","errorType":"internal","error":"odd store"}`,
			kind: queries.KindBadData, wantStatus: 200, msg: "internal: odd store"},
		{name: "store timeout", shape: requests1m, status: 503,
			body: `{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}`,
			kind: queries.KindTimeout, wantStatus: 503, msg: "timeout: query timed out in expression evaluation"},
		{name: "store internal error", shape: requests1m, status: 500,
			body: `{"status":"error","errorType":"internal","error":"expanding series: too many open files"}`,
			kind: queries.KindHTTPStatus, wantStatus: 500, msg: "internal: expanding series: too many open files"},
		{name: "HTML 502 page", shape: requests1m, status: 502, body: html502,
			kind: queries.KindHTTPStatus, wantStatus: 502, msg: `unexpected response: "<html> <head><title>502 Bad Gateway</title></head>`},
		{name: "401 in plain text", shape: requests1m, status: 401, body: "Unauthorized\n",
			kind: queries.KindAuth, wantStatus: 401, msg: `/api/v1/query answered 401 Unauthorized: "Unauthorized"`},
		{name: "403 with error JSON", shape: requests1m, status: 403, body: `{"status":"error","errorType":"forbidden","error":"no tenant"}`,
			kind: queries.KindAuth, wantStatus: 403, msg: `/api/v1/query answered 403 Forbidden: "{\"status\":\"error\",\"errorType\":\"forbidden\",\"error\":\"no tenant\"}"`},
		{name: "VictoriaMetrics' unsupported path", shape: requests1m, status: 400,
			body: `remoteAddr: "127.0.0.1:44100"; requestURI: /foo/api/v1/query; unsupported path requested: "/foo/api/v1/query"` + "\n",
			kind: queries.KindWrongPath, wantStatus: 400, msg: `/api/v1/query answered 400 Bad Request: "remoteAddr: \"127.0.0.1:44100\"; requestURI: /foo/api/v1/query; unsupported path requested: \"/foo/api/v1/query\""`},
		{name: "404 with an empty body", shape: requests1m, status: 404, body: "",
			kind: queries.KindWrongPath, wantStatus: 404, msg: `/api/v1/query answered 404 Not Found: ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newSource(t, answer(tt.status, tt.body))
			got, err := p.Instant(context.Background(), tt.shape, epoch)
			if tt.kind != "" {
				qe := checkQueryError(t, err, tt.kind, tt.wantStatus, tt.msg)
				// A body that is no valid answer: the decoder's whole text.
				if tt.kind == queries.KindBadResponse && qe.Err.Error() != tt.msg {
					t.Errorf("decode error = %q, want %q", qe.Err, tt.msg)
				}
				if qe.Shape != tt.shape {
					t.Errorf("error shape = %v, want %v", qe.Shape, tt.shape)
				}
				if got != nil {
					t.Errorf("samples = %v with an error, want none", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Instant: %v", err)
			}
			sortSamples(got) // Instant promises no order
			sortSamples(tt.want)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("samples =\n%v\nwant\n%v", got, tt.want)
			}
		})
	}
}

func TestStoreErrorIsReachable(t *testing.T) {
	p := newSource(t, answer(400, `{"status":"error","errorType":"bad_data","error":"parse error"}`))
	_, err := p.Instant(context.Background(), queries.Shape{Signal: queries.SignalQuery, Expr: "sum("}, epoch)
	var se *StoreError
	if !errors.As(err, &se) || *se != (StoreError{Type: "bad_data", Message: "parse error"}) {
		t.Errorf("errors.As(%v, *StoreError) = %+v, want bad_data: parse error", err, se)
	}
}

// sink keeps benchmark results alive.
var sink []queries.Sample

func BenchmarkDecodeRequests(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		var body strings.Builder
		body.WriteString(`{"status":"success","data":{"resultType":"vector","result":[`)
		for i := 0; i < n; i++ {
			if i > 0 {
				body.WriteByte(',')
			}
			body.WriteString(row(`{"destination_workload_namespace":"ns-`+strconv.Itoa(i%50)+`","destination_workload":"workload-`+strconv.Itoa(i)+`"}`, "12.345"))
		}
		body.WriteString(`]}}`)
		data := body.String()
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for i := 0; i < b.N; i++ {
				var out []queries.Sample
				d := &instantDecoder{labels: []string{"destination_workload_namespace", "destination_workload"}}
				d.emit = func(vals []string, v float64) {
					out = append(out, queries.Sample{Workload: queries.WorkloadKey{Namespace: vals[0], Name: vals[1]}, Value: v})
				}
				if _, err := decodeResponse(nil, []byte(data), d); err != nil {
					b.Fatal(err)
				}
				sink = out
			}
		})
	}
}

type refSample struct {
	vals [2]string
	v    float64
}

// refVector decodes a vector response with encoding/json, as a reference
// for the decoder. ok is false unless body is a successful vector response.
func refVector(body []byte) (out []refSample, ok bool) {
	var top map[string]json.RawMessage
	var data map[string]json.RawMessage
	var status, resultType string
	var rows []map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil || json.Unmarshal(top["status"], &status) != nil || status != "success" ||
		json.Unmarshal(top["data"], &data) != nil || json.Unmarshal(data["resultType"], &resultType) != nil ||
		resultType != "vector" || json.Unmarshal(data["result"], &rows) != nil {
		return nil, false
	}
	for _, r := range rows {
		var metric map[string]string
		var value []json.RawMessage
		var ts float64
		var vs string
		if m, ok := r["metric"]; ok && json.Unmarshal(m, &metric) != nil {
			return nil, false
		}
		if json.Unmarshal(r["value"], &value) != nil || len(value) != 2 ||
			json.Unmarshal(value[0], &ts) != nil || json.Unmarshal(value[1], &vs) != nil {
			return nil, false
		}
		v, err := strconv.ParseFloat(vs, 64)
		if err != nil {
			return nil, false
		}
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			out = append(out, refSample{[2]string{metric["a"], metric["b"]}, v})
		}
	}
	return out, true
}

// decodeVector decodes a vector response as Instant does, keeping labels a, b.
func decodeVector(body []byte) ([]refSample, error) { return decodeVectorInterned(body, nil) }

// decodeVectorInterned is decodeVector with the label values interned by intern.
func decodeVectorInterned(body []byte, intern func([]byte) string) ([]refSample, error) {
	var out []refSample
	d := &instantDecoder{labels: []string{"a", "b"}, intern: intern}
	d.emit = func(vals []string, v float64) { out = append(out, refSample{[2]string{vals[0], vals[1]}, v}) }
	env, err := decodeResponse(nil, body, d)
	if err == nil && env.Status != "success" {
		err = errors.New("status " + env.Status)
	}
	return out, err
}

// decodeCorpus are valid responses that exercise the decoder's corners.
var decodeCorpus = []string{
	emptyVector,
	vec(row(`{"a":"x","b":"y"}`, "1"), row(`{"b":"only b"}`, "-2.5e-3"), row(`{}`, "NaN"), row(`{"a":"inf"}`, "+Inf")),
	// Escapes in names and values, Unicode, surrogate pairs.
	vec(row(`{"a":"q\"uo\\te\/\b\f\n\r\t","\u0062":"\u00e9\u4e16\ud83d\ude00"}`, "3")),
	vec(row(`{"a":"\ud83d\ude00x","b":"é世😀"}`, "4")),
	vec(row(`{"\u0061\u0062":"not a", "a":"\\u0041"}`, "5")),
	// White space everywhere, other key orders, unknown fields and values.
	" \n{ \"data\" : { \"result\" : [ { \"value\" : [ 1767225600.123 , \"6\" ] , \"metric\" : { \"b\" : \"z\" } } ] ,\r\n\t\"resultType\" : \"vector\" } , \"status\" : \"success\" } \n",
	`{"status":"success","stats":{"a":[1,2.5e10,-3,true,false,null,{"b":[[]]}],"c":""},"data":{"resultType":"vector","result":[` +
		`{"metric":{"a":"1"},"value":[1767225600,"7"],"extra":{"x":[null]}}]},"warnings":["w1","w\"2"],"infos":null}`,
	// The same label twice: the last one counts.
	vec(row(`{"a":"first","a":"second"}`, "8")),
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	for i, body := range decodeCorpus {
		want, ok := refVector([]byte(body))
		if !ok {
			t.Fatalf("corpus %d is not a valid vector response: %s", i, body)
		}
		got, err := decodeVector([]byte(body))
		if err != nil {
			t.Errorf("corpus %d: %v\n%s", i, err, body)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("corpus %d: decoder\n%+v\nencoding/json\n%+v", i, got, want)
		}
	}
}

// surrogateEscape matches a UTF-16 surrogate written as a \u escape.
var surrogateEscape = regexp.MustCompile(`(?i)\\ud[89a-f]`)

// TestDecodeKeepsUnpairedSurrogate pins where the decoder differs from
// encoding/json: a \u escape of half a surrogate pair, which no store
// writes (label values are UTF-8), stays as written where encoding/json
// puts U+FFFD.
func TestDecodeKeepsUnpairedSurrogate(t *testing.T) {
	t.Parallel()
	got, err := decodeVector([]byte(vec(row(`{"a":"\ud800x","b":"\ud83d\ude00"}`, "4"))))
	want := []refSample{{vals: [2]string{`\ud800x`, "😀"}, v: 4}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("decoded %+v, %v; want %+v", got, err, want)
	}
}

func FuzzDecodeResponse(f *testing.F) {
	for _, body := range decodeCorpus {
		f.Add([]byte(body))
	}
	f.Add([]byte(`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"1"},"values":[[1,"1"],[2,"NaN"]]}]}}`))
	f.Add([]byte(`{"status":"error","errorType":"bad_data","error":"x"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := decodeVector(body) // must not panic
		if err != nil {
			return
		}
		for _, s := range got {
			if math.IsNaN(s.v) || math.IsInf(s.v, 0) {
				t.Fatalf("non-finite value %v emitted", s.v)
			}
		}
		// Where encoding/json reads the same vector, the values agree;
		// except with a repeated key (Go keeps the last one) or invalid
		// UTF-8 or an unpaired surrogate escape (Go replaces them,
		// fastjson keeps them as the store sent them; see
		// TestDecodeKeepsUnpairedSurrogate).
		if want, ok := refVector(body); ok && utf8.Valid(body) && !hasRepeatedKey(body) && !surrogateEscape.Match(body) && !reflect.DeepEqual(got, want) {
			t.Fatalf("decoder\n%+v\nencoding/json\n%+v", got, want)
		}
		_, _ = decodeResponse(nil, body, &rangeDecoder{}) // must not panic
		// Interning the label values changes nothing, answer after answer.
		p := &Prometheus{caches: make(map[queries.Shape]*answerCache)}
		for range 2 {
			var again []refSample
			err := p.withAnswerCache(queries.Shape{Signal: queries.SignalRequests}, func(c *answerCache) (int, error) {
				var err error
				again, err = decodeVectorInterned(body, c.intern)
				return len(again), err
			})
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("interned: %+v, %v\nplain: %+v", again, err, got)
			}
		}
	})
}

// hasRepeatedKey reports whether an object in body has the same key twice.
func hasRepeatedKey(body []byte) bool {
	type frame struct {
		keys    map[string]bool
		obj     bool
		wantKey bool
	}
	var stack []*frame
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].obj {
			stack[n-1].wantKey = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			stack = append(stack, &frame{keys: map[string]bool{}, obj: tok == json.Delim('{'), wantKey: true})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
			continue
		}
		if n := len(stack); n > 0 && stack[n-1].obj && stack[n-1].wantKey {
			key := tok.(string)
			if stack[n-1].keys[key] {
				return true
			}
			stack[n-1].keys[key] = true
			stack[n-1].wantKey = false
			continue
		}
		valueDone()
	}
}

// sortSamples orders samples by workload, for comparisons.
func sortSamples(s []queries.Sample) {
	slices.SortFunc(s, func(a, b queries.Sample) int {
		return cmp.Or(strings.Compare(a.Workload.Namespace, b.Workload.Namespace), strings.Compare(a.Workload.Name, b.Workload.Name))
	})
}
