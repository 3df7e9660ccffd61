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
)

// kedaKeys are KEDA's own keys for external scalers, passed through to us.
var kedaKeys = map[string]bool{"scalerAddress": true, "enableTLS": true, "unsafeSsl": true}

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
// its namespace and the trigger's metadata): each key of TriggerKeys in
// turn, present or not. Every problem is a *MetadataError naming the key.
func ParseTrigger(name, namespace string, md map[string]string, opts ParseOptions) (Trigger, error) {
	p := triggerParser{md: md, name: name, namespace: namespace, opts: opts}
	if len(validation.IsDNS1123Label(namespace)) > 0 {
		return p.t, &MetadataError{Msg: fmt.Sprintf("scaledObjectRef namespace %q is not a Kubernetes namespace name", namespace)}
	}
	if name == "" {
		return p.t, &MetadataError{Msg: "scaledObjectRef name is empty"}
	}
	if err := unknownKeys(md); err != nil {
		return p.t, err
	}
	for _, k := range triggerKeys {
		raw, ok := md[k.Name]
		if err := k.parse(&p, raw, ok); err != nil {
			return p.t, &MetadataError{k.Name, err.Error()}
		}
	}
	return p.t, nil
}

func unknownKeys(md map[string]string) error {
	var unknown []string
	for k := range md {
		if _, ok := keyIndex[k]; !ok && !kedaKeys[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return &MetadataError{unknown[0], fmt.Sprintf("unknown key (known: %s); unknown keys: %s", strings.Join(knownKeys, ", "), strings.Join(unknown, ", "))}
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
