package sim

import (
	"bytes"
	_ "embed"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A Trace is a recorded arrival process: when each request arrived and how
// many tokens it read and wrote. It is immutable and safe for concurrent use.
type Trace struct {
	name     string
	start    time.Time
	arrivals []Arrival

	mu      sync.Mutex
	indexes map[indexKey]*replayIndex // shared by the Replays of this trace
}

// Arrival is one request of a Trace.
type Arrival struct {
	// Offset is the time from the trace's first request.
	Offset          time.Duration
	ContextTokens   int32
	GeneratedTokens int32
}

// Name returns the name the trace was parsed with.
func (t *Trace) Name() string { return t.name }

// Start returns the time of the first request.
func (t *Trace) Start() time.Time { return t.start }

// Len returns the number of requests.
func (t *Trace) Len() int { return len(t.arrivals) }

// At returns the i-th request, in order of arrival.
func (t *Trace) At(i int) Arrival { return t.arrivals[i] }

// Span returns the offset of the last request.
func (t *Trace) Span() time.Duration { return t.arrivals[len(t.arrivals)-1].Offset }

// The columns a trace must have, in any order; others are ignored.
const (
	colTimestamp = "TIMESTAMP"
	colContext   = "ContextTokens"
	colGenerated = "GeneratedTokens"
)

// traceTimeLayout parses "2023-11-16 18:17:03.9799600"; Go accepts the
// fractional seconds without their being in the layout.
const traceTimeLayout = "2006-01-02 15:04:05"

// ParseTrace reads a trace in the Azure LLM inference trace format: a CSV
// file with a header and the columns TIMESTAMP (UTC, "YYYY-MM-DD
// hh:mm:ss.fffffff"), ContextTokens and GeneratedTokens, one request a line,
// in order of arrival. name is used in error messages, which name the line:
//
//	code.csv line 3: TIMESTAMP "2023-11-16 18:17:0x": want YYYY-MM-DD hh:mm:ss.fffffff
func ParseTrace(name string, r io.Reader) (*Trace, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: empty, want a header %s,%s,%s", name, colTimestamp, colContext, colGenerated)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cols := map[string]int{colTimestamp: -1, colContext: -1, colGenerated: -1}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if j, ok := cols[h]; ok && j < 0 {
			cols[h] = i
		}
	}
	for _, c := range []string{colTimestamp, colContext, colGenerated} {
		if cols[c] < 0 {
			return nil, fmt.Errorf("%s line 1: missing column %s", name, c)
		}
	}
	ti, ci, gi := cols[colTimestamp], cols[colContext], cols[colGenerated]
	need := max(ti, ci, gi) + 1

	t := &Trace{name: name}
	var prev time.Time
	prevLine := 0
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// encoding/csv's ParseError already names the line.
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) < need {
			return nil, fmt.Errorf("%s line %d: %d fields, want %d", name, line, len(rec), len(header))
		}
		at, err := time.Parse(traceTimeLayout, strings.TrimSpace(rec[ti]))
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %s %q: want YYYY-MM-DD hh:mm:ss.fffffff", name, line, colTimestamp, rec[ti])
		}
		ctx, err := parseTokens(rec[ci])
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %s %w", name, line, colContext, err)
		}
		gen, err := parseTokens(rec[gi])
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %s %w", name, line, colGenerated, err)
		}
		if len(t.arrivals) == 0 {
			t.start = at
		} else if at.Before(prev) {
			return nil, fmt.Errorf("%s line %d: %s %s is before line %d's %s, want requests in order of arrival",
				name, line, colTimestamp, rec[ti], prevLine, prev.Format(traceTimeLayout+".0000000"))
		}
		prev, prevLine = at, line
		t.arrivals = append(t.arrivals, Arrival{Offset: at.Sub(t.start), ContextTokens: ctx, GeneratedTokens: gen})
	}
	if len(t.arrivals) == 0 {
		return nil, fmt.Errorf("%s: no requests after the header", name)
	}
	t.arrivals = t.arrivals[:len(t.arrivals):len(t.arrivals)]
	return t, nil
}

// parseTokens parses a token count; its error completes "ColumnName ...".
func parseTokens(s string) (int32, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q: want a whole number of tokens", s)
	}
	if n < 0 {
		return 0, fmt.Errorf("= %d, must be >= 0", n)
	}
	return int32(n), nil
}

// The Azure LLM inference trace 2023: one hour of requests to two of
// Azure's LLM inference services, published with Patel et al., "Splitwise:
// Efficient Generative LLM Inference Using Phase Splitting", ISCA 2024, in
// github.com/Azure/AzurePublicDataset under CC-BY 4.0. See traces/README.md.
var (
	//go:embed traces/azure-llm-2023-code.csv
	azureCodeCSV []byte
	//go:embed traces/azure-llm-2023-conv.csv
	azureConvCSV []byte

	azureCode = sync.OnceValue(func() *Trace { return mustParseEmbedded("azure-llm-2023-code.csv", azureCodeCSV) })
	azureConv = sync.OnceValue(func() *Trace { return mustParseEmbedded("azure-llm-2023-conv.csv", azureConvCSV) })
)

// AzureCodeTrace returns the code-completion service of the Azure LLM
// inference trace 2023 (Patel et al., "Splitwise", ISCA 2024; CC-BY 4.0):
// 8,819 requests over one hour, bursty, with idle minutes; long prompts
// (2,048 context tokens on average) and short completions (28 tokens).
// It is parsed once, on first use, from a copy embedded in the binary.
func AzureCodeTrace() *Trace { return azureCode() }

// AzureConvTrace returns the conversation service of the Azure LLM
// inference trace 2023 (Patel et al., "Splitwise", ISCA 2024; CC-BY 4.0):
// 19,366 requests over one hour, steadier, with a ramp up and down;
// 1,155 context tokens and 211 generated tokens on average.
// It is parsed once, on first use, from a copy embedded in the binary.
func AzureConvTrace() *Trace { return azureConv() }

func mustParseEmbedded(name string, data []byte) *Trace {
	t, err := ParseTrace(name, bytes.NewReader(data))
	if err != nil {
		panic("sim: embedded trace: " + err.Error()) // the tests parse both
	}
	return t
}
