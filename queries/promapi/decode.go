package promapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// This file decodes Prometheus HTTP API responses. The body is read into a
// pooled buffer and scanned in place by a small JSON scanner that keeps only
// the labels a shape needs: a tick over thousands of workloads allocates
// little more than the strings of the workloads' names.

// envelope is the part of a response around its data.
type envelope struct {
	Status    string   `json:"status"`
	ErrorType string   `json:"errorType"`
	Error     string   `json:"error"`
	Warnings  []string `json:"warnings"`
}

// resultDecoder reads data.result of the given resultType.
type resultDecoder interface {
	decodeResult(s *scanner, resultType string) error
}

// decodeResponse reads a whole response body, handing data.result to rd.
// A body whose status is "error" is returned as is, with a nil error; any
// other error means the body is not a valid response.
func decodeResponse(body []byte, rd resultDecoder) (envelope, error) {
	var env envelope
	s := &scanner{b: body}
	sawResult := false
	err := s.object(func(key []byte) (err error) {
		switch string(key) {
		case "status":
			env.Status, err = s.str()
		case "errorType":
			env.ErrorType, err = s.str()
		case "error":
			env.Error, err = s.str()
		case "warnings":
			env.Warnings, err = s.strs()
		case "data":
			sawResult, err = decodeData(s, rd)
		default:
			err = s.skip(0)
		}
		return err
	})
	if err != nil {
		return env, err
	}
	if s.ws(); s.i != len(s.b) {
		return env, s.errorf("data after the response")
	}
	switch {
	case env.Status == "error":
		return env, nil
	case env.Status != "success":
		return env, fmt.Errorf("status %q, want success or error", env.Status)
	case !sawResult:
		return env, errors.New("no data.result")
	}
	return env, nil
}

// decodeData reads the data object. A result that comes before its
// resultType is skipped and decoded once the type is known.
func decodeData(s *scanner, rd resultDecoder) (sawResult bool, err error) {
	if null, err := s.null(); null || err != nil {
		return false, err // "data": null, as in some error responses
	}
	var resultType string
	early := -1
	err = s.object(func(key []byte) error {
		switch {
		case string(key) == "resultType":
			t, err := s.str()
			resultType = t
			return err
		case string(key) == "result" && resultType != "":
			sawResult = true
			return rd.decodeResult(s, resultType)
		case string(key) == "result":
			sawResult = true
			s.ws()
			early = s.i
		}
		return s.skip(0)
	})
	switch {
	case err != nil:
		return false, err
	case sawResult && resultType == "":
		return false, errors.New("data.result without data.resultType")
	case early >= 0:
		return true, rd.decodeResult(&scanner{b: s.b, i: early}, resultType)
	}
	return sawResult, nil
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

	vals    []string
	series  int // samples read
	skipped int // NaN, infinite and histogram samples dropped, and rows emit refused
}

func (d *instantDecoder) decodeResult(s *scanner, resultType string) error {
	switch {
	case resultType == "vector":
		return d.vector(s)
	case resultType == "scalar" && d.scalar:
		_, v, err := s.point()
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

func (d *instantDecoder) vector(s *scanner) error {
	if cap(d.vals) < len(d.labels) {
		d.vals = make([]string, len(d.labels))
	}
	vals := d.vals[:len(d.labels)]
	setLabel := func(name, raw []byte, escaped bool) {
		for i, l := range d.labels {
			if string(name) == l {
				if d.intern != nil && !escaped {
					vals[i] = d.intern(raw)
				} else {
					vals[i] = s.text(raw, escaped)
				}
			}
		}
	}
	return s.array(func() error {
		clear(vals)
		var v float64
		hasValue, hasHistogram := false, false
		err := s.object(func(key []byte) (err error) {
			switch string(key) {
			case "metric":
				clear(vals) // a repeated metric replaces the first, as in encoding/json
				return s.labelSet(setLabel)
			case "value":
				hasValue = true
				_, v, err = s.point()
				return err
			case "histogram":
				hasHistogram = true
			}
			return s.skip(0)
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
			return errors.New("vector sample without value")
		}
		return nil
	})
}

// rangeDecoder reads matrix results, keeping every label and every finite
// point.
type rangeDecoder struct {
	series  []Series
	points  int // points read
	skipped int // NaN and infinite points dropped
}

func (d *rangeDecoder) decodeResult(s *scanner, resultType string) error {
	if resultType != "matrix" {
		return fmt.Errorf("unexpected resultType %q", resultType)
	}
	return s.array(func() error {
		ser := Series{Labels: map[string]string{}}
		err := s.object(func(key []byte) error {
			switch string(key) {
			case "metric":
				return s.labelSet(func(name, raw []byte, escaped bool) {
					ser.Labels[string(name)] = s.text(raw, escaped)
				})
			case "values":
				return s.array(func() error { return d.addPoint(s, &ser) })
			}
			return s.skip(0)
		})
		d.series = append(d.series, ser)
		return err
	})
}

func (d *rangeDecoder) addPoint(s *scanner, ser *Series) error {
	t, v, err := s.point()
	if err != nil {
		return err
	}
	d.points++
	if math.IsNaN(v) || math.IsInf(v, 0) {
		d.skipped++
		return nil
	}
	ser.Points = append(ser.Points, Point{T: t, V: v})
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

// snippet returns the start of body on one line, for error messages.
func snippet(body []byte) string {
	const max = 200
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

// scanner reads JSON held in memory. Strings it returns are copies; byte
// slices it returns are valid until its next call.
type scanner struct {
	b    []byte
	i    int
	tmp  []byte // unescaped keys and strings
	vtmp []byte // unescaped label values, apart so a key outlives its value
}

// maxDepth bounds the nesting of values skipped.
const maxDepth = 64

func (s *scanner) errorf(format string, args ...any) error {
	return fmt.Errorf("invalid JSON at offset %d: %s", s.i, fmt.Sprintf(format, args...))
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next byte that is not white space, without reading it.
func (s *scanner) peek() (byte, error) {
	s.ws()
	if s.i >= len(s.b) {
		return 0, s.errorf("unexpected end")
	}
	return s.b[s.i], nil
}

func (s *scanner) expect(c byte) error {
	got, err := s.peek()
	if err != nil {
		return err
	}
	if got != c {
		return s.errorf("got %q, want %q", got, c)
	}
	s.i++
	return nil
}

// next reports whether another element of an array or object follows, after
// reading the comma before it; at end it reads end and returns false. n
// counts the elements read so far and starts at 0.
func (s *scanner) next(n *int, end byte) (bool, error) {
	c, err := s.peek()
	if err != nil {
		return false, err
	}
	if c == end {
		s.i++
		return false, nil
	}
	if *n > 0 {
		if c != ',' {
			return false, s.errorf("got %q, want ',' or %q", c, end)
		}
		s.i++
	}
	*n++
	return true, nil
}

// object reads an object, calling fn with each key; fn reads the value. The
// key is valid until the next key is read.
func (s *scanner) object(fn func(key []byte) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	for n := 0; ; {
		more, err := s.next(&n, '}')
		if err != nil || !more {
			return err
		}
		key, err := s.key()
		if err != nil {
			return err
		}
		if err := fn(key); err != nil {
			return err
		}
	}
}

// array reads an array, calling fn to read each element.
func (s *scanner) array(fn func() error) error {
	if err := s.expect('['); err != nil {
		return err
	}
	for n := 0; ; {
		more, err := s.next(&n, ']')
		if err != nil || !more {
			return err
		}
		if err := fn(); err != nil {
			return err
		}
	}
}

// rawString reads a string and returns its bytes between the quotes, and
// whether they hold escapes.
func (s *scanner) rawString() (raw []byte, escaped bool, err error) {
	if err := s.expect('"'); err != nil {
		return nil, false, err
	}
	start := s.i
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], escaped, nil
		case c == '\\':
			escaped = true
			s.i += 2
		case c < 0x20:
			return nil, false, s.errorf("control character in string")
		default:
			s.i++
		}
	}
	return nil, false, s.errorf("unexpected end in string")
}

// key reads an object key and its colon.
func (s *scanner) key() ([]byte, error) {
	raw, escaped, err := s.rawString()
	if err != nil {
		return nil, err
	}
	if escaped {
		if s.tmp, err = s.unescape(s.tmp[:0], raw); err != nil {
			return nil, err
		}
		raw = s.tmp
	}
	return raw, s.expect(':')
}

func (s *scanner) str() (string, error) {
	raw, escaped, err := s.rawString()
	if err != nil {
		return "", err
	}
	if escaped {
		if s.tmp, err = s.unescape(s.tmp[:0], raw); err != nil {
			return "", err
		}
		raw = s.tmp
	}
	return string(raw), nil
}

// text returns the string a rawString result stands for; an invalid escape
// becomes U+FFFD.
func (s *scanner) text(raw []byte, escaped bool) string {
	if escaped {
		u, err := s.unescape(s.vtmp[:0], raw)
		if err != nil {
			return string(bytes.ToValidUTF8(raw, []byte("\uFFFD")))
		}
		s.vtmp, raw = u, u
	}
	return string(raw)
}

// strs reads an array of strings, or null.
func (s *scanner) strs() (out []string, err error) {
	if null, err := s.null(); null || err != nil {
		return nil, err
	}
	err = s.array(func() error {
		v, err := s.str()
		out = append(out, v)
		return err
	})
	return out, err
}

// labelSet reads an object of strings, calling fn with each name and raw
// value; both are valid only during the call.
func (s *scanner) labelSet(fn func(name, raw []byte, escaped bool)) error {
	return s.object(func(name []byte) error {
		raw, escaped, err := s.rawString()
		if err == nil {
			fn(name, raw, escaped)
		}
		return err
	})
}

// unescape appends raw with its escapes decoded to out.
func (s *scanner) unescape(out, raw []byte) ([]byte, error) {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		switch raw[i] {
		case '"', '\\', '/':
			out = append(out, raw[i])
		case 'b', 'f', 'n', 'r', 't':
			out = append(out, "\b\f\n\r\t"[strings.IndexByte("bfnrt", raw[i])])
		case 'u':
			r, ok := hex4(raw[i+1:])
			if !ok {
				return nil, s.errorf("bad \\u escape")
			}
			i += 4
			if utf16.IsSurrogate(r) {
				r2, ok := rune(0), false
				if i+2 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
					r2, ok = hex4(raw[i+3:])
				}
				if r = utf16.DecodeRune(r, r2); ok && r != utf8.RuneError {
					i += 6
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, s.errorf("bad escape \\%c", raw[i])
		}
	}
	return out, nil
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[:4]), 16, 32)
	return rune(v), err == nil
}

// null reads null if it comes next.
func (s *scanner) null() (bool, error) {
	c, err := s.peek()
	if err != nil || c != 'n' {
		return false, err
	}
	return true, s.literal("null")
}

func (s *scanner) literal(lit string) error {
	if !bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		return s.errorf("want %s", lit)
	}
	s.i += len(lit)
	return nil
}

func (s *scanner) number() (float64, error) {
	if _, err := s.peek(); err != nil {
		return 0, err
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		if !(c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
			break
		}
		s.i++
	}
	if start == s.i {
		return 0, s.errorf("got %q, want a number", s.b[s.i])
	}
	f, err := strconv.ParseFloat(string(s.b[start:s.i]), 64)
	if err != nil {
		return 0, s.errorf("bad number %q", s.b[start:s.i])
	}
	return f, nil
}

// point reads [<unix seconds>, "<value>"].
func (s *scanner) point() (time.Time, float64, error) {
	if err := s.expect('['); err != nil {
		return time.Time{}, 0, err
	}
	sec, err := s.number()
	if err != nil {
		return time.Time{}, 0, err
	}
	if err := s.expect(','); err != nil {
		return time.Time{}, 0, err
	}
	raw, escaped, err := s.rawString()
	if err != nil {
		return time.Time{}, 0, err
	}
	if escaped {
		return time.Time{}, 0, s.errorf("value %q is not a number", raw)
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("value %q is not a number", raw)
	}
	if err := s.expect(']'); err != nil {
		return time.Time{}, 0, err
	}
	return time.UnixMilli(int64(math.Round(sec * 1000))).UTC(), v, nil
}

// skip reads one value of any kind.
func (s *scanner) skip(depth int) error {
	if depth > maxDepth {
		return s.errorf("nested deeper than %d", maxDepth)
	}
	c, err := s.peek()
	if err != nil {
		return err
	}
	switch c {
	case '"':
		_, _, err = s.rawString()
		return err
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	case '[':
		return s.array(func() error { return s.skip(depth + 1) })
	case '{':
		return s.object(func([]byte) error { return s.skip(depth + 1) })
	}
	_, err = s.number()
	return err
}
