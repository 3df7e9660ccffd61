package report

import (
	"fmt"
	"html"
	"math"
	"strings"
	"time"
)

// Chart geometry, in SVG user units; the SVG scales to its box's width.
const (
	svgW      = 640.0
	svgH      = 230.0
	padLeft   = 58.0
	padRight  = 14.0
	padRight2 = 46.0 // with a right axis
	padBottom = 34.0
	legendRow = 15.0
)

// series is one line of a chart: a value per bin (NaN: no data), drawn
// against the left axis or, with right, the right one.
type series struct {
	name, color, dash string
	width             float64
	values            []float64
	right             bool
	step              bool // drawn as steps (replicas), not a slope
}

// level is a horizontal line: a request, a limit, a bound.
type level struct {
	name, color, dash string
	value             float64
	right             bool
}

// marks are events per bin drawn as triangles on the time axis: OOM kills.
type marks struct {
	name, color string
	counts      []int
}

// axis is a y axis: its label, and how ticks are written.
type axis struct {
	label  string
	format func(float64) string
	max    float64 // fixed top (percent: 100); 0: from the data
}

// svgChart is one chart of a workload.
type svgChart struct {
	kind, title string
	start       time.Time
	bin         time.Duration
	left        axis
	right       *axis
	series      []series
	levels      []level
	marks       *marks
}

// legendItem is a swatch and a name of the legend.
type legendItem struct{ name, color, dash, shape string }

func (c *svgChart) legend() []legendItem {
	var out []legendItem
	for _, s := range c.series {
		out = append(out, legendItem{s.name, s.color, s.dash, "line"})
	}
	for _, l := range c.levels {
		out = append(out, legendItem{l.name, l.color, l.dash, "line"})
	}
	if c.marks != nil {
		out = append(out, legendItem{c.marks.name, c.marks.color, "", "mark"})
	}
	return out
}

// textWidth estimates the width of s in 11-unit sans-serif.
func textWidth(s string) float64 { return float64(len([]rune(s)))*6.1 + 4 }

// render writes the chart as an inline SVG that scales to the page.
func (c *svgChart) render() string {
	var b strings.Builder
	right := padRight
	if c.right != nil {
		right = padRight2
	}
	// The legend, in rows.
	type placed struct {
		legendItem
		x, y float64
	}
	var items []placed
	x, y := padLeft, 12.0
	for _, it := range c.legend() {
		w := 22 + textWidth(it.name) + 10
		if x+w > svgW-right && x > padLeft {
			x, y = padLeft, y+legendRow
		}
		items = append(items, placed{it, x, y})
		x += w
	}
	top := y + 12
	bottom := svgH - padBottom
	plotW := svgW - padLeft - right
	n := 0
	for _, s := range c.series {
		n = max(n, len(s.values))
	}
	if c.marks != nil {
		n = max(n, len(c.marks.counts))
	}
	n = max(n, 1)

	scale := func(a axis, right bool) (float64, []float64) {
		hi := a.max
		if hi == 0 {
			for _, s := range c.series {
				if s.right == right {
					for _, v := range s.values {
						if !math.IsNaN(v) {
							hi = max(hi, v)
						}
					}
				}
			}
			for _, l := range c.levels {
				if l.right == right {
					hi = max(hi, l.value)
				}
			}
		}
		return niceTicks(hi)
	}
	leftTop, leftTicks := scale(c.left, false)
	var rightTop float64
	var rightTicks []float64
	if c.right != nil {
		rightTop, rightTicks = scale(*c.right, true)
	}
	yOf := func(v float64, right bool) float64 {
		t := leftTop
		if right {
			t = rightTop
		}
		return bottom - v/t*(bottom-top)
	}
	xOf := func(i float64) float64 { return padLeft + i/float64(n)*plotW }

	fmt.Fprintf(&b, `<svg class="chart" data-kind="%s" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %g %g" role="img" aria-label="%s">`,
		c.kind, svgW, svgH, html.EscapeString(c.title))
	fmt.Fprintf(&b, "<title>%s</title>", html.EscapeString(c.title))
	// Grid and left ticks.
	for _, t := range leftTicks {
		yy := yOf(t, false)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#e4e4e4"/>`, padLeft, svgW-right, yy, yy)
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.1f" text-anchor="end" font-size="10" fill="#555">%s</text>`, padLeft-4, yy+3.5, html.EscapeString(c.left.format(t)))
	}
	for _, t := range rightTicks {
		yy := yOf(t, true)
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.1f" font-size="10" fill="#555">%s</text>`, svgW-right+4, yy+3.5, html.EscapeString(c.right.format(t)))
	}
	// Time ticks.
	span := c.bin * time.Duration(n)
	every := tickEvery(span)
	first := c.start.Truncate(every)
	if first.Before(c.start) {
		first = first.Add(every)
	}
	layout := "Jan 2"
	if every < 24*time.Hour {
		layout = "Jan 2 15:04"
	}
	for t := first; !t.After(c.start.Add(span)); t = t.Add(every) {
		xx := xOf(float64(t.Sub(c.start)) / float64(c.bin))
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#e4e4e4"/>`, xx, xx, top, bottom)
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.1f" text-anchor="middle" font-size="10" fill="#555">%s</text>`, xx, bottom+13, t.UTC().Format(layout))
	}
	// Axes and their labels.
	fmt.Fprintf(&b, `<path d="M%.1f %.1fV%.1fH%.1f" fill="none" stroke="#888"/>`, padLeft, top, bottom, svgW-right)
	fmt.Fprintf(&b, `<text class="axis-label" x="%.1f" y="%.1f" text-anchor="middle" font-size="11" fill="#333">time (UTC)</text>`, padLeft+plotW/2, svgH-4)
	fmt.Fprintf(&b, `<text class="axis-label" transform="translate(12 %.1f) rotate(-90)" text-anchor="middle" font-size="11" fill="#333">%s</text>`, (top+bottom)/2, html.EscapeString(c.left.label))
	if c.right != nil {
		fmt.Fprintf(&b, `<text class="axis-label" transform="translate(%.1f %.1f) rotate(90)" text-anchor="middle" font-size="11" fill="#333">%s</text>`, svgW-6, (top+bottom)/2, html.EscapeString(c.right.label))
	}
	// Levels, then series, then marks.
	for _, l := range c.levels {
		yy := yOf(l.value, l.right)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="1.5"%s/>`, padLeft, svgW-right, yy, yy, l.color, dashAttr(l.dash))
	}
	for _, s := range c.series {
		for _, seg := range segments(s.values) {
			var pts strings.Builder
			for _, i := range seg {
				v := yOf(s.values[i], s.right)
				if s.step {
					fmt.Fprintf(&pts, "%.1f,%.1f %.1f,%.1f ", xOf(float64(i)), v, xOf(float64(i+1)), v)
				} else {
					fmt.Fprintf(&pts, "%.1f,%.1f ", xOf(float64(i)+0.5), v)
				}
			}
			if len(seg) == 1 && !s.step {
				v := yOf(s.values[seg[0]], s.right)
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="1.8" fill="%s"/>`, xOf(float64(seg[0])+0.5), v, s.color)
				continue
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="%g"%s points="%s"/>`, s.color, s.width, dashAttr(s.dash), strings.TrimSpace(pts.String()))
		}
	}
	if m := c.marks; m != nil {
		for i, k := range m.counts {
			if k > 0 {
				xx := xOf(float64(i) + 0.5)
				fmt.Fprintf(&b, `<path class="mark" d="M%.1f %.1fl-4.5 -8h9z" fill="%s"><title>%d %s</title></path>`, xx, bottom, m.color, k, html.EscapeString(m.name))
			}
		}
	}
	// The legend.
	for _, it := range items {
		if it.shape == "mark" {
			fmt.Fprintf(&b, `<path d="M%.1f %.1fl-4.5 -8h9z" fill="%s"/>`, it.x+9, it.y+3, it.color)
		} else {
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/>`, it.x, it.x+18, it.y-3, it.y-3, it.color, dashAttr(it.dash))
		}
		fmt.Fprintf(&b, `<text class="legend" x="%.1f" y="%.1f" font-size="11" fill="#222">%s</text>`, it.x+22, it.y+1, html.EscapeString(it.name))
	}
	b.WriteString("</svg>")
	return b.String()
}

func dashAttr(d string) string {
	if d == "" {
		return ""
	}
	return ` stroke-dasharray="` + d + `"`
}

// segments splits the indexes of the values that are not NaN into runs.
func segments(v []float64) [][]int {
	var out [][]int
	var cur []int
	for i, x := range v {
		if math.IsNaN(x) {
			if len(cur) > 0 {
				out, cur = append(out, cur), nil
			}
			continue
		}
		cur = append(cur, i)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// niceTicks returns a rounded top at or above hi and the ticks from 0 to
// it, 4 or 5 of them at 1, 2 or 5 times a power of ten.
func niceTicks(hi float64) (float64, []float64) {
	if !(hi > 0) || math.IsInf(hi, 0) {
		hi = 1
	}
	raw := hi / 4
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	step := p
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= raw {
			step = m * p
			break
		}
	}
	top := math.Ceil(hi/step-1e-9) * step
	var ticks []float64
	for i := 0; float64(i)*step <= top+step*1e-9; i++ {
		ticks = append(ticks, float64(i)*step)
	}
	return top, ticks
}

// tickEvery is the time between two labels of the time axis: at most 7
// labels over span.
func tickEvery(span time.Duration) time.Duration {
	for _, d := range []time.Duration{15 * time.Minute, time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 48 * time.Hour, 7 * 24 * time.Hour, 28 * 24 * time.Hour} {
		if span/d <= 7 {
			return d
		}
	}
	return 90 * 24 * time.Hour
}
