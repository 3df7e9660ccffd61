package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// point is one sample of one replica at el seconds into the run.
type point struct {
	el  float64
	s   sample
	p99 float64 // seconds
}

// band is a fault's span, shaded on every chart.
type band struct {
	from, to float64
	name     string
}

type charts struct {
	pts   [2][]point
	bands []band
}

func (c *charts) add(rep int, el float64, s sample, p99 float64) {
	c.pts[rep] = append(c.pts[rep], point{el, s, p99})
}

// growth compares the mean of the first three samples after warm-up with
// the mean of the last three, for RSS and goroutines.
func (c *charts) growth(rep int, warm float64) (rss, gor float64, ok bool) {
	var after []point
	for _, p := range c.pts[rep] {
		if p.el >= warm {
			after = append(after, p)
		}
	}
	if len(after) < 6 {
		return 0, 0, false
	}
	mean := func(ps []point, f func(point) float64) float64 {
		s := 0.0
		for _, p := range ps {
			s += f(p)
		}
		return s / float64(len(ps))
	}
	first, last := after[:3], after[len(after)-3:]
	r := func(p point) float64 { return p.s.rss }
	g := func(p point) float64 { return p.s.goroutines }
	return mean(last, r)/mean(first, r) - 1, mean(last, g)/mean(first, g) - 1, true
}

// write draws one SVG per measurement, both replicas as lines.
func (c *charts) write(dir string) error {
	for _, m := range []struct {
		file, title, unit string
		v                 func(point) float64
	}{
		{"rss.svg", "RSS", "MiB", func(p point) float64 { return p.s.rss }},
		{"goroutines.svg", "goroutines", "", func(p point) float64 { return p.s.goroutines }},
		{"rpc-p99.svg", "RPC latency p99 (client side, per 5 s)", "ms", func(p point) float64 { return 1000 * p.p99 }},
		{"data-age.svg", "oldest ebb_data_age_seconds", "s", func(p point) float64 { return p.s.dataAge }},
	} {
		if err := os.WriteFile(filepath.Join(dir, m.file), []byte(c.svg(m.title, m.unit, m.v)), 0o644); err != nil {
			return err
		}
	}
	// The samples behind the charts.
	var b strings.Builder
	b.WriteString("replica,seconds,rss_mib,goroutines,rpc_p99_ms,data_age_s\n")
	for rep, ps := range c.pts {
		for _, p := range ps {
			fmt.Fprintf(&b, "%d,%.1f,%.1f,%.0f,%.1f,%.1f\n", rep, p.el, p.s.rss, p.s.goroutines, 1000*p.p99, p.s.dataAge)
		}
	}
	return os.WriteFile(filepath.Join(dir, "samples.csv"), []byte(b.String()), 0o644)
}

func (c *charts) svg(title, unit string, v func(point) float64) string {
	const w, h, left, right, top, bottom = 720.0, 260.0, 60.0, 20.0, 30.0, 40.0
	maxX, maxY := 1.0, 0.0
	for _, ps := range c.pts {
		for _, p := range ps {
			maxX = math.Max(maxX, p.el)
			if y := v(p); !math.IsInf(y, 0) {
				maxY = math.Max(maxY, y)
			}
		}
	}
	if maxY == 0 {
		maxY = 1
	}
	yStep := niceStep(maxY * 1.1 / 4)
	maxY = yStep * math.Ceil(maxY*1.1/yStep)
	xStep := 60 * niceStep(maxX/60/6) // minutes
	x := func(el float64) float64 { return left + (w-left-right)*el/maxX }
	y := func(val float64) float64 { return h - bottom - (h-top-bottom)*math.Min(val, maxY)/maxY }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="11">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="%.0f" y="18" font-size="13">%s</text>`+"\n", left, title)
	for _, bd := range c.bands {
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.0f" width="%.1f" height="%.0f" fill="#f4c7c3" opacity="0.6"><title>%s</title></rect>`+"\n", x(bd.from), top, math.Max(1, x(bd.to)-x(bd.from)), h-top-bottom, bd.name)
	}
	for val := 0.0; val <= maxY*1.0001; val += yStep {
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.0f" y="%.1f" text-anchor="end">%s %s</text>`+"\n", left, w-right, y(val), y(val), left-4, y(val)+4, tickLabel(val, yStep), unit)
	}
	for el := 0.0; el <= maxX; el += xStep {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%s min</text>`+"\n", x(el), h-bottom+16, tickLabel(el/60, xStep/60))
	}
	colors := [2]string{"#1a73e8", "#e8710a"}
	for rep, ps := range c.pts {
		var pts []string
		for _, p := range ps {
			if val := v(p); !math.IsInf(val, 0) && !math.IsNaN(val) {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.el), y(val)))
			}
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", colors[rep], strings.Join(pts, " "))
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" fill="%s">replica %d</text>`+"\n", w-right-140+70*float64(rep), h-6, colors[rep], rep)
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" fill="#b3261e">shaded: faults</text>`+"\n", left, h-6)
	b.WriteString("</svg>\n")
	return b.String()
}

// niceStep is the step of 1, 2 or 5 times a power of ten at or above raw.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// tickLabel writes a tick's value with as many decimals as its step needs.
func tickLabel(v, step float64) string {
	decimals := 0
	if step < 1 {
		decimals = int(math.Ceil(-math.Log10(step)))
	}
	return strconv.FormatFloat(v, 'f', decimals, 64)
}
