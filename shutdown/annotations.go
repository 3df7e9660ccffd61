package shutdown

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Annotation keys on a Deployment or StatefulSet.
const (
	// Read by ebb.
	AnnotationIdleAfter    = "ebb.dev/idle-after"   // e.g. "30m"
	AnnotationAutoshutdown = "ebb.dev/autoshutdown" // "false" opts out
	AnnotationKeepAwake    = "ebb.dev/keep-awake"   // e.g. "0 8 * * 1-5 for 12h in Europe/Berlin"

	// Written by ebb.
	AnnotationLastActive = "ebb.dev/last-active" // RFC 3339, to the minute
	AnnotationState      = "ebb.dev/state"       // e.g. "idle: no activity within idle-after 15m"
)

// MaxIdleAfter is the longest idle-after ebb accepts.
const MaxIdleAfter = 30 * 24 * time.Hour

// Overrides is what a workload's annotations change in its Policy.
type Overrides struct {
	// IdleAfter is from ebb.dev/idle-after; zero when not set,
	// AutoIdleAfter for "auto".
	IdleAfter time.Duration
	// Disabled is true for ebb.dev/autoshutdown: "false".
	Disabled bool
	// KeepAwake holds the windows of ebb.dev/keep-awake that parsed.
	KeepAwake []Window
	// Invalid is the error ParseAnnotations returned, if any. Resolve copies
	// it into the Policy, which then decides neither active nor idle.
	Invalid error
	// Unknown, when set, says why the workload's annotations are not known
	// yet (not read from the cluster yet); the Policy then decides neither
	// active nor idle.
	Unknown string
}

// AnnotationError names the annotation that is wrong and why.
type AnnotationError struct {
	Key string
	Err error
}

func (e *AnnotationError) Error() string { return e.Key + ": " + e.Err.Error() }

func (e *AnnotationError) Unwrap() error { return e.Err }

// ParseAnnotations reads ebb's annotations from a workload's annotations;
// other keys are ignored. On bad values it returns what parsed and an error
// made of one *AnnotationError per bad annotation; the same error is in
// Overrides.Invalid.
func ParseAnnotations(a map[string]string) (Overrides, error) {
	var (
		o    Overrides
		errs []error
		bad  = func(key string, err error) { errs = append(errs, &AnnotationError{Key: key, Err: err}) }
	)
	if raw, ok := a[AnnotationIdleAfter]; ok {
		raw = strings.TrimSpace(raw)
		d, err := time.ParseDuration(raw)
		switch {
		case strings.EqualFold(raw, "auto"):
			o.IdleAfter = AutoIdleAfter
		case err != nil:
			bad(AnnotationIdleAfter, fmt.Errorf(`%s is not a duration like 30m or "auto"`, quote(raw)))
		case d <= 0 || d > MaxIdleAfter:
			bad(AnnotationIdleAfter, fmt.Errorf("%s must be > 0 and <= %s", FormatDuration(d), FormatDuration(MaxIdleAfter)))
		default:
			o.IdleAfter = d
		}
	}
	if raw, ok := a[AnnotationAutoshutdown]; ok {
		switch v := strings.TrimSpace(raw); {
		case strings.EqualFold(v, "false"):
			o.Disabled = true
		case strings.EqualFold(v, "true"):
		default:
			bad(AnnotationAutoshutdown, fmt.Errorf(`%s must be "true" or "false"`, quote(raw)))
		}
	}
	if raw, ok := a[AnnotationKeepAwake]; ok {
		ws, err := ParseWindows(raw)
		o.KeepAwake = ws
		if err != nil {
			bad(AnnotationKeepAwake, err)
		}
	}
	o.Invalid = joinErrors(errs)
	return o, o.Invalid
}

// Resolve returns the policy for one workload: defaults holds the server's
// settings (--idle-after and so on), metadataIdleAfter the trigger's
// idleAfter (zero when not set), o the workload's annotations. IdleAfter is
// the annotation's, else the trigger's, else the default; any of them may be
// AutoIdleAfter, which makes the policy Auto (learned) with the default's
// IdleAfter, or DefaultIdleAfter, as the fixed fallback. Keep-awake windows
// add up, and opting out on either side wins.
func Resolve(defaults Policy, metadataIdleAfter time.Duration, o Overrides) Policy {
	p := defaults
	if p.IdleAfter == AutoIdleAfter {
		p.Auto, p.IdleAfter = true, DefaultIdleAfter
	}
	for _, d := range [...]time.Duration{metadataIdleAfter, o.IdleAfter} {
		switch {
		case d == AutoIdleAfter:
			p.Auto = true
		case d > 0:
			p.Auto, p.IdleAfter = false, d
		}
	}
	p.Disabled = p.Disabled || o.Disabled
	if len(o.KeepAwake) > 0 {
		p.KeepAwake = append(slices.Clip(defaults.KeepAwake), o.KeepAwake...)
	}
	if o.Invalid != nil {
		p.Invalid = o.Invalid
	}
	if o.Unknown != "" {
		p.Unknown = o.Unknown
	}
	return p
}

// StateAnnotations returns the values ebb writes on the workload for a
// decision. They change only when the answer or its cause does, not with
// every tick, so that writing them "only when they change" stays cheap:
// last-active is cut to the minute and omitted when lastActive is zero, and
// the state names no running clock.
func StateAnnotations(d Decision, lastActive time.Time) map[string]string {
	m := map[string]string{AnnotationState: stateText(d)}
	if !lastActive.IsZero() {
		m[AnnotationLastActive] = lastActive.UTC().Truncate(time.Minute).Format(time.RFC3339)
	}
	return m
}

// maxStateError bounds how much of a configuration error goes into the state
// annotation.
const maxStateError = 200

// stateText is the decision without values that move every tick.
func stateText(d Decision) string {
	x := d.Detail
	var s string
	switch d.Reason {
	case ReasonHeld:
		s = heldText(x)
	case ReasonBadConfig:
		s = "bad configuration"
		if x.Err != nil {
			msg := x.Err.Error()
			if len(msg) > maxStateError {
				msg = strings.ToValidUTF8(msg[:maxStateError], "") + "..."
			}
			s += ": " + msg
		}
	case ReasonTraffic:
		s = "traffic above activation " + number(x.Activation)
	case ReasonKeepAwake:
		s = "keep-awake window " + strconv.Quote(x.Window)
	case ReasonLearnedHours:
		s = "learned keep-awake hours " + x.Window
	case ReasonPreWake:
		s = "pre-wake before the expected activity"
	case ReasonMinUptime:
		s = "min uptime " + FormatDuration(x.MinUptime) + " after waking at " + x.WokeAt.UTC().Truncate(time.Second).Format(time.RFC3339)
	case ReasonRecent:
		s = "activity within idle-after " + FormatDuration(x.IdleAfter)
	case ReasonIdle:
		s = "no activity within idle-after " + FormatDuration(x.IdleAfter)
	default:
		s = d.Text()
	}
	if x.Learned != nil && d.Known() {
		s += " (" + x.Learned.Summary() + ")"
	}
	switch {
	case !d.Known():
		return "unknown: " + s
	case d.Active:
		return "active: " + s
	}
	return "idle: " + s
}
