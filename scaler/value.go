package scaler

import (
	"errors"
	"fmt"
	"time"
)

// ErrNoValue reports that no value has been observed yet for an interest.
var ErrNoValue = errors.New("no value observed yet")

// StaleError reports a value older than the allowed staleness.
type StaleError struct {
	Age, Max time.Duration
	// Cause is the last query error, if the last query failed.
	Cause error
}

func (e *StaleError) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("value is %s old (max staleness %s): %v", e.Age.Round(time.Second), e.Max, e.Cause)
	}
	return fmt.Sprintf("value is %s old (max staleness %s)", e.Age.Round(time.Second), e.Max)
}

func (e *StaleError) Unwrap() error { return e.Cause }

// value returns the observation's value for KEDA's GetMetrics, or an error
// when there is none or it is older than maxStaleness, so that KEDA's
// fallback applies instead of a wrong number.
func value(o *Observation, now time.Time, maxStaleness time.Duration) (float64, error) {
	if !o.Known() {
		if o.Err != nil {
			return 0, fmt.Errorf("%w: %v", ErrNoValue, o.Err)
		}
		return 0, ErrNoValue
	}
	if age := o.Age(now); age > maxStaleness {
		return 0, &StaleError{Age: age, Max: maxStaleness, Cause: o.Err}
	}
	return o.Value, nil
}
