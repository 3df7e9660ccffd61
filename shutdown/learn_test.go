package shutdown_test

import (
	"math/rand/v2"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/ebbscale/ebb/shutdown"
)

// monday is Monday 30 November 2026, 00:00 UTC.
var monday = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)

// pattern is a workload's activity: spans [start, end) in which it has
// traffic, in time order.
type pattern []shutdown.Span

func (p pattern) active(t time.Time) bool {
	i := sort.Search(len(p), func(i int) bool { return p[i].End.After(t) })
	return i < len(p) && !t.Before(p[i].Start)
}

// periodic starts a run of length run every period ± jitter (uniform, the
// intervals between starts), from first until end.
func periodic(first, end time.Time, period, jitter, run time.Duration, seed uint64) pattern {
	r := rand.New(rand.NewPCG(seed, 1))
	var p pattern
	for t := first; t.Before(end); {
		p = append(p, shutdown.Span{Start: t, End: t.Add(run)})
		j := time.Duration((r.Float64()*2 - 1) * float64(jitter))
		t = t.Add(period + j).Truncate(time.Minute)
	}
	return p
}

// history observes p every minute from start until end.
func history(p pattern, start, end time.Time) *shutdown.Activity {
	a := &shutdown.Activity{Step: time.Minute}
	for t := start; t.Before(end); t = t.Add(time.Minute) {
		a.Observe(t, p.active(t))
	}
	return a
}

// outcome is what a policy did from one minute to the next over a span of
// time: the minutes it was up, the cold starts (activity while it was
// idle), and the pre-wakes, wasted or not.
type outcome struct {
	up, coldStarts, preWakes, wasted int
	backedOff, preWakesBackedOff     int // minutes backed off, pre-wakes then
	firstBackedOff                   *shutdown.Model
	last                             *shutdown.Model
	decisions                        map[time.Time]shutdown.Decision
}

// replay learns from p's history before from, then plays p minute by minute
// from from until to through a Tracker, learning again every minute as
// ebb's collector does, with auto or with the fixed 15m.
func replay(t *testing.T, p pattern, start, from, to time.Time, cfg shutdown.LearnConfig, auto bool) outcome {
	t.Helper()
	a := history(p, start, from)
	tr := shutdown.Tracker{}
	tr.Recover(a.LastActive())
	pol := shutdown.Policy{IdleAfter: shutdown.DefaultIdleAfter, MinUptime: shutdown.DefaultMinUptime, Auto: auto}
	o := outcome{decisions: map[time.Time]shutdown.Decision{}}
	wasIdle, inPreWake, demandInPreWake := false, false, false
	for now := from; now.Before(to); now = now.Add(time.Minute) {
		act := p.active(now)
		a.Observe(now, act)
		v := 0.0
		if act {
			v = 1
		}
		tr.Observe(v, 0, true, now)
		m := shutdown.Learn(a, now, cfg)
		d := tr.Decide(m.Apply(pol), now)
		o.last = m
		o.decisions[now] = d
		if act && wasIdle {
			o.coldStarts++
		}
		if d.Active && wasIdle && !act { // woken without demand: a pre-wake (its reason shows as min-uptime)
			o.preWakes++
			inPreWake, demandInPreWake = true, false
			if m.Mode == shutdown.ModeBackedOff {
				o.preWakesBackedOff++
			}
		}
		if m.Mode == shutdown.ModeBackedOff {
			if o.backedOff == 0 {
				o.firstBackedOff = m
			}
			o.backedOff++
		}
		if inPreWake && act {
			demandInPreWake = true
		}
		if inPreWake && !d.Active {
			if !demandInPreWake {
				o.wasted++
			}
			inPreWake = false
		}
		if d.Active {
			o.up++
		}
		wasIdle = !d.Active
	}
	return o
}

func TestLearnPeriodic(t *testing.T) {
	t.Parallel()
	// A job every 2h ± 2 min that runs 10 minutes, for four days.
	p := periodic(monday.Add(30*time.Minute), monday.Add(4*24*time.Hour), 2*time.Hour, 2*time.Minute, 10*time.Minute, 7)
	cfg := shutdown.DefaultLearnConfig()
	from, to := monday.Add(3*24*time.Hour), monday.Add(4*24*time.Hour)

	m := shutdown.Learn(history(p, monday, from), from, cfg)
	if m.Mode != shutdown.ModeLearned || m.KeepAlive != time.Minute {
		t.Fatalf("got mode %d keep-alive %s (%s), want learned 1m", m.Mode, m.KeepAlive, m.Why)
	}
	// Gaps are 110m ± 2m: the window opens 2m (the lead) before the 10th
	// percentile and closes 2m after the 90th.
	if m.PreWakeFrom < 105*time.Minute || m.PreWakeFrom > 107*time.Minute ||
		m.PreWakeUntil < 113*time.Minute || m.PreWakeUntil > 115*time.Minute {
		t.Fatalf("pre-wake window %s-%s after activity, want about 106m-114m", m.PreWakeFrom, m.PreWakeUntil)
	}

	auto := replay(t, p, monday, from, to, cfg, true)
	fixed := replay(t, p, monday, from, to, cfg, false)
	if auto.coldStarts != 0 || auto.wasted != 0 {
		t.Errorf("auto: %d cold starts, %d wasted pre-wakes, want 0 and 0", auto.coldStarts, auto.wasted)
	}
	if fixed.coldStarts != 12 {
		t.Errorf("fixed 15m: %d cold starts, want 12 (every run)", fixed.coldStarts)
	}
	if auto.up >= fixed.up {
		t.Errorf("auto up %d minutes, fixed 15m %d: want fewer", auto.up, fixed.up)
	}
	// Each run: woken 2-5 minutes before it, idle 2 minutes after it ends
	// (1m keep-alive after the last active minute).
	for _, s := range p {
		if s.Start.Before(from.Add(time.Hour)) || !s.End.Before(to) {
			continue
		}
		woke := 0
		for m := 1; m <= 10; m++ {
			if d := auto.decisions[s.Start.Add(-time.Duration(m)*time.Minute)]; d.Active {
				woke = m
			} else {
				break
			}
		}
		if woke < 2 || woke > 5 {
			t.Errorf("run at %s: woken %d minutes before, want 2 to 5", s.Start.Format(time.Kitchen), woke)
		}
		if d := auto.decisions[s.End.Add(time.Minute)]; d.Active {
			t.Errorf("run ending %s: active a minute after the work (%s), want idle", s.End.Format(time.Kitchen), d)
		}
	}
}

func TestLearnWorkday(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	// Busy 09:00-18:00 Berlin time (08:00-17:00 UTC in winter), weekdays.
	var p pattern
	for d := 0; d < 7; d++ {
		day := monday.AddDate(0, 0, d).In(berlin)
		if wd := day.Weekday(); wd == time.Saturday || wd == time.Sunday {
			continue
		}
		p = append(p, shutdown.Span{
			Start: time.Date(day.Year(), day.Month(), day.Day(), 9, 0, 0, 0, berlin),
			End:   time.Date(day.Year(), day.Month(), day.Day(), 18, 0, 0, 0, berlin),
		})
	}
	cfg := shutdown.DefaultLearnConfig()
	thursday := monday.AddDate(0, 0, 3)
	m := shutdown.Learn(history(p, monday, thursday), thursday, cfg)
	if want := "Mon-Fri 08:00-17:00 UTC"; m.HoursText != want {
		t.Fatalf("learned hours %q, want %q", m.HoursText, want)
	}
	if want := "2 idle gaps in 3d, needs 8"; m.Mode != shutdown.ModeFixed || m.Why != want || m.KeepAlive != 15*time.Minute {
		t.Fatalf("got mode %d keep-alive %s why %q, want fixed 15m %q", m.Mode, m.KeepAlive, m.Why, want)
	}
	auto := replay(t, p, monday, thursday, monday.AddDate(0, 0, 6), cfg, true)
	if auto.coldStarts != 0 {
		t.Errorf("auto: %d cold starts, want 0 (woken by the learned hours)", auto.coldStarts)
	}
	at := func(day int, hhmm string) shutdown.Decision {
		c, _ := time.Parse("15:04", hhmm)
		return auto.decisions[monday.AddDate(0, 0, day).Add(time.Duration(c.Hour())*time.Hour+time.Duration(c.Minute())*time.Minute)]
	}
	for _, c := range []struct {
		day    int
		hhmm   string
		active bool
		reason shutdown.Reason
	}{
		{3, "07:56", false, shutdown.ReasonIdle},
		{3, "07:57", true, shutdown.ReasonLearnedHours}, // the lead, 2m30s, in whole minutes: 3 early
		{3, "12:00", true, shutdown.ReasonTraffic},
		{3, "17:13", true, shutdown.ReasonRecent}, // last active 16:59, fixed 15m
		{3, "17:14", false, shutdown.ReasonIdle},
		{4, "07:57", true, shutdown.ReasonLearnedHours},
		{5, "08:30", false, shutdown.ReasonIdle}, // Saturday
	} {
		if d := at(c.day, c.hhmm); d.Active != c.active || d.Reason != c.reason {
			t.Errorf("day %d %s: %s, want active=%v reason %s", c.day, c.hhmm, d, c.active, c.reason)
		}
	}
	// The state names the learned hours.
	want := "active: learned keep-awake hours Mon-Fri 08:00-17:00 UTC (auto: fixed 15m, 3 idle gaps in 4d7h, needs 8; learned keep-awake Mon-Fri 08:00-17:00 UTC)"
	if got := shutdown.StateAnnotations(at(4, "07:57"), time.Time{})[shutdown.AnnotationState]; got != want {
		t.Errorf("state %q, want %q", got, want)
	}
}

// poisson draws arrivals with exponential gaps of the given mean, each
// active for run.
func poisson(start, end time.Time, mean, run time.Duration, seed uint64) pattern {
	r := rand.New(rand.NewPCG(seed, 2))
	var p pattern
	for t := start; ; {
		t = t.Add(time.Duration(r.ExpFloat64() * float64(mean))).Truncate(time.Minute)
		if !t.Before(end) {
			return p
		}
		p = append(p, shutdown.Span{Start: t, End: t.Add(run)})
		t = t.Add(run)
	}
}

func TestLearnPoissonRareFallsBack(t *testing.T) {
	t.Parallel()
	p := poisson(monday, monday.AddDate(0, 0, 8), 6*time.Hour, 5*time.Minute, 3)
	cfg := shutdown.DefaultLearnConfig()
	from := monday.AddDate(0, 0, 7)
	a := history(p, monday, from)
	// The expected text comes from the gaps the pattern holds.
	long, n := 0, 0
	for i := 1; i < len(a.Spans); i++ {
		n++
		if a.Spans[i].Start.Sub(a.Spans[i-1].End) > 4*time.Hour {
			long++
		}
	}
	m := shutdown.Learn(a, from, cfg)
	want := "not representative: " + strconv.Itoa(long) + " of " + strconv.Itoa(n) + " idle gaps longer than 4h"
	if m.Mode != shutdown.ModeFixed || m.Why != want || m.KeepAlive != 15*time.Minute || m.PreWakeFrom != 0 {
		t.Fatalf("got mode %d keep-alive %s pre-wake %s why %q, want fixed 15m %q", m.Mode, m.KeepAlive, m.PreWakeFrom, m.Why, want)
	}
	auto := replay(t, p, monday, from, monday.AddDate(0, 0, 8), cfg, true)
	fixed := replay(t, p, monday, from, monday.AddDate(0, 0, 8), cfg, false)
	if auto.up != fixed.up || auto.coldStarts != fixed.coldStarts || auto.preWakes != 0 {
		t.Errorf("auto up %d cold %d pre-wakes %d, fixed up %d cold %d: want the same, no pre-wake",
			auto.up, auto.coldStarts, auto.preWakes, fixed.up, fixed.coldStarts)
	}
}

func TestLearnBursty(t *testing.T) {
	t.Parallel()
	// Bursts of about 30 minutes: 4 minutes of use, a pause of 1-3
	// minutes, again; 40 minutes to 3 hours between bursts.
	r := rand.New(rand.NewPCG(11, 3))
	var p pattern
	for t := monday.Add(20 * time.Minute); t.Before(monday.AddDate(0, 0, 4)); {
		for end := t.Add(30 * time.Minute); t.Before(end); {
			p = append(p, shutdown.Span{Start: t, End: t.Add(4 * time.Minute)})
			t = t.Add(4*time.Minute + time.Duration(1+r.IntN(3))*time.Minute)
		}
		t = t.Add(40*time.Minute + time.Duration(r.IntN(140))*time.Minute)
	}
	cfg := shutdown.DefaultLearnConfig()
	from, to := monday.AddDate(0, 0, 3), monday.AddDate(0, 0, 4)
	m := shutdown.Learn(history(p, monday, from), from, cfg)
	// A pause of 3 idle minutes is a 4-minute gap between active
	// observations; every pause is cheaper to bridge than a cold start
	// priced at the fixed 15m, and every gap between bursts costs the
	// keep-alive: the least that bridges 4m with 30s to spare, 5m.
	if m.Mode != shutdown.ModeLearned || m.KeepAlive != 5*time.Minute || m.PreWakeFrom != 0 {
		t.Fatalf("got mode %d keep-alive %s pre-wake %s (%s), want learned 5m without pre-wake", m.Mode, m.KeepAlive, m.PreWakeFrom, m.Why)
	}
	auto := replay(t, p, monday, from, to, cfg, true)
	fixed := replay(t, p, monday, from, to, cfg, false)
	if auto.coldStarts != fixed.coldStarts || auto.up >= fixed.up || auto.preWakes != 0 {
		t.Errorf("auto up %d cold %d pre-wakes %d, fixed 15m up %d cold %d: want fewer minutes up, the same cold starts, no pre-wake",
			auto.up, auto.coldStarts, auto.preWakes, fixed.up, fixed.coldStarts)
	}
}

// The keep-alive prices a cold start at the fixed idle-after, the wait the
// operator chose to pay to avoid one. Runs of 5 minutes come in pairs, 5
// idle minutes apart (a 6-minute gap between active observations), the
// pairs 30 to 90 minutes apart. Bridging the pause takes 7m (6m and 30s to
// spare) and costs 6 + 7 + F a pair, where F is the fixed idle-after; a 1m
// keep-alive costs 2 × (1 + F). With 15m (28 against 32) the pause is
// bridged; with 10m (23 against 22) it is not.
func TestLearnKeepAlivePricesColdStart(t *testing.T) {
	t.Parallel()
	var p pattern
	for i, t := 0, monday; t.Before(monday.AddDate(0, 0, 3)); i++ {
		p = append(p, shutdown.Span{Start: t, End: t.Add(5 * time.Minute)},
			shutdown.Span{Start: t.Add(10 * time.Minute), End: t.Add(15 * time.Minute)})
		t = t.Add(15*time.Minute + time.Duration(30+20*(i%4))*time.Minute)
	}
	for _, c := range []struct {
		fixed, keep time.Duration
	}{
		{15 * time.Minute, 7 * time.Minute},
		{10 * time.Minute, time.Minute},
	} {
		cfg := shutdown.DefaultLearnConfig()
		cfg.Fixed = c.fixed
		now := monday.AddDate(0, 0, 3)
		m := shutdown.Learn(history(p, monday, now), now, cfg)
		if m.Mode != shutdown.ModeLearned || m.KeepAlive != c.keep || m.PreWakeFrom != 0 {
			t.Errorf("fixed %s: mode %d keep-alive %s pre-wake %s (%s), want learned %s without pre-wake",
				c.fixed, m.Mode, m.KeepAlive, m.PreWakeFrom, m.Why, c.keep)
		}
	}
}

// A job every hour ± 1m whose every fifth run pauses for 2 minutes halfway:
// bridging one pause in five gaps is not worth a longer keep-alive on the
// other four, so the keep-alive is 1m and the pause a 3-minute gap. It is
// too short to be woken ahead of (within the keep-alive and the 2m30s
// lead), so it is no part of the rhythm: the gaps between runs are regular
// and pre-woken as they would be without pauses.
func TestLearnPeriodicWithPauses(t *testing.T) {
	t.Parallel()
	var p pattern
	for i, s := range periodic(monday, monday.AddDate(0, 0, 3), time.Hour, time.Minute, 5*time.Minute, 7) {
		if i%5 != 0 {
			p = append(p, s)
			continue
		}
		p = append(p, shutdown.Span{Start: s.Start, End: s.Start.Add(2 * time.Minute)},
			shutdown.Span{Start: s.Start.Add(4 * time.Minute), End: s.End.Add(time.Minute)})
	}
	now := monday.AddDate(0, 0, 3)
	m := shutdown.Learn(history(p, monday, now), now, shutdown.DefaultLearnConfig())
	if m.Mode != shutdown.ModeLearned || m.KeepAlive != time.Minute || m.PreWakeFrom < 50*time.Minute || m.PreWakeUntil > 59*time.Minute {
		t.Fatalf("got mode %d keep-alive %s pre-wake %s-%s (%s), want learned 1m with a pre-wake within 50m-59m", m.Mode, m.KeepAlive, m.PreWakeFrom, m.PreWakeUntil, m.Why)
	}
}

func TestLearnNeverActive(t *testing.T) {
	t.Parallel()
	cfg := shutdown.DefaultLearnConfig()
	for _, c := range []struct {
		days int
		why  string
	}{
		{1, "needs 2d of history, has 24h"},
		{3, "no activity in 3d of history"},
	} {
		now := monday.AddDate(0, 0, c.days)
		m := shutdown.Learn(history(nil, monday, now), now, cfg)
		if m.Mode != shutdown.ModeFixed || m.Why != c.why || m.KeepAlive != 15*time.Minute || len(m.Hours) != 0 {
			t.Errorf("%d days: got mode %d keep-alive %s why %q hours %q, want fixed 15m %q", c.days, m.Mode, m.KeepAlive, m.Why, m.HoursText, c.why)
		}
		pol := m.Apply(shutdown.Policy{IdleAfter: 15 * time.Minute, MinUptime: 5 * time.Minute, Auto: true})
		d := pol.Decide(shutdown.State{Known: true}, now)
		want := "idle: no activity within idle-after 15m (auto: fixed 15m, " + c.why + ")"
		if got := shutdown.StateAnnotations(d, time.Time{})[shutdown.AnnotationState]; got != want {
			t.Errorf("%d days: state %q, want %q", c.days, got, want)
		}
	}
}

func TestLearnAdaptsToNewRhythm(t *testing.T) {
	t.Parallel()
	// Every 2h for three days, then every 3h.
	change := monday.AddDate(0, 0, 3)
	p := append(periodic(monday.Add(30*time.Minute), change, 2*time.Hour, 2*time.Minute, 10*time.Minute, 5),
		periodic(change.Add(time.Hour), monday.AddDate(0, 0, 7), 3*time.Hour, 2*time.Minute, 10*time.Minute, 6)...)
	cfg := shutdown.DefaultLearnConfig()
	during := replay(t, p, monday, change, change.Add(2*24*time.Hour), cfg, true)
	if during.wasted > cfg.PreWakeBudget {
		t.Errorf("while adapting: %d wasted pre-wakes, want at most the budget %d", during.wasted, cfg.PreWakeBudget)
	}
	// Within RecentGaps (12) new gaps, 36h, the new rhythm is learned.
	m := during.last
	// Starts every 178-181 minutes (the jitter, truncated to the minute)
	// and 10-minute runs leave gaps of 169-172 minutes after the last
	// active minute: the window opens the lead before the shortest.
	if shortest := m.PreWakeFrom + cfg.WakeLead; m.Mode != shutdown.ModeLearned || shortest < 169*time.Minute || shortest > 170*time.Minute {
		t.Fatalf("after 2 days of the new rhythm: mode %d pre-wake %s-%s (%s), want learned from the lead before 169m or 170m", m.Mode, m.PreWakeFrom, m.PreWakeUntil, m.Why)
	}
	after := replay(t, p, monday, change.Add(2*24*time.Hour), change.Add(3*24*time.Hour), cfg, true)
	if after.coldStarts != 0 || after.wasted != 0 || after.preWakes != 8 {
		t.Errorf("the day after: %d cold starts, %d pre-wakes, %d wasted, want 0, 8 and 0", after.coldStarts, after.preWakes, after.wasted)
	}
}

func TestLearnBacksOffWastedPreWakes(t *testing.T) {
	t.Parallel()
	// Every 2h for three days; then the demand comes 8 minutes after the
	// learned window closes, every time. A wider spread keeps the gaps
	// "regular" so that only the budget stops the pre-wakes.
	change := monday.AddDate(0, 0, 3)
	p := append(periodic(monday.Add(30*time.Minute), change, 2*time.Hour, 2*time.Minute, 10*time.Minute, 9),
		periodic(change.Add(2*time.Hour), monday.AddDate(0, 0, 5), 2*time.Hour+20*time.Minute, 0, 10*time.Minute, 10)...)
	cfg := shutdown.DefaultLearnConfig()
	cfg.RegularSpread, cfg.PreWakeBudget = 0.3, 2
	o := replay(t, p, monday, change, monday.AddDate(0, 0, 5), cfg, true)
	if o.wasted != cfg.PreWakeBudget {
		t.Errorf("%d wasted pre-wakes, want the budget, %d", o.wasted, cfg.PreWakeBudget)
	}
	if o.backedOff == 0 || o.preWakesBackedOff != 0 {
		t.Fatalf("backed off %d minutes with %d pre-wakes then, want some minutes and none", o.backedOff, o.preWakesBackedOff)
	}
	m := o.firstBackedOff
	want := "backed off: 2 pre-wakes in the last 24h not followed by demand (budget 2)"
	if m.Why != want || m.KeepAlive != 15*time.Minute || m.PreWakeFrom != 0 {
		t.Errorf("got keep-alive %s pre-wake %s why %q, want backed off to 15m: %q", m.KeepAlive, m.PreWakeFrom, m.Why, want)
	}
}

func TestLearnSafety(t *testing.T) {
	t.Parallel()
	p := periodic(monday.Add(30*time.Minute), monday.AddDate(0, 0, 4), 2*time.Hour, 2*time.Minute, 10*time.Minute, 7)
	from := monday.AddDate(0, 0, 3)
	a := history(p, monday, from)
	m := shutdown.Learn(a, from, shutdown.DefaultLearnConfig())
	pol := m.Apply(shutdown.Policy{IdleAfter: 15 * time.Minute, MinUptime: 5 * time.Minute, Auto: true})
	last := a.LastActive()
	quiet := last.Add(30 * time.Minute) // between runs: idle
	inWindow := last.Add(m.PreWakeFrom + time.Minute)
	for _, c := range []struct {
		name   string
		s      shutdown.State
		now    time.Time
		active bool
		reason shutdown.Reason
	}{
		{"demand wins", shutdown.State{Known: true, Value: 3, LastActive: last}, quiet, true, shutdown.ReasonTraffic},
		{"min uptime after a wake", shutdown.State{Known: true, LastActive: last, WokeAt: quiet.Add(-4 * time.Minute)}, quiet, true, shutdown.ReasonMinUptime},
		{"idle between runs", shutdown.State{Known: true, LastActive: last}, quiet, false, shutdown.ReasonIdle},
		{"pre-wake", shutdown.State{Known: true, LastActive: last}, inWindow, true, shutdown.ReasonPreWake},
		{"an outage never pre-wakes", shutdown.State{Known: false, Why: shutdown.WhyFailing, LastActive: last}, inWindow, true, shutdown.ReasonUnknown},
		{"an outage never idles", shutdown.State{Known: false, Why: shutdown.WhyFailing, LastActive: last}, quiet, true, shutdown.ReasonUnknown},
	} {
		d := pol.Decide(c.s, c.now)
		if d.Active != c.active || d.Reason != c.reason {
			t.Errorf("%s: %s, want active=%v reason %s", c.name, d, c.active, c.reason)
		}
		if c.reason == shutdown.ReasonUnknown && d.Known() {
			t.Errorf("%s: known, want no answer", c.name)
		}
	}
	// The idle answer says when the pre-wake comes.
	if d := pol.Decide(shutdown.State{Known: true, LastActive: last}, quiet); !d.Until.Equal(last.Add(m.PreWakeFrom)) {
		t.Errorf("idle until %s, want the pre-wake at %s", d.Until, last.Add(m.PreWakeFrom))
	}
}

func TestResolveAuto(t *testing.T) {
	t.Parallel()
	o, err := shutdown.ParseAnnotations(map[string]string{shutdown.AnnotationIdleAfter: "auto"})
	if err != nil || o.IdleAfter != shutdown.AutoIdleAfter {
		t.Fatalf("ParseAnnotations(auto) = %v, %v; want AutoIdleAfter", o.IdleAfter, err)
	}
	def := shutdown.DefaultPolicy()
	f := func(name string, defaults shutdown.Policy, metadata time.Duration, o shutdown.Overrides, auto bool, idle time.Duration) {
		t.Helper()
		p := shutdown.Resolve(defaults, metadata, o)
		if p.Auto != auto || p.IdleAfter != idle {
			t.Errorf("%s: auto %v idle-after %s, want %v %s", name, p.Auto, p.IdleAfter, auto, idle)
		}
	}
	autoDef := def
	autoDef.IdleAfter = shutdown.AutoIdleAfter
	f("annotation", def, 0, o, true, 15*time.Minute)
	f("metadata", def, shutdown.AutoIdleAfter, shutdown.Overrides{}, true, 15*time.Minute)
	f("flag", autoDef, 0, shutdown.Overrides{}, true, 15*time.Minute)
	f("annotation 30m beats metadata auto", def, shutdown.AutoIdleAfter, shutdown.Overrides{IdleAfter: 30 * time.Minute}, false, 30*time.Minute)
	f("annotation auto beats metadata 30m, which is its fallback", def, 30*time.Minute, o, true, 30*time.Minute)
	f("metadata 10m beats flag auto", autoDef, 10*time.Minute, shutdown.Overrides{}, false, 10*time.Minute)
}

func TestLearnConfigValidate(t *testing.T) {
	t.Parallel()
	f := func(change func(*shutdown.LearnConfig), want string) {
		t.Helper()
		c := shutdown.DefaultLearnConfig()
		change(&c)
		if err := c.Validate(); err == nil || err.Error() != want {
			t.Errorf("got %v, want %q", err, want)
		}
	}
	f(func(c *shutdown.LearnConfig) { c.MinHistory = 30 * time.Minute }, "learn min history = 30m, must be in [1h, 168h]")
	f(func(c *shutdown.LearnConfig) { c.PreWakeBudget = -1 }, "prewake budget = -1, must be >= 0")
	f(func(c *shutdown.LearnConfig) { c.Fixed = 0 }, "fixed keep-alive = 0s, must be > 0 and <= 720h")
	if err := shutdown.DefaultLearnConfig().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}
