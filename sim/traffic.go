package sim

import (
	"fmt"
	"math"
	"time"
)

// Traffic is the arrival process of one workload's requests.
//
// Implementations integrate rather than sample: the count over a window is
// exact and costs O(1) or O(log n), whatever the window's length, so a
// cluster of thousands of workloads is cheap to query every tick. Counts may
// be fractional: the synthetic shapes are fluid (a rate integrated over time).
type Traffic interface {
	// Requests returns the number of requests that arrive in (from, to].
	Requests(from, to time.Time) float64
}

// GPUWork is implemented by Traffic that knows how long each of its requests
// keeps a replica's GPUs busy (Replay, from the requests' token counts).
// Traffic that does not implement it is charged Workload.GPUTimePerRequest
// for each request, at the request's arrival.
type GPUWork interface {
	// BusySeconds returns the replica-seconds of GPU work done in (from, to]:
	// the integral over the window of the number of requests being served.
	BusySeconds(from, to time.Time) float64
}

// Steady returns traffic at a constant rps requests per second.
// It panics if rps is negative or not finite.
func Steady(rps float64) Traffic {
	mustRate("Steady", "rps", rps)
	return steady{rps: rps}
}

type steady struct{ rps float64 }

func (s steady) Requests(from, to time.Time) float64 {
	return s.rps * seconds(from, to)
}

// Diurnal returns traffic whose rate follows a cosine around mean:
//
//	rate(t) = mean + amplitude * cos(2π (t - phase) / period)
//
// with t measured from the Unix epoch (UTC midnight, see Anchor), so the
// rate peaks at phase, phase+period, ...: Diurnal(100, 60, 24*time.Hour,
// 14*time.Hour) peaks at 160 req/s at 14:00 UTC and bottoms out at 40 at 02:00.
// It panics unless 0 <= amplitude <= mean and period > 0.
func Diurnal(mean, amplitude float64, period, phase time.Duration) Traffic {
	mustRate("Diurnal", "mean", mean)
	mustRate("Diurnal", "amplitude", amplitude)
	if amplitude > mean {
		panic(fmt.Sprintf("sim: Diurnal amplitude = %v, must be <= mean (%v)", amplitude, mean))
	}
	mustPositive("Diurnal", "period", period)
	return diurnal{mean: mean, amplitude: amplitude, period: int64(period), phase: int64(phase % period)}
}

type diurnal struct {
	mean, amplitude float64
	period, phase   int64 // nanoseconds
}

func (d diurnal) Requests(from, to time.Time) float64 {
	if !to.After(from) {
		return 0
	}
	// ∫ mean + A cos(ω(t-φ)) dt = mean·Δt + (A/ω)·[sin(ω(to-φ)) - sin(ω(from-φ))].
	// The angles are reduced modulo the period in integers first, so that
	// the result stays exact decades after the epoch.
	omega := 2 * math.Pi / (float64(d.period) / 1e9)
	angle := func(t time.Time) float64 {
		r := mod(t.UnixNano()-d.phase, d.period)
		return 2 * math.Pi * float64(r) / float64(d.period)
	}
	return d.mean*seconds(from, to) + d.amplitude/omega*(math.Sin(angle(to))-math.Sin(angle(from)))
}

// Bursty returns traffic at base requests per second with one burst at peak
// requests per second, burstLen long, in each consecutive slot of length
// every (slots are counted from the Unix epoch, see Anchor). Where a burst
// starts within its slot is random but fixed by seed and the slot's index,
// so the gaps between bursts vary from 0 to 2*(every-burstLen) while the
// long-run share of time in bursts is exactly burstLen/every.
// It panics unless base, peak >= 0 and 0 <= burstLen <= every.
func Bursty(base, peak float64, every, burstLen time.Duration, seed int64) Traffic {
	mustRate("Bursty", "base", base)
	mustRate("Bursty", "peak", peak)
	mustPositive("Bursty", "every", every)
	if burstLen < 0 || burstLen > every {
		panic(fmt.Sprintf("sim: Bursty burstLen = %v, must be in [0, every = %v]", burstLen, every))
	}
	return bursty{base: base, peak: peak, every: int64(every), burstLen: int64(burstLen), seed: uint64(seed)}
}

type bursty struct {
	base, peak      float64
	every, burstLen int64 // nanoseconds
	seed            uint64
}

func (b bursty) Requests(from, to time.Time) float64 {
	if !to.After(from) {
		return 0
	}
	inBurst := float64(b.burstTime(to.UnixNano())-b.burstTime(from.UnixNano())) / 1e9
	return b.base*seconds(from, to) + (b.peak-b.base)*inBurst
}

// burstStart returns the offset of slot k's burst from the slot's start.
func (b bursty) burstStart(k int64) int64 {
	return int64(splitmix64(b.seed^uint64(k)*0x9e3779b97f4a7c15) % uint64(b.every-b.burstLen+1))
}

// burstTime returns the nanoseconds spent in bursts between the start of
// slot 0 (the epoch) and t, negative before the epoch.
func (b bursty) burstTime(t int64) int64 {
	k := floorDiv(t, b.every)
	r := t - k*b.every
	return k*b.burstLen + clamp(r-b.burstStart(k), 0, b.burstLen)
}

// Idle returns the traffic of a workload that is mostly quiet, like a
// notebook or a developer's model server: rps requests per second for
// activeFor, then nothing for idleFor, repeating from the Unix epoch (see
// Anchor). It panics unless activeFor, idleFor >= 0, their sum > 0 and rps >= 0.
func Idle(activeFor, idleFor time.Duration, rps float64) Traffic {
	mustRate("Idle", "rps", rps)
	if activeFor < 0 || idleFor < 0 || activeFor+idleFor <= 0 {
		panic(fmt.Sprintf("sim: Idle activeFor = %v, idleFor = %v, must be >= 0 with a positive sum", activeFor, idleFor))
	}
	return idle{active: int64(activeFor), cycle: int64(activeFor + idleFor), rps: rps}
}

type idle struct {
	active, cycle int64 // nanoseconds
	rps           float64
}

func (i idle) Requests(from, to time.Time) float64 {
	if !to.After(from) {
		return 0
	}
	return i.rps * float64(i.activeTime(to.UnixNano())-i.activeTime(from.UnixNano())) / 1e9
}

// activeTime returns the nanoseconds spent active between the epoch and t.
func (i idle) activeTime(t int64) int64 {
	k := floorDiv(t, i.cycle)
	return k*i.active + min(t-k*i.cycle, i.active)
}

// Off returns traffic that never has a request. A workload with it has no
// request series at all (nothing ever called it), unlike one whose traffic
// is merely quiet now, which reports a rate of 0.
func Off() Traffic { return off{} }

type off struct{}

func (off) Requests(from, to time.Time) float64 { return 0 }

// Anchor returns t with its time origin moved from the Unix epoch to origin:
// Anchor(Idle(10*time.Minute, time.Hour, 1), start) is active from start to
// start+10m, then again at start+70m. If t implements GPUWork, so does the
// result.
func Anchor(t Traffic, origin time.Time) Traffic {
	if _, ok := t.(off); ok {
		return t // still without a series
	}
	a := anchored{t: t, shift: origin.UnixNano()}
	if w, ok := t.(GPUWork); ok {
		return anchoredWork{anchored: a, w: w}
	}
	return a
}

type anchored struct {
	t     Traffic
	shift int64 // nanoseconds from the epoch to the origin
}

func (a anchored) back(t time.Time) time.Time { return time.Unix(0, t.UnixNano()-a.shift) }

func (a anchored) Requests(from, to time.Time) float64 {
	return a.t.Requests(a.back(from), a.back(to))
}

type anchoredWork struct {
	anchored
	w GPUWork
}

func (a anchoredWork) BusySeconds(from, to time.Time) float64 {
	return a.w.BusySeconds(a.back(from), a.back(to))
}

// seconds returns the length of (from, to] in seconds, 0 if it is empty.
func seconds(from, to time.Time) float64 {
	if !to.After(from) {
		return 0
	}
	return to.Sub(from).Seconds()
}

func mustRate(fn, name string, v float64) {
	if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		panic(fmt.Sprintf("sim: %s %s = %v, must be a finite number >= 0", fn, name, v))
	}
}

func mustPositive(fn, name string, d time.Duration) {
	if d <= 0 {
		panic(fmt.Sprintf("sim: %s %s = %v, must be > 0", fn, name, d))
	}
}

// floorDiv returns ⌊a/b⌋ for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// mod returns a mod b in [0, b) for b > 0.
func mod(a, b int64) int64 {
	r := a % b
	if r < 0 {
		r += b
	}
	return r
}

func clamp(v, lo, hi int64) int64 { return max(lo, min(v, hi)) }

// splitmix64 is a fixed, well-mixed hash of x (Steele et al., SplitMix64).
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
