package shutdown

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// number formats a value as %g does.
func number(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// FormatDuration renders a configured duration without zero units: "15m",
// "1h30m", "2h", "720h".
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// shortAgo formats an elapsed duration coarsely, rounded down: 45s, 17m,
// 2h5m, 3d4h.
func shortAgo(d time.Duration) string {
	d = max(d, 0)
	unit := func(n time.Duration, u string) string { return strconv.FormatInt(int64(n), 10) + u }
	switch {
	case d < time.Minute:
		return unit(d/time.Second, "s")
	case d < time.Hour:
		return unit(d/time.Minute, "m")
	case d < 48*time.Hour:
		h, m := d/time.Hour, d%time.Hour/time.Minute
		if m == 0 {
			return unit(h, "h")
		}
		return unit(h, "h") + unit(m, "m")
	}
	days, h := d/(24*time.Hour), d%(24*time.Hour)/time.Hour
	if h == 0 {
		return unit(days, "d")
	}
	return unit(days, "d") + unit(h, "h")
}

// quote quotes s for an error message, cut to 64 bytes.
func quote(s string) string {
	if len(s) > 64 {
		s = strings.ToValidUTF8(s[:64], "") + "..."
	}
	return strconv.Quote(s)
}

// joinErrors returns nil, the only error, or all of them joined by "; ".
func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return &multiError{errs: slices.Clip(errs)}
}

// multiError is errors.Join with "; " in place of newlines, which do not
// suit log lines and annotations. A pointer, so that errors compare.
type multiError struct{ errs []error }

func (m *multiError) Error() string {
	var b strings.Builder
	for i, err := range m.errs {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

func (m *multiError) Unwrap() []error { return m.errs }
