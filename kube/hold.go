package kube

import (
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/ebbscale/ebb/queries"
)

// Annotations of the activator on a Deployment or StatefulSet.
const (
	// AnnotationHoldRequests: "true" puts the activator in front of the
	// workload's Services while it is idle.
	AnnotationHoldRequests = "ebb.dev/hold-requests"
	// AnnotationHoldTimeout is how long the activator holds a request for
	// the workload, e.g. "10m"; the activator's default when unset or bad.
	AnnotationHoldTimeout = "ebb.dev/hold-timeout"
)

// MaxHoldTimeout is the longest ebb.dev/hold-timeout ebb accepts.
const MaxHoldTimeout = time.Hour

// Hold is what an opted-in workload tells the activator.
type Hold struct {
	// Labels are the workload's pod template labels; its Services are the
	// ones whose selector matches them. Shared, must not be modified.
	Labels map[string]string
	// Timeout is ebb.dev/hold-timeout; zero when unset or bad.
	Timeout time.Duration
	// Invalid says why ebb.dev/hold-timeout was not used, if it was set
	// and bad.
	Invalid error
}

func (h Hold) equal(o Hold) bool {
	return h.Timeout == o.Timeout && maps.Equal(h.Labels, o.Labels) && errorText(h.Invalid) == errorText(o.Invalid)
}

func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// HoldChangeFunc is called with a workload's Hold whenever it may have
// changed; ok is false when the workload no longer holds requests (it opted
// out or is gone).
type HoldChangeFunc func(key queries.WorkloadKey, h Hold, ok bool)

// holdsRequests reports whether ebb.dev/hold-requests opts the workload in.
func holdsRequests(annotations map[string]string) bool {
	return strings.EqualFold(strings.TrimSpace(annotations[AnnotationHoldRequests]), "true")
}

// parseHold reads an opted-in workload's Hold from its ebb.dev/
// annotations and pod template labels.
func parseHold(annotations, labels map[string]string) Hold {
	h := Hold{Labels: labels}
	raw, ok := annotations[AnnotationHoldTimeout]
	if !ok {
		return h
	}
	v := strings.TrimSpace(raw)
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		h.Invalid = fmt.Errorf("%s: %q is not a duration like 5m", AnnotationHoldTimeout, raw)
	case d <= 0 || d > MaxHoldTimeout:
		h.Invalid = fmt.Errorf("%s: %s must be > 0 and <= %s", AnnotationHoldTimeout, d, MaxHoldTimeout)
	default:
		h.Timeout = d
	}
	return h
}
