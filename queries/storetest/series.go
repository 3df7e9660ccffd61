package storetest

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Epoch is the fixed instant test data starts at, so every run loads and
// queries the same timestamps: 2026-01-01T00:00:00Z.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Series is one time series with explicit samples. The same Series loads into
// Prometheus (as OpenMetrics history) and VictoriaMetrics (as Prometheus text).
type Series struct {
	Metric  string
	Labels  map[string]string
	Samples []Sample
}

// Sample is one value at one instant; timestamps keep millisecond precision.
type Sample struct {
	T time.Time
	V float64
}

// Linear returns n samples step apart from start, the first v0 and each next
// one inc higher: a counter whose rate is exactly inc/step per second.
func Linear(start time.Time, step time.Duration, n int, v0, inc float64) []Sample {
	out := make([]Sample, n)
	for i := range out {
		out[i] = Sample{T: start.Add(time.Duration(i) * step), V: v0 + float64(i)*inc}
	}
	return out
}

// Constant returns n samples step apart from start, all equal to v: a gauge.
func Constant(start time.Time, step time.Duration, n int, v float64) []Sample {
	return Linear(start, step, n, v, 0)
}

// OpenMetrics renders series as OpenMetrics text with timestamps in seconds,
// grouped by metric name and terminated by "# EOF", as promtool's backfill
// reads it.
func OpenMetrics(series []Series) string {
	return render(series, func(b *strings.Builder, t time.Time) {
		ms := t.UnixMilli()
		b.WriteString(strconv.FormatInt(ms/1000, 10))
		if r := ms % 1000; r != 0 {
			b.WriteByte('.')
			b.WriteString(strconv.FormatInt(1000+r, 10)[1:])
		}
	}) + "# EOF\n"
}

// PrometheusText renders series as Prometheus text exposition with
// millisecond timestamps, as VictoriaMetrics' /api/v1/import/prometheus
// reads it.
func PrometheusText(series []Series) string {
	return render(series, func(b *strings.Builder, t time.Time) {
		b.WriteString(strconv.FormatInt(t.UnixMilli(), 10))
	})
}

// render writes one line per sample, "series value timestamp", grouped by
// metric name, with the timestamp as stamp writes it.
func render(series []Series, stamp func(*strings.Builder, time.Time)) string {
	var b strings.Builder
	for _, s := range sortedByMetric(series) {
		id := seriesID(s)
		for _, p := range s.Samples {
			b.WriteString(id)
			b.WriteByte(' ')
			b.WriteString(formatValue(p.V))
			b.WriteByte(' ')
			stamp(&b, p.T)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// countSamples returns how many samples series hold.
func countSamples(series []Series) int {
	n := 0
	for _, s := range series {
		n += len(s.Samples)
	}
	return n
}

// sortedByMetric returns series stably sorted by metric name: OpenMetrics
// wants the lines of one metric family together.
func sortedByMetric(series []Series) []Series {
	out := append([]Series(nil), series...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Metric < out[j].Metric })
	return out
}

// seriesID renders name{labels} with labels sorted by name.
func seriesID(s Series) string {
	names := make([]string, 0, len(s.Labels))
	for n := range s.Labels {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(s.Metric)
	if len(names) == 0 {
		return b.String()
	}
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteString(`="`)
		b.WriteString(escapeLabelValue(s.Labels[n]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

var labelValueEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabelValue(v string) string { return labelValueEscaper.Replace(v) }

func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
