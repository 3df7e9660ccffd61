package scaler

import (
	"errors"
	"fmt"
	"math"
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

// HPA is the part of the Kubernetes HorizontalPodAutoscaler's algorithm that
// KEDA relies on for an AverageValue external metric, plus KEDA's own
// activation step to and from zero.
type HPA struct {
	Target      float64
	MinReplicas int // KEDA's minReplicaCount; 0 allows scale to zero
	MaxReplicas int
	// Tolerance is the HPA's: no change while value/(target*current) is
	// within 1±Tolerance. Kubernetes' default is 0.1.
	Tolerance float64
}

// Desired returns the replica count the HPA and KEDA would set, given the
// metric value, whether the scaler is active, and the current replicas.
func (h HPA) Desired(value float64, active bool, current int) int {
	if !active {
		// KEDA scales to minReplicaCount (possibly zero) when inactive.
		return h.MinReplicas
	}
	if current == 0 {
		// KEDA activates the workload to max(1, minReplicaCount), then the
		// HPA takes over.
		return max(1, h.MinReplicas)
	}
	ratio := value / (h.Target * float64(current))
	desired := current
	if math.Abs(ratio-1) > h.Tolerance {
		desired = int(math.Ceil(value / h.Target))
	}
	return min(max(desired, h.MinReplicas, 1), h.MaxReplicas)
}
