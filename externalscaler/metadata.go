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
	// MaxValueLen bounds every metadata value but a query, in bytes.
	MaxValueLen = 256
	// MaxQueryLen bounds the query key's value, in bytes, unless
	// ParseOptions.Enforce.MaxLength sets another bound.
	MaxQueryLen = enforce.DefaultMaxLength
	// MaxNameLen bounds the ScaledObject's name, as Kubernetes does.
	MaxNameLen = 253
	// maxListedKeys bounds how many unknown keys an error lists.
	maxListedKeys = 5
)

// maxLen is the most bytes key k's value may hold.
func maxLen(k string, opts ParseOptions) int {
	switch {
	case k != "query":
		return MaxValueLen
	case opts.Enforce.MaxLength > 0:
		return opts.Enforce.MaxLength
	}
	return MaxQueryLen
}

// LimitsText is the README's sentence on the size limits of metadata.
func LimitsText() string {
	return fmt.Sprintf("A metadata value may hold at most %d bytes, a `query` at most %d, and a ScaledObject's name at most %d; a longer one is answered `InvalidArgument` naming the key and the limit, e.g. `metadata target: %d bytes, longer than the limit of %d`.",
		MaxValueLen, MaxQueryLen, MaxNameLen, MaxValueLen+1, MaxValueLen)
}

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
	if len(name) > MaxNameLen {
		return p.t, &MetadataError{Msg: fmt.Sprintf("scaledObjectRef name is %d bytes, longer than the limit of %d", len(name), MaxNameLen)}
	}
	if err := unknownKeys(md); err != nil {
		return p.t, err
	}
	for _, k := range triggerKeys {
		raw, ok := md[k.Name]
		if n := maxLen(k.Name, opts); len(raw) > n {
			return p.t, &MetadataError{k.Name, fmt.Sprintf("%d bytes, longer than the limit of %d", len(raw), n)}
		}
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
	for i, k := range unknown {
		if len(k) > MaxValueLen {
			unknown[i] = k[:MaxValueLen] + "..."
		}
	}
	listed := strings.Join(unknown[:min(len(unknown), maxListedKeys)], ", ")
	if len(unknown) > maxListedKeys {
		listed += fmt.Sprintf(" and %d more", len(unknown)-maxListedKeys)
	}
	return &MetadataError{unknown[0], fmt.Sprintf("unknown key (known: %s); unknown keys: %s", strings.Join(knownKeys, ", "), listed)}
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
