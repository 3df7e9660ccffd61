package shutdown

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Bounds on keep-awake windows.
const (
	// MaxWindowDuration is the longest a keep-awake window may last.
	MaxWindowDuration = 7 * 24 * time.Hour
	// MaxWindows is the most keep-awake windows one annotation may hold.
	MaxWindows = 16
)

// Search bounds: they keep Contains and Next cheap for any expression.
const (
	maxHops  = 16 // zone transitions crossed in one search
	maxCalls = 16 // schedule look-ups one Contains may spend merging windows
)

// cronParser reads the five standard fields and descriptors such as @daily.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// cronReference is where a new expression must find a match within the five
// years robfig/cron searches (2000 is a leap year, so "29 Feb" matches).
var cronReference = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Window is a recurring keep-awake window: it opens whenever the wall clock in
// its time zone reaches a time its cron expression matches and stays open for
// its duration of wall-clock time. The zero Window never opens. A Window is
// immutable and safe for concurrent use.
type Window struct {
	spec  string
	sched *cron.SpecSchedule // matches wall-clock readings, kept on a zone-free (UTC) line
	dur   time.Duration
	loc   *time.Location
}

// NewWindow returns the window that opens at the times expr matches (five
// cron fields or a descriptor such as @daily) in zone (an IANA name; "" means
// UTC) and stays open for d. The error names the part that is wrong.
func NewWindow(expr string, d time.Duration, zone string) (Window, error) {
	expr = strings.Join(strings.Fields(expr), " ")
	sched, err := parseCron(expr)
	if err != nil {
		return Window{}, err
	}
	if d <= 0 || d > MaxWindowDuration {
		return Window{}, fmt.Errorf("duration %s must be > 0 and <= %s", FormatDuration(d), FormatDuration(MaxWindowDuration))
	}
	loc, err := loadZone(zone)
	if err != nil {
		return Window{}, err
	}
	spec := expr + " for " + FormatDuration(d)
	if zone != "" {
		spec += " in " + zone
	}
	return Window{spec: spec, sched: sched, dur: d, loc: loc}, nil
}

// ParseWindow parses one window written as "<cron> for <duration> [in <zone>]",
// e.g. "0 8 * * 1-5 for 12h in Europe/Berlin".
func ParseWindow(s string) (Window, error) {
	fields := strings.Fields(s)
	at := -1
	for i, f := range fields {
		if f == "for" {
			at = i
			break
		}
	}
	switch {
	case len(fields) == 0:
		return Window{}, errors.New(`empty; want "<cron> for <duration> [in <zone>]"`)
	case at < 0:
		return Window{}, errors.New(`missing "for <duration>"`)
	case at == len(fields)-1:
		return Window{}, errors.New(`missing duration after "for"`)
	}
	raw := fields[at+1]
	d, err := time.ParseDuration(raw)
	if err != nil {
		return Window{}, fmt.Errorf("duration %s is not a duration like 12h or 90m", quote(raw))
	}
	zone := ""
	switch rest := fields[at+2:]; {
	case len(rest) == 0:
	case len(rest) == 2 && rest[0] == "in":
		zone = rest[1]
	default:
		return Window{}, fmt.Errorf(`unexpected %s after the duration; want "in <zone>"`, quote(strings.Join(rest, " ")))
	}
	return NewWindow(strings.Join(fields[:at], " "), d, zone)
}

// ParseWindows parses windows separated by ";" (empty parts are skipped). It
// returns the windows that parsed and an error naming each one that did not
// by its position, counting from 1.
func ParseWindows(s string) ([]Window, error) {
	var (
		ws   []Window
		errs []error
		n    int
	)
	for part := range strings.SplitSeq(s, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		n++
		if n > MaxWindows {
			errs = append(errs, fmt.Errorf("more than %d windows", MaxWindows))
			break
		}
		w, err := ParseWindow(part)
		if err != nil {
			errs = append(errs, fmt.Errorf("window %d: %w", n, err))
			continue
		}
		ws = append(ws, w)
	}
	return ws, joinErrors(errs)
}

// parseCron parses expr into a schedule of wall-clock readings.
func parseCron(expr string) (*cron.SpecSchedule, error) {
	switch {
	case expr == "":
		return nil, errors.New("cron expression is empty")
	case strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ="):
		// robfig/cron v3.0.1 panics on "TZ=x" without a space, and the zone
		// has its own place.
		return nil, fmt.Errorf(`cron expression %s: give the time zone as "in <zone>"`, quote(expr))
	case strings.HasPrefix(expr, "@every"):
		return nil, fmt.Errorf("cron expression %s: @every is not tied to the clock; use five fields or @hourly, @daily, @weekly, @monthly, @yearly", quote(expr))
	}
	s, err := cronParser.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("cron expression %s: %w", quote(expr), err)
	}
	spec, ok := s.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("cron expression %s: not a calendar schedule", quote(expr))
	}
	spec.Location = time.UTC
	if spec.Next(cronReference).IsZero() {
		return nil, fmt.Errorf("cron expression %s never matches", quote(expr))
	}
	return spec, nil
}

// loadZone loads an IANA time zone; "" is UTC.
func loadZone(zone string) (*time.Location, error) {
	if zone == "" {
		return time.UTC, nil
	}
	if zone == "Local" {
		return nil, errors.New(`time zone "Local" depends on the server; name an IANA zone such as Europe/Berlin`)
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, fmt.Errorf("time zone %s: %w", quote(zone), err)
	}
	return loc, nil
}

// String returns the window as ParseWindow reads it.
func (w Window) String() string { return w.spec }

// Duration returns how long the window stays open.
func (w Window) Duration() time.Duration { return w.dur }

// Location returns the window's time zone.
func (w Window) Location() *time.Location { return w.loc }

// Contains reports whether t is inside the window and, if so, until when:
// the first instant at which it is no longer inside, after merging windows
// that follow each other without a gap. For expressions whose windows chain
// back to back many times over (e.g. "@daily for 24h"), until is a lower
// bound: ask again then.
func (w Window) Contains(t time.Time) (in bool, until time.Time) {
	if w.sched == nil {
		return false, time.Time{}
	}
	c, off, zoneEnd := w.wall(t)
	start, ok := w.cover(c)
	if !ok {
		return false, time.Time{}
	}
	budget := maxCalls
	for range maxHops {
		end := w.runEnd(start, &budget).Add(-off)
		if zoneEnd.IsZero() || end.Before(zoneEnd) {
			return true, end.In(w.loc)
		}
		if budget <= 0 {
			return true, zoneEnd.In(w.loc) // inside at least until the offset changes
		}
		// The zone's offset changes before the run ends: the wall clock
		// jumps, possibly out of the window.
		at := zoneEnd
		c, off, zoneEnd = w.wall(at)
		if start, ok = w.cover(c); !ok {
			return true, at.In(w.loc)
		}
	}
	return true, zoneEnd.In(w.loc)
}

// Next returns when the window next opens after t; if t is inside it, the
// first opening after that run ends. It returns the zero time when the window
// does not open within the search horizon (e.g. it never closes).
func (w Window) Next(t time.Time) time.Time {
	if w.sched == nil {
		return time.Time{}
	}
	u := t
	for i := 0; ; i++ {
		in, end := w.Contains(u)
		if !in {
			break
		}
		if i == 3 {
			return time.Time{} // open throughout the horizon
		}
		u = end
	}
	for range maxHops {
		c, off, zoneEnd := w.wall(u)
		s := w.next(c)
		if s.IsZero() {
			return time.Time{}
		}
		if open := s.Add(-off); zoneEnd.IsZero() || open.Before(zoneEnd) {
			return open.In(w.loc)
		}
		// The offset changes first; the jump may land inside the window.
		if c2, _, _ := w.wall(zoneEnd); w.covered(c2) {
			return zoneEnd.In(w.loc)
		}
		u = zoneEnd
	}
	return time.Time{}
}

// wall returns t's wall-clock reading in the window's zone as an instant on
// the zone-free UTC line, the zone's offset at t, and when that offset ends
// (zero if never).
func (w Window) wall(t time.Time) (c time.Time, off time.Duration, zoneEnd time.Time) {
	lt := t.In(w.loc)
	_, secs := lt.Zone()
	_, zoneEnd = lt.ZoneBounds()
	off = time.Duration(secs) * time.Second
	return t.Add(off).UTC(), off, zoneEnd
}

// cover returns the earliest start of a window that covers the wall-clock
// reading c, that is c-dur < start <= c, and false if there is none.
func (w Window) cover(c time.Time) (start time.Time, ok bool) {
	s := w.next(c.Add(-w.dur))
	return s, !s.IsZero() && !s.After(c)
}

func (w Window) covered(c time.Time) bool {
	_, ok := w.cover(c)
	return ok
}

// next returns the first start strictly after the wall-clock reading c, or
// zero if none within five years. Five-field expressions match whole
// minutes only, so the search starts at the end of c's minute: robfig/cron
// would otherwise step through the seconds one by one.
func (w Window) next(c time.Time) time.Time {
	return w.sched.Next(c.Truncate(time.Minute).Add(59 * time.Second))
}

// runEnd returns the end of the run of windows from the one that opens at
// start, merging windows that open before the previous one ends, while the
// budget of schedule look-ups lasts.
func (w Window) runEnd(start time.Time, budget *int) time.Time {
	end := start.Add(w.dur)
	for ; *budget > 0; *budget-- {
		s := w.next(end.Add(-w.dur)) // the first start that reaches past end
		if s.IsZero() || s.After(end) {
			break
		}
		end = s.Add(w.dur)
	}
	return end
}
