package externalscaler

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/ebbscale/ebb/queries"
	"github.com/ebbscale/ebb/queries/enforce"
	"github.com/ebbscale/ebb/shutdown"
)

// Metadata keys ebb reads from a ScaledObject trigger.
const (
	KeySignal     = "signal"
	KeyTarget     = "target"
	KeyActivation = "activation"
	KeyWindow     = "window"
	KeyWorkload   = "workload"
	KeyQuery      = "query"
	KeyIdleAfter  = "idleAfter"
)

// kedaKeys are KEDA's own keys for external scalers, passed through to us.
var kedaKeys = map[string]bool{"scalerAddress": true, "enableTLS": true, "unsafeSsl": true}

var ebbKeys = map[string]bool{
	KeySignal: true, KeyTarget: true, KeyActivation: true, KeyWindow: true,
	KeyWorkload: true, KeyQuery: true, KeyIdleAfter: true,
}

// Bounds on metadata values.
const (
	MinWindow = 10 * time.Second
	MaxWindow = time.Hour
)

// Trigger is a ScaledObject trigger's metadata, parsed and validated.
type Trigger struct {
	Workload   queries.WorkloadKey
	Shape      queries.Shape
	Target     float64
	Activation float64
	// IdleAfter is the trigger's own idle period; zero means the server's
	// default.
	IdleAfter time.Duration
}

// MetricName is the name ebb gives the trigger's metric in GetMetricSpec.
// KEDA prefixes it with the trigger index.
func (t Trigger) MetricName() string {
	return "ebb-" + string(t.Shape.Signal) + "-" + t.Workload.Name
}

// MetadataError names the metadata key that is wrong and why.
type MetadataError struct {
	Key string
	Msg string
}

func (e *MetadataError) Error() string {
	if e.Key == "" {
		return e.Msg
	}
	return "metadata " + e.Key + ": " + e.Msg
}

// ParseOptions are the server-wide settings metadata parsing depends on.
type ParseOptions struct {
	DefaultWindow time.Duration // default 1m
	Enforce       enforce.Options
}

// ParseTrigger parses the metadata KEDA sends for a ScaledObject (its name,
// its namespace and the trigger's metadata). Every problem is a
// *MetadataError naming the key.
func ParseTrigger(name, namespace string, md map[string]string, opts ParseOptions) (Trigger, error) {
	var t Trigger
	if len(validation.IsDNS1123Label(namespace)) > 0 {
		return t, &MetadataError{Msg: fmt.Sprintf("scaledObjectRef namespace %q is not a Kubernetes namespace name", namespace)}
	}
	if name == "" {
		return t, &MetadataError{Msg: "scaledObjectRef name is empty"}
	}
	if err := unknownKeys(md); err != nil {
		return t, err
	}

	sig, ok := md[KeySignal]
	if !ok {
		return t, &MetadataError{KeySignal, "missing, want requests, gpu or query"}
	}
	signal, err := queries.ParseSignal(sig)
	if err != nil {
		return t, &MetadataError{KeySignal, err.Error()}
	}
	t.Shape.Signal = signal

	workload := name
	if w, ok := md[KeyWorkload]; ok {
		workload = w
	}
	if len(validation.IsDNS1123Subdomain(workload)) > 0 {
		return t, &MetadataError{KeyWorkload, fmt.Sprintf("%q is not a Kubernetes object name", workload)}
	}
	t.Workload = queries.WorkloadKey{Namespace: namespace, Name: workload}

	raw, ok := md[KeyTarget]
	if !ok {
		return t, &MetadataError{KeyTarget, "missing, want a number > 0"}
	}
	if t.Target, err = parseNumber(raw); err != nil || t.Target <= 0 {
		return t, &MetadataError{KeyTarget, fmt.Sprintf("%q is not a number > 0", raw)}
	}
	if raw, ok := md[KeyActivation]; ok {
		if t.Activation, err = parseNumber(raw); err != nil || t.Activation < 0 {
			return t, &MetadataError{KeyActivation, fmt.Sprintf("%q is not a number >= 0", raw)}
		}
	}
	if raw, ok := md[KeyIdleAfter]; ok {
		d, err := time.ParseDuration(raw)
		if err != nil || d <= 0 || d > shutdown.MaxIdleAfter {
			return t, &MetadataError{KeyIdleAfter, fmt.Sprintf("%q is not a duration in (0s, %s] such as 15m", raw, shutdown.FormatDuration(shutdown.MaxIdleAfter))}
		}
		t.IdleAfter = d
	}

	raw, hasWindow := md[KeyWindow]
	expr, hasQuery := md[KeyQuery]
	switch signal {
	case queries.SignalQuery:
		if !hasQuery {
			return t, &MetadataError{KeyQuery, "missing, signal query needs a PromQL expression"}
		}
		if hasWindow {
			return t, &MetadataError{KeyWindow, "not used with signal query: put the range in the query"}
		}
		enforced, err := enforce.Namespace(expr, namespace, opts.Enforce)
		if err != nil {
			return t, &MetadataError{KeyQuery, strings.TrimPrefix(err.Error(), "query: ")}
		}
		t.Shape.Expr = enforced
	default:
		if hasQuery {
			return t, &MetadataError{KeyQuery, "only used with signal query"}
		}
		t.Shape.Window = opts.DefaultWindow
		if t.Shape.Window == 0 {
			t.Shape.Window = time.Minute
		}
		if hasWindow {
			d, err := time.ParseDuration(raw)
			if err != nil {
				return t, &MetadataError{KeyWindow, fmt.Sprintf("%q is not a duration such as 1m", raw)}
			}
			if d < MinWindow || d > MaxWindow || d%time.Second != 0 {
				return t, &MetadataError{KeyWindow, fmt.Sprintf("%s, must be whole seconds in [%s, %s]", d, MinWindow, "1h")}
			}
			t.Shape.Window = d
		}
	}
	return t, nil
}

func unknownKeys(md map[string]string) error {
	var unknown []string
	for k := range md {
		if !ebbKeys[k] && !kedaKeys[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return &MetadataError{unknown[0], fmt.Sprintf("unknown key (known: activation, idleAfter, query, signal, target, window, workload); unknown keys: %s", strings.Join(unknown, ", "))}
}

func parseNumber(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("not finite")
	}
	return v, nil
}
