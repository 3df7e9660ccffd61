package promapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fastjson"
)

// This file decodes Prometheus HTTP API responses with fastjson, as
// VictoriaMetrics does: the body is read into a pooled buffer, parsed by a
// reused parser, and only the labels a shape needs become strings, interned
// in the shape's answer cache. A tick over thousands of workloads then
// allocates little more than the strings of the workloads it has not seen.

// envelope is the part of a response around its data.
type envelope struct {
	Status    string   `json:"status"`
	ErrorType string   `json:"errorType"`
	Error     string   `json:"error"`
	Warnings  []string `json:"warnings"`
}

// resultDecoder reads data.result of the given resultType.
type resultDecoder interface {
	decodeResult(result *fastjson.Value, resultType string) error
}

// parsers are the parsers of answers that have no answer cache to hold one
// (query signals, range queries).
var parsers fastjson.ParserPool

// decodeResponse parses a whole response body with p (nil: a pooled
// parser), handing data.result to rd. A body whose status is "error" is
// returned as is, with a nil error; any other error means the body is not a
// valid response, and names where.
func decodeResponse(p *fastjson.Parser, body []byte, rd resultDecoder) (envelope, error) {
	if p == nil {
		p = parsers.Get()
		defer parsers.Put(p)
	}
	var env envelope
	v, err := p.ParseBytes(body)
	if err != nil {
		return env, syntaxError(body, err)
	}
	if v.Type() != fastjson.TypeObject {
		return env, fmt.Errorf("response is %s, want an object", kind(v))
	}
	for _, f := range []struct {
		name string
		to   *string
	}{{"status", &env.Status}, {"errorType", &env.ErrorType}, {"error", &env.Error}} {
		if *f.to, err = str(v.Get(f.name), f.name); err != nil {
			return env, err
		}
	}
	if env.Warnings, err = strs(v.Get("warnings"), "warnings"); err != nil {
		return env, err
	}
	switch env.Status {
	case "error":
		return env, nil
	case "success":
	default:
		return env, fmt.Errorf("status %q, want success or error", env.Status)
	}
	data := v.Get("data")
	if data == nil || data.Type() == fastjson.TypeNull {
		return env, errors.New("no data.result")
	}
	if data.Type() != fastjson.TypeObject {
		return env, fmt.Errorf("data is %s, want an object", kind(data))
	}
	resultType, err := str(data.Get("resultType"), "data.resultType")
	if err != nil {
		return env, err
	}
	result := data.Get("result")
	switch {
	case result == nil:
		return env, errors.New("no data.result")
	case resultType == "":
		return env, errors.New("data.result without data.resultType")
	}
	return env, rd.decodeResult(result, resultType)
}

// syntaxError says why body is not JSON. fastjson quotes only the text it
// stopped at; encoding/json, which reads the body again only on this path,
// gives the offset: the bytes it had read when it found the error.
func syntaxError(body []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(json.Unmarshal(body, new(json.RawMessage)), &se) {
		return fmt.Errorf("invalid JSON at offset %d: %s", se.Offset, se)
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

// kind names v's JSON type with its article, for errors.
func kind(v *fastjson.Value) string {
	switch t := v.Type(); t {
	case fastjson.TypeObject, fastjson.TypeArray:
		return "an " + t.String()
	case fastjson.TypeTrue, fastjson.TypeFalse, fastjson.TypeNull:
		return t.String()
	default:
		return "a " + t.String()
	}
}

// str returns the string v holds, "" for a missing v; path names v in errors.
func str(v *fastjson.Value, path string) (string, error) {
	if v == nil {
		return "", nil
	}
	b, err := v.StringBytes()
	if err != nil {
		return "", fmt.Errorf("%s is %s, want a string", path, kind(v))
	}
	return string(b), nil
}

// strs returns the strings of an array, or nil for a missing or null v.
func strs(v *fastjson.Value, path string) ([]string, error) {
	if v == nil || v.Type() == fastjson.TypeNull {
		return nil, nil
	}
	a, err := v.Array()
	if err != nil {
		return nil, fmt.Errorf("%s is %s, want an array of strings", path, kind(v))
	}
	out := make([]string, len(a))
	for i, e := range a {
		b, err := e.StringBytes()
		if err != nil {
			return nil, fmt.Errorf("%s[%d] is %s, want a string", path, i, kind(e))
		}
		out[i] = string(b)
	}
	return out, nil
}

// instantDecoder reads vector (and, when scalar is set, scalar) results and
// calls emit for every finite sample with the values of labels, "" for an
// absent label. vals is reused from one call to the next.
type instantDecoder struct {
	labels []string
	scalar bool
	emit   func(vals []string, v float64)
	// intern, when set, turns label values into strings (see answerCache).
	intern func([]byte) string
	// parser, when set, parses the answer (see answerCache); else a pooled one.
	parser *fastjson.Parser

	vals    []string
	series  int // samples read
	skipped int // NaN, infinite and histogram samples dropped, and rows emit refused
}

func (d *instantDecoder) decodeResult(result *fastjson.Value, resultType string) error {
	switch {
	case resultType == "vector":
		return d.vector(result)
	case resultType == "scalar" && d.scalar:
		_, v, err := point(result, func() string { return "data.result" })
		if err != nil {
			return err
		}
		d.series++
		d.add(nil, v)
		return nil
	}
	return fmt.Errorf("unexpected resultType %q", resultType)
}

func (d *instantDecoder) add(vals []string, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		d.skipped++
		return
	}
	d.emit(vals, v)
}

func (d *instantDecoder) text(b []byte) string {
	if d.intern != nil {
		return d.intern(b)
	}
	return string(b)
}

func (d *instantDecoder) vector(result *fastjson.Value) error {
	rows, err := result.Array()
	if err != nil {
		return fmt.Errorf("data.result is %s, want an array", kind(result))
	}
	if cap(d.vals) < len(d.labels) {
		d.vals = make([]string, len(d.labels))
	}
	vals := d.vals[:len(d.labels)]
	for i, row := range rows {
		obj, err := row.Object()
		if err != nil {
			return fmt.Errorf("data.result[%d] is %s, want an object", i, kind(row))
		}
		clear(vals)
		var v float64
		hasValue, hasHistogram := false, false
		obj.Visit(func(key []byte, f *fastjson.Value) {
			if err != nil {
				return
			}
			switch string(key) {
			case "metric":
				clear(vals) // a repeated metric replaces the first, as in encoding/json
				err = labelSet(f, i, func(name, value []byte) {
					for j, l := range d.labels {
						if string(name) == l {
							vals[j] = d.text(value)
						}
					}
				})
			case "value":
				hasValue = true
				_, v, err = point(f, func() string { return fmt.Sprintf("data.result[%d].value", i) })
			case "histogram":
				hasHistogram = true
			}
		})
		if err != nil {
			return err
		}
		d.series++
		switch {
		case hasValue:
			d.add(vals, v)
		case hasHistogram:
			d.skipped++
		default:
			return fmt.Errorf("data.result[%d]: vector sample without value", i)
		}
	}
	return nil
}

// labelSet calls fn with each name and value of the metric object of
// data.result[i]; both are valid only during the call. Every value must be
// a string.
func labelSet(metric *fastjson.Value, i int, fn func(name, value []byte)) error {
	obj, err := metric.Object()
	if err != nil {
		return fmt.Errorf("data.result[%d].metric is %s, want an object", i, kind(metric))
	}
	obj.Visit(func(name []byte, v *fastjson.Value) {
		if err != nil {
			return
		}
		b, e := v.StringBytes()
		if e != nil {
			err = fmt.Errorf("data.result[%d].metric[%q] is %s, want a string", i, name, kind(v))
			return
		}
		fn(name, b)
	})
	return err
}

// point reads [<unix seconds>, "<value>"]; where names it in errors.
func point(v *fastjson.Value, where func() string) (time.Time, float64, error) {
	a, err := v.Array()
	if err != nil || len(a) != 2 {
		what := kind(v)
		if err == nil {
			what = fmt.Sprintf("an array of %d", len(a))
		}
		return time.Time{}, 0, fmt.Errorf(`%s is %s, want [<unix time>, "<value>"]`, where(), what)
	}
	if a[0].Type() != fastjson.TypeNumber {
		return time.Time{}, 0, fmt.Errorf("%s[0] is %s, want a number (the unix time)", where(), kind(a[0]))
	}
	sec, err := a[0].Float64()
	if err != nil || math.IsNaN(sec) || math.IsInf(sec, 0) {
		return time.Time{}, 0, fmt.Errorf("%s[0] = %s, not a finite number", where(), a[0])
	}
	raw, err := a[1].StringBytes()
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("%s[1] is %s, want a string", where(), kind(a[1]))
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("%s[1]: value %q is not a number", where(), raw)
	}
	return time.UnixMilli(int64(math.Round(sec * 1000))).UTC(), f, nil
}

// rangeDecoder reads matrix results, keeping every label and every finite
// point.
type rangeDecoder struct {
	series  []Series
	points  int // points read
	skipped int // NaN and infinite points dropped
}

func (d *rangeDecoder) decodeResult(result *fastjson.Value, resultType string) error {
	if resultType != "matrix" {
		return fmt.Errorf("unexpected resultType %q", resultType)
	}
	rows, err := result.Array()
	if err != nil {
		return fmt.Errorf("data.result is %s, want an array", kind(result))
	}
	for i, row := range rows {
		obj, err := row.Object()
		if err != nil {
			return fmt.Errorf("data.result[%d] is %s, want an object", i, kind(row))
		}
		ser := Series{Labels: map[string]string{}}
		obj.Visit(func(key []byte, f *fastjson.Value) {
			if err != nil {
				return
			}
			switch string(key) {
			case "metric":
				clear(ser.Labels)
				err = labelSet(f, i, func(name, value []byte) { ser.Labels[string(name)] = string(value) })
			case "values":
				err = d.addPoints(f, i, &ser)
			}
		})
		if err != nil {
			return err
		}
		d.series = append(d.series, ser)
	}
	return nil
}

// addPoints adds the values of data.result[i] to ser.
func (d *rangeDecoder) addPoints(values *fastjson.Value, i int, ser *Series) error {
	a, err := values.Array()
	if err != nil {
		return fmt.Errorf("data.result[%d].values is %s, want an array", i, kind(values))
	}
	for j, pv := range a {
		t, v, err := point(pv, func() string { return fmt.Sprintf("data.result[%d].values[%d]", i, j) })
		if err != nil {
			return err
		}
		d.points++
		if math.IsNaN(v) || math.IsInf(v, 0) {
			d.skipped++
			continue
		}
		ser.Points = append(ser.Points, Point{T: t, V: v})
	}
	return nil
}

// parseErrorBody reads the error envelope of a non-2xx response. ok is false
// when body is not one (an HTML page from a proxy, say).
func parseErrorBody(body []byte) (env envelope, ok bool) {
	if err := json.Unmarshal(body, &env); err != nil {
		return envelope{}, false
	}
	return env, env.Status == "error" && env.Error != ""
}

// snippet returns the start of body on one line, for error messages: long
// enough for VictoriaMetrics' 400, which quotes the client's address, the
// whole request URI and then the cause.
func snippet(body []byte) string {
	const max = 256
	s := bytes.Join(bytes.Fields(body), []byte(" "))
	if len(s) > max {
		return string(s[:max]) + "…"
	}
	return string(s)
}

// bodyPool holds response buffers between queries; buffers that grew past
// maxPooledBody are left to the garbage collector.
var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledBody = 16 << 20

func getBody() *bytes.Buffer { b := bodyPool.Get().(*bytes.Buffer); b.Reset(); return b }

func putBody(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBody {
		bodyPool.Put(b)
	}
}
