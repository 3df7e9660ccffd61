package shutdown

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// AutoIdleAfter stands for `idleAfter: auto` where an idle-after is carried
// as a duration (trigger metadata, Resolve): the workload's keep-alive and
// pre-wake are learned from its own activity (see Learn). No real
// idle-after is negative.
const AutoIdleAfter time.Duration = -1

// Learning defaults (see LearnConfig).
const (
	DefaultLearnMinHistory = 48 * time.Hour
	DefaultLearnWindow     = 7 * 24 * time.Hour
	DefaultPreWakeBudget   = 4
	// DefaultWakeLead is a GPU model server's 2m cold start and WakeMargin.
	DefaultWakeLead = 2*time.Minute + WakeMargin
)

// WakeMargin is how much earlier than the cold start to hide a pre-wake
// starts, for the sampling: a collector's tick and a store's scrape.
const WakeMargin = 30 * time.Second

// LearnConfig is how Learn reads a workload's activity. DefaultLearnConfig
// holds the defaults; a zero field is not a default.
type LearnConfig struct {
	// Fixed is the keep-alive to fall back to (--idle-after, else 15m).
	Fixed time.Duration
	// MinHistory is the history needed before anything is learned
	// (--learn-min-history).
	MinHistory time.Duration
	// Window is how far back the history is read.
	Window time.Duration
	// MinGaps is the fewest idle gaps a distribution is learned from;
	// MinRegularGaps the fewest a regular rhythm is (a nightly job has 7
	// in a week).
	MinGaps, MinRegularGaps int
	// RecentGaps is how many of the latest long gaps (longer than the
	// keep-alive and the lead) the pre-wake window is learned from: a new rhythm
	// replaces the old one within that many gaps.
	RecentGaps int
	// Range is the longest idle gap the histogram holds; more than
	// MaxOutOfRange of the gaps beyond it make the distribution not
	// representative.
	Range         time.Duration
	MaxOutOfRange float64
	// RegularSpread is how narrow the long gaps must be for pre-wake: their
	// 10th to 90th percentile within this share of their median. The
	// pre-wake window spans the gaps within this share of the median.
	RegularSpread float64
	// WakeLead is how long before the expected activity a pre-wake (or a
	// learned keep-awake hour) starts: at least the cold start to hide.
	WakeLead time.Duration
	// PreWakeBudget is how many pre-wakes not followed by demand a day
	// the workload may have before it backs off to the fixed keep-alive
	// (--prewake-budget). 0 turns pre-wake off.
	PreWakeBudget int
	// BusyShare is the share of its past occurrences an hour of the week
	// must have been busy (active 45 minutes or more) in to be learned as
	// a keep-awake hour, seen at least twice.
	BusyShare float64
	// Location is the time zone of the learned hours; nil is UTC.
	Location *time.Location
}

// DefaultLearnConfig returns the defaults: fall back to 15m, 2 days of
// history needed, 7 days read, 8 gaps, the latest 12 long gaps, a 4h range
// with at most 10% beyond it, a spread within 10%, a 2m30s lead (a GPU
// model server's 2m cold start and the sampling), 4 wasted pre-wakes a day,
// hours busy 90% of the time, in UTC.
func DefaultLearnConfig() LearnConfig {
	return LearnConfig{
		Fixed: DefaultIdleAfter, MinHistory: DefaultLearnMinHistory, Window: DefaultLearnWindow,
		MinGaps: 8, MinRegularGaps: 5, RecentGaps: 12, Range: 4 * time.Hour, MaxOutOfRange: 0.1,
		RegularSpread: 0.1, WakeLead: DefaultWakeLead, PreWakeBudget: DefaultPreWakeBudget,
		BusyShare: 0.9, Location: time.UTC,
	}
}

// Validate names the first setting that is out of range.
func (c LearnConfig) Validate() error {
	switch {
	case c.Fixed <= 0 || c.Fixed > MaxIdleAfter:
		return fmt.Errorf("fixed keep-alive = %s, must be > 0 and <= %s", FormatDuration(c.Fixed), FormatDuration(MaxIdleAfter))
	case c.MinHistory < time.Hour || c.MinHistory > c.Window:
		return fmt.Errorf("learn min history = %s, must be in [1h, %s]", FormatDuration(c.MinHistory), FormatDuration(c.Window))
	case c.MinGaps < 2:
		return fmt.Errorf("min gaps = %d, must be >= 2", c.MinGaps)
	case c.MinRegularGaps < 2:
		return fmt.Errorf("min regular gaps = %d, must be >= 2", c.MinRegularGaps)
	case c.RecentGaps < c.MinGaps:
		return fmt.Errorf("recent gaps = %d, must be >= min gaps (%d)", c.RecentGaps, c.MinGaps)
	case c.Range <= c.Fixed:
		return fmt.Errorf("range = %s, must be longer than the fixed keep-alive (%s)", FormatDuration(c.Range), FormatDuration(c.Fixed))
	case c.PreWakeBudget < 0:
		return fmt.Errorf("prewake budget = %d, must be >= 0", c.PreWakeBudget)
	case c.WakeLead < 0 || c.WakeLead > time.Hour:
		return fmt.Errorf("wake lead = %s, must be in [0s, 1h]", c.WakeLead)
	}
	return nil
}

// Mode is what a learned Model does.
type Mode uint8

// Modes.
const (
	// ModeFixed: nothing representative was learned; the fixed keep-alive
	// applies (learned keep-awake hours still may).
	ModeFixed Mode = iota
	// ModeLearned: the keep-alive is learned, with pre-wake when the gaps
	// are regular.
	ModeLearned
	// ModeBackedOff: too many pre-wakes were not followed by demand; the
	// fixed keep-alive applies until the last day's are within budget.
	ModeBackedOff
)

// Model is what Learn learned of one workload: the keep-alive after
// activity, the pre-wake window and the keep-awake hours. It is immutable
// once made.
type Model struct {
	Mode Mode
	// KeepAlive is how long the workload stays up after its last activity.
	KeepAlive time.Duration
	// PreWakeFrom and PreWakeUntil bound the pre-wake window, counted from
	// the last activity: the workload is active within it (the next
	// activity is expected then). Both zero: no pre-wake.
	PreWakeFrom, PreWakeUntil time.Duration
	// Hours are the learned keep-awake hours as windows that open
	// WakeLead before each run of busy hours.
	Hours []Window
	// HoursText is the hours for people: "Mon-Fri 08:00-17:00 UTC".
	HoursText string
	// Gaps is the number of idle gaps learned from; Wasted the pre-wakes
	// of the last day not followed by demand.
	Gaps, Wasted int
	// Why says why the model fell back or backed off ("" when learned).
	Why string
}

// FixedModel is the model of a workload whose history has not been read:
// the fixed keep-alive, and why.
func FixedModel(fixed time.Duration, why string) *Model {
	return &Model{Mode: ModeFixed, KeepAlive: fixed, Why: why}
}

// Learn learns a workload's model from its activity at now. It is a pure
// function: the same activity and now give the same model.
func Learn(a *Activity, now time.Time, cfg LearnConfig) *Model {
	m := &Model{Mode: ModeFixed, KeepAlive: cfg.Fixed}
	if a == nil || a.Since.IsZero() || now.Sub(a.Since) < cfg.MinHistory {
		seen := time.Duration(0)
		if a != nil && !a.Since.IsZero() {
			seen = max(now.Sub(a.Since), 0)
		}
		m.Why = "needs " + shortAgo(cfg.MinHistory) + " of history, has " + shortAgo(seen)
		return m
	}
	from := later(a.Since, now.Add(-cfg.Window))
	m.Hours, m.HoursText = learnHours(a, from, now, cfg)
	gaps := a.gaps(from, now)
	m.Gaps = len(gaps)
	active := false
	for _, s := range a.Spans {
		if !s.End.Before(from) && !s.Start.After(now) {
			active = true
			break
		}
	}
	if !active {
		m.Why = "no activity in " + shortAgo(now.Sub(from)) + " of history"
		return m
	}
	// A regular rhythm is representative however few or long its gaps (a
	// nightly job has 7 a week, each beyond the range); else there must be
	// MinGaps of them, mostly within the range.
	keep := keepAlive(gaps, cfg)
	from2, until := preWake(gaps, keep, cfg)
	regular := from2 > 0
	oob := 0
	for _, g := range gaps {
		if g.len > cfg.Range {
			oob++
		}
	}
	switch {
	case regular:
	case len(gaps) < cfg.MinGaps:
		m.Why = strconv.Itoa(len(gaps)) + " idle gaps in " + shortAgo(now.Sub(from)) + ", needs " + strconv.Itoa(cfg.MinGaps)
		return m
	case float64(oob) > cfg.MaxOutOfRange*float64(len(gaps)):
		m.Why = "not representative: " + strconv.Itoa(oob) + " of " + strconv.Itoa(len(gaps)) +
			" idle gaps longer than " + FormatDuration(cfg.Range)
		return m
	}

	m.Mode, m.KeepAlive = ModeLearned, keep
	if !regular {
		return m
	}
	m.Wasted = wastedPreWakes(a, now, from2, until)
	if m.Wasted >= cfg.PreWakeBudget {
		m.Mode, m.KeepAlive = ModeBackedOff, cfg.Fixed
		m.Why = "backed off: " + strconv.Itoa(m.Wasted) + " pre-wakes in the last 24h not followed by demand (budget " +
			strconv.Itoa(cfg.PreWakeBudget) + ")"
		return m
	}
	m.PreWakeFrom, m.PreWakeUntil = from2, until
	return m
}

// keepAlive picks the keep-alive that would have cost least over the
// history's gaps: a gap it bridges costs its length, one it does not costs
// the keep-alive plus a cold start, priced at the fixed keep-alive (the
// wait the operator chose to pay to avoid one; ski rental's break-even).
// A gap counts as bridged with 30s to spare, for the sampling. Whole
// minutes, at least one, at most the fixed keep-alive; on a tie, the
// longer (fewer cold starts).
func keepAlive(gaps []gap, cfg LearnConfig) time.Duration {
	best, bestCost := cfg.Fixed, math.Inf(1)
	for k := time.Minute; k <= cfg.Fixed; k += time.Minute {
		var cost time.Duration
		for _, g := range gaps {
			if g.len+bridgeMargin <= k {
				cost += g.len
			} else {
				cost += k + cfg.Fixed
			}
		}
		if c := float64(cost); c <= bestCost {
			best, bestCost = k, c
		}
	}
	return best
}

// bridgeMargin is how much longer than a gap a keep-alive must be to bridge
// it for sure.
const bridgeMargin = 30 * time.Second

// maxPreWakeSpread bounds the spread of gaps a pre-wake window covers:
// past it, waking ahead costs more than the cold start it hides.
const maxPreWakeSpread = 30 * time.Minute

// preWake returns the pre-wake window (from, until after the last
// activity) when the latest long gaps are regular, else zeros.
func preWake(gaps []gap, keep time.Duration, cfg LearnConfig) (from, until time.Duration) {
	if cfg.PreWakeBudget <= 0 {
		return 0, 0
	}
	// Only a gap longer than the keep-alive and the lead can be woken
	// ahead of (the window opens after the keep-alive ends): shorter
	// ones, pauses within a session, are no part of the rhythm.
	var long []float64
	for i := len(gaps) - 1; i >= 0 && len(long) < cfg.RecentGaps; i-- {
		if gaps[i].len > keep+cfg.WakeLead {
			long = append(long, float64(gaps[i].len))
		}
	}
	if len(long) < cfg.MinRegularGaps {
		return 0, 0
	}
	slices.Sort(long)
	lo, mid, hi := quantile(long, 0.1), quantile(long, 0.5), quantile(long, 0.9)
	if hi-lo > cfg.RegularSpread*mid || hi-lo > float64(maxPreWakeSpread) {
		return 0, 0
	}
	// The window opens the lead before the shortest gap and closes the
	// lead after the longest, outliers beyond the spread aside: a window
	// that closes at the longest, before its lead, costs cold starts of
	// runs that come late for the few minutes of a wasted pre-wake it
	// saves; one that opens before the 10th percentile makes the early
	// runs meet cold starts that cost more than the minutes it saves
	// (docs/backtest.md).
	first, last := lo, hi
	for _, g := range long {
		if g >= mid*(1-cfg.RegularSpread) {
			first = min(first, g)
		}
		if g <= mid*(1+cfg.RegularSpread) {
			last = max(last, g)
		}
	}
	from = time.Duration(first) - cfg.WakeLead
	until = time.Duration(last) + cfg.WakeLead
	if from <= keep {
		return 0, 0 // the keep-alive already covers it
	}
	return from.Truncate(time.Second), until.Truncate(time.Second)
}

// quantile is the q-quantile of sorted xs, interpolated linearly.
func quantile(xs []float64, q float64) float64 {
	p := q * float64(len(xs)-1)
	i := int(math.Floor(p))
	if i+1 >= len(xs) {
		return xs[len(xs)-1]
	}
	return xs[i] + (p-float64(i))*(xs[i+1]-xs[i])
}

// wastedPreWakes counts the gaps whose pre-wake window closed within the
// last day without demand in it: pre-wakes that would have woken the
// workload for nothing. A gap whose demand came before the window opened
// had no pre-wake.
func wastedPreWakes(a *Activity, now time.Time, from, until time.Duration) int {
	n := 0
	dayAgo := now.Add(-24 * time.Hour)
	for i, s := range a.Spans {
		closes := s.End.Add(until)
		if closes.After(now) || !closes.After(dayAgo) {
			continue
		}
		if i+1 < len(a.Spans) {
			next := a.Spans[i+1].Start
			if next.Before(s.End.Add(from)) || !next.After(closes) {
				continue // demand before the window, or within it
			}
		}
		n++
	}
	return n
}

// busyCell is how much of an hour a workload must be active in for the
// hour to count as busy.
const busyCell = 45 * time.Minute

// learnHours finds the hours of the week in which the workload was busy in
// at least cfg.BusyShare of their occurrences (two at least) between from
// and now. With less than two weeks of history, the weekdays are pooled
// (Monday to Friday, Saturday and Sunday) so that two days suffice.
func learnHours(a *Activity, from, now time.Time, cfg LearnConfig) ([]Window, string) {
	loc := cfg.Location
	if loc == nil {
		loc = time.UTC
	}
	pooled := now.Sub(from) < 14*24*time.Hour
	slot := func(t time.Time) int {
		d := int(t.Weekday())
		if pooled {
			switch d {
			case 0, 6:
				d = 0
			default:
				d = 1
			}
		}
		return d*24 + t.Hour()
	}
	var seen, busy [7 * 24]int
	step := a.step()
	lf := from.In(loc)
	h := time.Date(lf.Year(), lf.Month(), lf.Day(), lf.Hour(), 0, 0, 0, loc)
	if h.Before(from) {
		h = h.Add(time.Hour)
	}
	j := 0
	for ; !h.Add(time.Hour).After(now); h = h.Add(time.Hour) {
		end := h.Add(time.Hour)
		for j < len(a.Spans) && !a.Spans[j].End.Add(step).After(h) {
			j++
		}
		var on time.Duration
		for k := j; k < len(a.Spans) && a.Spans[k].Start.Before(end); k++ {
			s, e := later(a.Spans[k].Start, h), a.Spans[k].End.Add(step)
			if e.After(end) {
				e = end
			}
			if e.After(s) {
				on += e.Sub(s)
			}
		}
		k := slot(h)
		seen[k]++
		if on >= busyCell {
			busy[k]++
		}
	}
	// The busy hours of each weekday, as bits.
	var days [7]uint32
	for d := range 7 {
		for hr := range 24 {
			k := slot(time.Date(2026, 1, 4+d, hr, 0, 0, 0, time.UTC)) // 4 Jan 2026 is a Sunday
			if seen[k] >= 2 && float64(busy[k]) >= cfg.BusyShare*float64(seen[k]) {
				days[d] |= 1 << hr
			}
		}
	}
	return hoursWindows(days, cfg.WakeLead, loc)
}

var dayNames = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

// hoursWindows turns busy hours into keep-awake windows that open lead
// early, one window per run of hours shared by a set of weekdays.
func hoursWindows(days [7]uint32, lead time.Duration, loc *time.Location) ([]Window, string) {
	type run struct{ start, end int }
	groups := map[run][]int{}
	var order []run
	for d := range 7 {
		for hr := 0; hr < 24; {
			if days[d]&(1<<hr) == 0 {
				hr++
				continue
			}
			e := hr
			for e < 24 && days[d]&(1<<e) != 0 {
				e++
			}
			r := run{hr, e}
			if _, ok := groups[r]; !ok {
				order = append(order, r)
			}
			groups[r] = append(groups[r], d)
			hr = e
		}
	}
	if len(order) == 0 {
		return nil, ""
	}
	leadMin := int((lead + time.Minute - 1) / time.Minute)
	var (
		ws    []Window
		texts []string
	)
	for _, r := range order {
		ds := groups[r]
		startMin := r.start*60 - leadMin
		wdays := make([]string, len(ds))
		names := make([]string, len(ds))
		for i, d := range ds {
			wd := d
			if startMin < 0 {
				wd = (d + 6) % 7
			}
			wdays[i] = strconv.Itoa(wd)
			names[i] = dayNames[d]
		}
		sm := (startMin + 24*60) % (24 * 60)
		expr := fmt.Sprintf("%d %d * * %s", sm%60, sm/60, strings.Join(wdays, ","))
		w, err := NewWindow(expr, time.Duration(r.end-r.start)*time.Hour+time.Duration(leadMin)*time.Minute, loc.String())
		if err != nil {
			continue // cannot happen: the fields are in range
		}
		ws = append(ws, w)
		texts = append(texts, fmt.Sprintf("%s %02d:00-%02d:00", dayRange(ds), r.start, r.end))
	}
	return ws, strings.Join(texts, ", ") + " " + loc.String()
}

// dayRange writes weekdays as "Mon-Fri" when consecutive, else "Mon,Wed".
func dayRange(ds []int) string {
	if len(ds) > 2 && ds[len(ds)-1]-ds[0] == len(ds)-1 {
		return dayNames[ds[0]] + "-" + dayNames[ds[len(ds)-1]]
	}
	names := make([]string, len(ds))
	for i, d := range ds {
		names[i] = dayNames[d]
	}
	return strings.Join(names, ",")
}

// Summary is the model in a few words for ebb.dev/state; it changes only
// when the model does.
func (m *Model) Summary() string {
	var s string
	switch m.Mode {
	case ModeLearned:
		s = "auto: keep-alive " + FormatDuration(m.KeepAlive) + " learned from " + strconv.Itoa(m.Gaps) + " idle gaps"
		if m.PreWakeFrom > 0 {
			s += ", pre-wake " + FormatDuration(m.PreWakeFrom.Truncate(time.Minute)) + "-" +
				FormatDuration(m.PreWakeUntil.Truncate(time.Minute)) + " after activity"
		}
	default:
		s = "auto: fixed " + FormatDuration(m.KeepAlive) + ", " + m.Why
	}
	if m.HoursText != "" {
		s += "; learned keep-awake " + m.HoursText
	}
	return s
}

// Apply returns p with the model in force: its keep-alive as IdleAfter, its
// pre-wake window and its keep-awake hours, unless p has keep-awake windows
// of its own, which override the learned ones. A p that is not Auto is
// returned as it is.
func (m *Model) Apply(p Policy) Policy {
	if !p.Auto || m == nil {
		return p
	}
	p.IdleAfter = m.KeepAlive
	if len(p.KeepAwake) > 0 && len(m.Hours) > 0 {
		cp := *m
		cp.Hours, cp.HoursText = nil, ""
		m = &cp
	}
	p.Learned = m
	return p
}

// LearnConfig returns how p learns: p.Learn, or DefaultLearnConfig when it
// is zero, with p's IdleAfter as the fixed fallback.
func (p Policy) LearnConfig() LearnConfig {
	c := p.Learn
	if c.Window == 0 {
		c = DefaultLearnConfig()
	}
	if p.IdleAfter > 0 {
		c.Fixed = p.IdleAfter
	}
	return c
}
