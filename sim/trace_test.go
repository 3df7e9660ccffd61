package sim

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseTrace(t *testing.T) {
	in := "TIMESTAMP,ContextTokens,GeneratedTokens\n" +
		"2023-11-16 18:17:03.9799600,4808,10\n" +
		"2023-11-16 18:17:04.0319600,3180,8\n" +
		"2023-11-16 18:17:04.0319600,0,1\n"
	tr, err := ParseTrace("t.csv", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tr.Start(), time.Date(2023, 11, 16, 18, 17, 3, 979960000, time.UTC); !got.Equal(want) {
		t.Errorf("start: got %v, want %v", got, want)
	}
	want := []Arrival{{0, 4808, 10}, {52 * time.Millisecond, 3180, 8}, {52 * time.Millisecond, 0, 1}}
	if tr.Len() != len(want) {
		t.Fatalf("got %d requests, want %d", tr.Len(), len(want))
	}
	for i, w := range want {
		if got := tr.At(i); got != w {
			t.Errorf("request %d: got %+v, want %+v", i, got, w)
		}
	}
	if got, want := tr.Span(), 52*time.Millisecond; got != want {
		t.Errorf("span: got %v, want %v", got, want)
	}

	t.Run("columns in any order, extra ones ignored", func(t *testing.T) {
		tr, err := ParseTrace("t.csv", strings.NewReader("GeneratedTokens,Region,TIMESTAMP,ContextTokens\n7,eu,2023-11-16 18:17:03,5\n"))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := tr.At(0), (Arrival{0, 5, 7}); got != want {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})
}

func TestParseTraceErrors(t *testing.T) {
	const header = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
	const ok = "2023-11-16 18:17:03.9799600,4808,10\n"
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "t.csv: empty, want a header TIMESTAMP,ContextTokens,GeneratedTokens"},
		{"header only", header, "t.csv: no requests after the header"},
		{"no header", ok, "t.csv line 1: missing column TIMESTAMP"},
		{"missing column", "TIMESTAMP,ContextTokens\n", "t.csv line 1: missing column GeneratedTokens"},
		{"short line", header + ok + "2023-11-16 18:17:04.0000000,1\n", "t.csv line 3: 2 fields, want 3"},
		{"bad timestamp", header + ok + "2023-11-16 18:17:0x.0000000,1,2\n",
			`t.csv line 3: TIMESTAMP "2023-11-16 18:17:0x.0000000": want YYYY-MM-DD hh:mm:ss.fffffff`},
		{"date only", header + "2023-11-16,1,2\n", `t.csv line 2: TIMESTAMP "2023-11-16": want YYYY-MM-DD hh:mm:ss.fffffff`},
		{"negative context", header + ok + "2023-11-16 18:17:04.0000000,-5,2\n", "t.csv line 3: ContextTokens = -5, must be >= 0"},
		{"negative generated", header + ok + "2023-11-16 18:17:04.0000000,5,-2\n", "t.csv line 3: GeneratedTokens = -2, must be >= 0"},
		{"fractional tokens", header + "2023-11-16 18:17:04.0000000,1.5,2\n", `t.csv line 2: ContextTokens "1.5": want a whole number of tokens`},
		{"unsorted", header + ok + "2023-11-16 18:17:05.0000000,1,2\n2023-11-16 18:17:03.0000000,1,2\n",
			"t.csv line 4: TIMESTAMP 2023-11-16 18:17:03.0000000 is before line 3's 2023-11-16 18:17:05.0000000, want requests in order of arrival"},
		{"bad quoting", header + ok + "\"2023-11-16 18:17:04,1,2\n",
			`t.csv: parse error on line 3, column 26: extraneous or missing " in quoted-field`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTrace("t.csv", strings.NewReader(tt.in))
			if err == nil {
				t.Fatalf("got no error, want %q", tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("got error %q, want %q", got, tt.want)
			}
		})
	}
}

// scannedTrace is a trace read from the CSV file without ParseTrace, to
// check the replay against: offsets in nanoseconds from the first request.
type scannedTrace struct {
	offsets          []int64
	context, decoded []int64
}

// scanCSV reads the Azure LLM inference trace 2023 (Patel et al.,
// "Splitwise", ISCA 2024; CC-BY 4.0) file name from traces/ line by line.
func scanCSV(t *testing.T, name string) scannedTrace {
	t.Helper()
	data, err := os.ReadFile("traces/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var s scannedTrace
	var first time.Time
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if i == 0 {
			continue
		}
		f := strings.Split(strings.TrimSpace(line), ",")
		at, err := time.Parse("2006-01-02 15:04:05.0000000", f[0])
		if err != nil {
			t.Fatalf("%s line %d: %v", name, i+1, err)
		}
		if i == 1 {
			first = at
		}
		c, err1 := strconv.ParseInt(f[1], 10, 64)
		g, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s line %d: bad tokens %q", name, i+1, line)
		}
		s.offsets = append(s.offsets, int64(at.Sub(first)))
		s.context = append(s.context, c)
		s.decoded = append(s.decoded, g)
	}
	return s
}

// count returns the number of arrivals in (from, to], offsets from the
// start, repeating every period.
func (s scannedTrace) count(from, to, period time.Duration) int {
	n := 0
	for k := range int64(3) {
		for _, o := range s.offsets {
			if at := o + k*int64(period); int64(from) < at && at <= int64(to) {
				n++
			}
		}
	}
	return n
}

// busy returns the seconds of GPU work done in (from, to], repeating every
// period, at the default token rates, by summing every request's overlap.
func (s scannedTrace) busy(from, to, period time.Duration) float64 {
	var total float64
	for k := range int64(3) {
		for i, o := range s.offsets {
			start := float64(o+k*int64(period)) / 1e9
			end := start + float64(s.context[i])/10_000 + float64(s.decoded[i])/50
			if ov := min(end, to.Seconds()) - max(start, from.Seconds()); ov > 0 {
				total += ov
			}
		}
	}
	return total
}

func TestEmbeddedTraces(t *testing.T) {
	tests := []struct {
		trace *Trace
		file  string
		n     int
		start time.Time
	}{
		{AzureCodeTrace(), "azure-llm-2023-code.csv", 8819, time.Date(2023, 11, 16, 18, 17, 3, 979960000, time.UTC)},
		{AzureConvTrace(), "azure-llm-2023-conv.csv", 19366, time.Date(2023, 11, 16, 18, 15, 46, 680590000, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			if got := tt.trace.Name(); got != tt.file {
				t.Errorf("name: got %q, want %q", got, tt.file)
			}
			if got := tt.trace.Len(); got != tt.n {
				t.Errorf("got %d requests, want %d", got, tt.n)
			}
			if got := tt.trace.Start(); !got.Equal(tt.start) {
				t.Errorf("start: got %v, want %v", got, tt.start)
			}
			s := scanCSV(t, tt.file)
			if len(s.offsets) != tt.trace.Len() {
				t.Fatalf("scanned %d requests, parsed %d", len(s.offsets), tt.trace.Len())
			}
			for i, o := range s.offsets {
				a := tt.trace.At(i)
				if int64(a.Offset) != o || int64(a.ContextTokens) != s.context[i] || int64(a.GeneratedTokens) != s.decoded[i] {
					t.Fatalf("request %d: got %+v, want offset %d, tokens %d, %d", i, a, o, s.context[i], s.decoded[i])
				}
			}
		})
	}
}

// TestReplayAgainstCSV checks the replayed rates and GPU time of the real
// traces over known windows against numbers counted in the CSV files, by
// this test's own scan and by hand (a one-off script over the same files).
func TestReplayAgainstCSV(t *testing.T) {
	start := midnight.Add(7 * time.Second)
	m := time.Minute
	tests := []struct {
		file     string
		from, to time.Duration // after start
		want     int           // arrivals, counted by hand; -1 = not
		wantBusy float64       // GPU seconds, counted by hand; 0 = not
	}{
		// The first arrival is at offset 0, outside (0, 60s].
		{"azure-llm-2023-code.csv", 0, m, 62, 44.3178},
		{"azure-llm-2023-code.csv", m, 3 * m, 0, 0},
		{"azure-llm-2023-code.csv", 3 * m, 4 * m, 531, 389.787839},
		// The busiest minute of the code trace: 7.65 replicas busy.
		{"azure-llm-2023-code.csv", 14 * m, 15 * m, 632, 458.727125},
		{"azure-llm-2023-code.csv", 30 * m, 35 * m, 881, 0},
		// Across the loop: the last minutes are quiet, then the first
		// request again, at 60m, inside (59m, 61m].
		{"azure-llm-2023-code.csv", 59 * m, 61 * m, 63, 44.3178},
		{"azure-llm-2023-code.csv", 119*m + 30*time.Second, 122 * m, -1, 0},
		{"azure-llm-2023-conv.csv", 0, m, 190, 0},
		{"azure-llm-2023-conv.csv", m, 3 * m, 594, 0},
		{"azure-llm-2023-conv.csv", 14 * m, 15 * m, 283, 0},
		{"azure-llm-2023-conv.csv", 30 * m, 35 * m, 2229, 0},
		{"azure-llm-2023-conv.csv", 59 * m, 61 * m, 191, 0},
		{"azure-llm-2023-conv.csv", 57*m + 10*time.Second, 62 * m, -1, 0},
	}
	traces := map[string]*Trace{"azure-llm-2023-code.csv": AzureCodeTrace(), "azure-llm-2023-conv.csv": AzureConvTrace()}
	scans := map[string]scannedTrace{}
	for _, tt := range tests {
		t.Run(tt.file+" "+tt.from.String()+"-"+tt.to.String(), func(t *testing.T) {
			s, ok := scans[tt.file]
			if !ok {
				s = scanCSV(t, tt.file)
				scans[tt.file] = s
			}
			r, err := Replay(traces[tt.file], ReplayOptions{Start: start, Loop: true})
			if err != nil {
				t.Fatal(err)
			}
			counted := s.count(tt.from, tt.to, time.Hour)
			if tt.want >= 0 && counted != tt.want {
				t.Fatalf("scan counted %d arrivals, hand count %d", counted, tt.want)
			}
			window := (tt.to - tt.from).Seconds()
			from, to := start.Add(tt.from), start.Add(tt.to)
			if got, want := r.Requests(from, to)/window, float64(counted)/window; !approx(got, want) {
				t.Errorf("rate: got %v req/s, want %v", got, want)
			}
			wantBusy := s.busy(tt.from, tt.to, time.Hour)
			if tt.wantBusy != 0 && abs(wantBusy-tt.wantBusy) > 1e-6 {
				t.Fatalf("scan summed %v busy seconds, hand count %v", wantBusy, tt.wantBusy)
			}
			// The replay rounds each request's GPU time to the nanosecond.
			if got := r.BusySeconds(from, to); abs(got-wantBusy) > 1e-5 {
				t.Errorf("busy: got %v s, want %v", got, wantBusy)
			}
		})
	}
}

func abs(x float64) float64 { return max(x, -x) }
