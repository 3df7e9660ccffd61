package shutdown_test

import (
	"testing"
	"time"

	"github.com/ebbscale/ebb/shutdown"
)

// In Europe/Berlin in 2026 the clocks spring forward on Sunday 29 March at
// 02:00 CET (01:00Z) to 03:00 CEST, and fall back on Sunday 25 October at
// 03:00 CEST (01:00Z) to 02:00 CET. Times below carry their offset, so
// 02:30+02:00 and 02:30+01:00 are the two passes through the repeated hour.

func mustWindow(t testing.TB, s string) shutdown.Window {
	t.Helper()
	w, err := shutdown.ParseWindow(s)
	if err != nil {
		t.Fatalf("ParseWindow(%q): %v", s, err)
	}
	return w
}

func ts(t testing.TB, s string) time.Time {
	t.Helper()
	if s == "" {
		return time.Time{}
	}
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func fmtTime(v time.Time) string {
	if v.IsZero() {
		return "zero"
	}
	return v.Format(time.RFC3339)
}

func TestWindowContains(t *testing.T) {
	t.Parallel()
	const (
		weekdays  = "0 8 * * 1-5 for 12h in Europe/Berlin"
		overnight = "0 20 * * * for 12h in Europe/Berlin"
		inGap     = "30 2 * * * for 1h in Europe/Berlin"
		twoDays   = "0 8 * * 1,2 for 36h in Europe/Berlin"
	)
	tests := []struct {
		name, window, at string
		in               bool
		until            string
	}{
		{"weekday morning", weekdays, "2026-03-27T10:00:00+01:00", true, "2026-03-27T20:00:00+01:00"},
		{"start is inside", weekdays, "2026-03-27T08:00:00+01:00", true, "2026-03-27T20:00:00+01:00"},
		{"end is outside", weekdays, "2026-03-27T20:00:00+01:00", false, ""},
		{"just before the start", weekdays, "2026-03-30T07:59:59+02:00", false, ""},
		{"saturday", weekdays, "2026-03-28T12:00:00+01:00", false, ""},
		{"first weekday in summer time ends at 20:00 local", weekdays, "2026-03-30T19:00:00+02:00", true, "2026-03-30T20:00:00+02:00"},
		{"first weekday in winter time ends at 20:00 local", weekdays, "2026-10-26T08:00:00+01:00", true, "2026-10-26T20:00:00+01:00"},
		{"UTC by default", "0 9 * * * for 1h", "2026-03-29T09:30:00Z", true, "2026-03-29T10:00:00Z"},

		// Spans midnight: 20:00 to 08:00 local, 11h on the night the
		// clocks spring forward and 13h on the night they fall back.
		{"overnight before midnight", overnight, "2026-03-28T23:30:00+01:00", true, "2026-03-29T08:00:00+02:00"},
		{"overnight after the spring-forward", overnight, "2026-03-29T03:30:00+02:00", true, "2026-03-29T08:00:00+02:00"},
		{"overnight ended", overnight, "2026-03-29T08:00:00+02:00", false, ""},
		{"overnight, repeated hour, first pass", overnight, "2026-10-25T02:30:00+02:00", true, "2026-10-25T08:00:00+01:00"},
		{"overnight, repeated hour, second pass", overnight, "2026-10-25T02:30:00+01:00", true, "2026-10-25T08:00:00+01:00"},
		{"overnight start on the fall-back eve", overnight, "2026-10-24T20:00:00+02:00", true, "2026-10-25T08:00:00+01:00"},

		// 02:30-03:30 local: on the spring-forward day the wall clock
		// skips 02:00-03:00, so the window is 03:00-03:30 CEST.
		{"start in the skipped hour opens at 03:00", inGap, "2026-03-29T03:00:00+02:00", true, "2026-03-29T03:30:00+02:00"},
		{"before the skipped hour", inGap, "2026-03-29T01:59:59+01:00", false, ""},
		{"an ordinary night", inGap, "2026-03-28T02:45:00+01:00", true, "2026-03-28T03:30:00+01:00"},
		// On the fall-back day the wall clock reads 02:30-03:00 twice: the
		// first pass leaves the window when it jumps back to 02:00.
		{"repeated hour, first pass", inGap, "2026-10-25T02:45:00+02:00", true, "2026-10-25T02:00:00+01:00"},
		{"repeated hour, back at 02:10", inGap, "2026-10-25T02:10:00+01:00", false, ""},
		{"repeated hour, second pass", inGap, "2026-10-25T02:30:00+01:00", true, "2026-10-25T03:30:00+01:00"},

		// Longer than the cron period: Monday's and Tuesday's windows merge.
		{"longer than the period, monday", twoDays, "2026-03-30T09:00:00+02:00", true, "2026-04-01T20:00:00+02:00"},
		{"longer than the period, tuesday night", twoDays, "2026-03-31T23:00:00+02:00", true, "2026-04-01T20:00:00+02:00"},
		{"longer than the period, wednesday night", twoDays, "2026-04-01T20:00:00+02:00", false, ""},
		{"hourly for 90m across the fall-back", "0 * * * * for 90m in Europe/Berlin", "2026-10-25T02:59:00+01:00", true, "never"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := mustWindow(t, tt.window)
			at := ts(t, tt.at)
			in, until := w.Contains(at)
			if in != tt.in {
				t.Fatalf("Contains(%s) = %v, want %v", tt.at, in, tt.in)
			}
			if !in && !until.IsZero() {
				t.Errorf("got until %s outside the window, want zero", fmtTime(until))
			}
			if tt.until == "" {
				return
			}
			if tt.until == "never" {
				// A window that never closes: until is a lower bound.
				if !until.After(at) {
					t.Errorf("got until %s, want after %s", fmtTime(until), tt.at)
				}
				if still, _ := w.Contains(until); !still {
					t.Errorf("Contains(until %s) = false, want true for a window that never closes", fmtTime(until))
				}
				return
			}
			if want := ts(t, tt.until); !until.Equal(want) {
				t.Errorf("got until %s, want %s", fmtTime(until), tt.until)
			}
		})
	}
}

func TestWindowNext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, window, at, want string
	}{
		{"saturday to monday in summer time", "0 8 * * 1-5 for 12h in Europe/Berlin", "2026-03-28T12:00:00+01:00", "2026-03-30T08:00:00+02:00"},
		{"saturday to monday in winter time", "0 8 * * 1-5 for 12h in Europe/Berlin", "2026-10-24T12:00:00+02:00", "2026-10-26T08:00:00+01:00"},
		{"inside: the opening after this one", "0 8 * * 1-5 for 12h in Europe/Berlin", "2026-03-27T10:00:00+01:00", "2026-03-30T08:00:00+02:00"},
		{"start in the skipped hour opens when it ends", "30 2 * * * for 1h in Europe/Berlin", "2026-03-29T01:59:59+01:00", "2026-03-29T03:00:00+02:00"},
		{"start in the skipped hour with a window that ends in it", "30 2 * * * for 20m in Europe/Berlin", "2026-03-29T01:59:59+01:00", "2026-03-30T02:30:00+02:00"},
		{"repeated hour opens twice", "30 2 * * * for 1h in Europe/Berlin", "2026-10-25T02:45:00+02:00", "2026-10-25T02:30:00+01:00"},
		{"repeated hour, from before it", "30 2 * * * for 1h in Europe/Berlin", "2026-10-25T01:00:00+02:00", "2026-10-25T02:30:00+02:00"},
		{"overnight spanning the spring-forward", "0 20 * * * for 12h in Europe/Berlin", "2026-03-29T08:00:00+02:00", "2026-03-29T20:00:00+02:00"},
		{"longer than the period", "0 8 * * 1,2 for 36h in Europe/Berlin", "2026-03-30T09:00:00+02:00", "2026-04-06T08:00:00+02:00"},
		{"monthly descriptor", "@monthly for 1h", "2026-03-29T09:30:00Z", "2026-04-01T00:00:00Z"},
		{"never closes", "@daily for 24h in Europe/Berlin", "2026-03-29T09:30:00+02:00", ""},
		{"zero window never opens", "", "2026-03-29T09:30:00Z", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w shutdown.Window
			if tt.window != "" {
				w = mustWindow(t, tt.window)
			}
			got := w.Next(ts(t, tt.at))
			if want := ts(t, tt.want); !got.Equal(want) {
				t.Fatalf("Next(%s) = %s, want %s", tt.at, fmtTime(got), fmtTime(want))
			}
			if !got.IsZero() {
				if in, _ := w.Contains(got); !in {
					t.Errorf("Contains(Next) = false, want true")
				}
				if in, _ := w.Contains(got.Add(-time.Nanosecond)); in {
					t.Errorf("Contains(Next - 1ns) = true, want false")
				}
			}
		})
	}
}

// A window that never closes stays open across both DST weekends.
func TestWindowAlwaysOpenAcrossDST(t *testing.T) {
	t.Parallel()
	for _, spec := range []string{"@daily for 24h in Europe/Berlin", "0 */6 * * * for 8h in Europe/Berlin", "0 0 * * 1 for 168h in Europe/Berlin"} {
		w := mustWindow(t, spec)
		for _, start := range []string{"2026-03-28T00:00:00+01:00", "2026-10-24T00:00:00+02:00"} {
			from := ts(t, start)
			for at := from; at.Before(from.Add(48 * time.Hour)); at = at.Add(7 * time.Minute) {
				if in, until := w.Contains(at); !in || !until.After(at) {
					t.Fatalf("%s: Contains(%s) = %v, %s; want true and later", spec, fmtTime(at), in, fmtTime(until))
				}
			}
		}
	}
}

func TestParseWindow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want, err string
	}{
		{in: "0 8 * * 1-5 for 12h in Europe/Berlin", want: "0 8 * * 1-5 for 12h in Europe/Berlin"},
		{in: "  0  8 * *   MON-FRI  for 90m ", want: "0 8 * * MON-FRI for 1h30m"},
		{in: "@weekly for 2h in UTC", want: "@weekly for 2h in UTC"},
		{in: "", err: `empty; want "<cron> for <duration> [in <zone>]"`},
		{in: "0 8 * * 1-5", err: `missing "for <duration>"`},
		{in: "0 8 * * 1-5 for", err: `missing duration after "for"`},
		{in: "for 1h", err: "cron expression is empty"},
		{in: "0 8 * * 1-5 for 12x", err: `duration "12x" is not a duration like 12h or 90m`},
		{in: "0 8 * * 1-5 for 0s", err: "duration 0s must be > 0 and <= 168h"},
		{in: "0 8 * * 1-5 for -1h", err: "duration -1h must be > 0 and <= 168h"},
		{in: "0 8 * * 1-5 for 169h", err: "duration 169h must be > 0 and <= 168h"},
		{in: "0 25 * * * for 1h", err: `cron expression "0 25 * * *": end of range (25) above maximum (23): 25`},
		{in: "0 8 * * for 1h", err: `cron expression "0 8 * *": expected exactly 5 fields, found 4: [0 8 * *]`},
		{in: "0 0 30 2 * for 1h", err: `cron expression "0 0 30 2 *" never matches`},
		{in: "@every 1h for 1h", err: `cron expression "@every 1h": @every is not tied to the clock; use five fields or @hourly, @daily, @weekly, @monthly, @yearly`},
		{in: "TZ=UTC for 1h", err: `cron expression "TZ=UTC": give the time zone as "in <zone>"`},
		{in: "@sometimes for 1h", err: `cron expression "@sometimes": unrecognized descriptor: @sometimes`},
		{in: "0 8 * * * for 1h in Mars/Base", err: `time zone "Mars/Base": unknown time zone Mars/Base`},
		{in: "0 8 * * * for 1h in Local", err: `time zone "Local" depends on the server; name an IANA zone such as Europe/Berlin`},
		{in: "0 8 * * * for 1h at Europe/Berlin", err: `unexpected "at Europe/Berlin" after the duration; want "in <zone>"`},
		{in: "0 8 * * * for 1h in", err: `unexpected "in" after the duration; want "in <zone>"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			w, err := shutdown.ParseWindow(tt.in)
			if got := errString(err); got != tt.err {
				t.Fatalf("got error %q, want %q", got, tt.err)
			}
			if got := w.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseWindows(t *testing.T) {
	t.Parallel()
	ws, err := shutdown.ParseWindows("0 8 * * 1-5 for 12h in Europe/Berlin; ;0 10 * * 6 for 4x; 0 10 * * 0 for 4h; nonsense")
	const want = `window 2: duration "4x" is not a duration like 12h or 90m; window 4: missing "for <duration>"`
	if got := errString(err); got != want {
		t.Errorf("got error %q, want %q", got, want)
	}
	if len(ws) != 2 || ws[0].String() != "0 8 * * 1-5 for 12h in Europe/Berlin" || ws[1].String() != "0 10 * * 0 for 4h" {
		t.Errorf("got windows %v, want the two that parsed", ws)
	}

	many := ""
	for range shutdown.MaxWindows + 1 {
		many += "@daily for 1h;"
	}
	ws, err = shutdown.ParseWindows(many)
	if got, want := errString(err), "more than 16 windows"; got != want {
		t.Errorf("got error %q, want %q", got, want)
	}
	if len(ws) != shutdown.MaxWindows {
		t.Errorf("got %d windows, want %d", len(ws), shutdown.MaxWindows)
	}
}

func TestNewWindow(t *testing.T) {
	t.Parallel()
	w, err := shutdown.NewWindow("0 8 * * 1-5", 12*time.Hour, "Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := w.String(), "0 8 * * 1-5 for 12h in Europe/Berlin"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := w.Location().String(), "Europe/Berlin"; got != want {
		t.Errorf("got zone %q, want %q", got, want)
	}
	if got, want := w.Duration(), 12*time.Hour; got != want {
		t.Errorf("got duration %s, want %s", got, want)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
