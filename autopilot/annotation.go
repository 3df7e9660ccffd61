package autopilot

import (
	"encoding/json"
	"time"
)

// AnnotationKey is the annotation `ebb recommend --annotate` writes on a
// Deployment or StatefulSet.
const AnnotationKey = "ebb.dev/recommendation"

// Annotation is the compact recommendation written as AnnotationKey's JSON
// value: Kubernetes quantities per container, and the scaling, autoshutdown
// and GPU recommendations when there are any.
type Annotation struct {
	Schema      string                         `json:"schema"`
	GeneratedAt time.Time                      `json:"generatedAt"`
	Severity    Severity                       `json:"severity"`
	Containers  map[string]ContainerAnnotation `json:"containers,omitempty"`
	MinReplicas *int                           `json:"minReplicas,omitempty"`
	MaxReplicas *int                           `json:"maxReplicas,omitempty"`
	TargetRPS   float64                        `json:"targetRPS,omitempty"`
	IdleAfter   string                         `json:"idleAfter,omitempty"`
	GPU         string                         `json:"gpu,omitempty"`
}

// ContainerAnnotation holds one container's recommended quantities; a
// resource without enough data is left out.
type ContainerAnnotation struct {
	CPURequest    string `json:"cpuRequest,omitempty"`
	CPULimit      string `json:"cpuLimit,omitempty"`
	MemoryRequest string `json:"memoryRequest,omitempty"`
	MemoryLimit   string `json:"memoryLimit,omitempty"`
}

// Annotation returns the annotation of w for a report generated at at.
func (w WorkloadReport) Annotation(at time.Time) Annotation {
	a := Annotation{Schema: SchemaVersion, GeneratedAt: at.UTC(), Severity: w.Severity}
	for _, c := range w.Containers {
		var ca ContainerAnnotation
		if c.CPU.NotEnoughData == "" && c.CPU.Request > 0 {
			ca.CPURequest = FormatCPU(c.CPU.Request)
			if c.CPU.Limit > 0 {
				ca.CPULimit = FormatCPU(c.CPU.Limit)
			}
		}
		if c.Memory.NotEnoughData == "" && c.Memory.Request > 0 {
			ca.MemoryRequest = FormatMemory(c.Memory.Request)
			if c.Memory.Limit > 0 {
				ca.MemoryLimit = FormatMemory(c.Memory.Limit)
			}
		}
		if ca != (ContainerAnnotation{}) {
			if a.Containers == nil {
				a.Containers = map[string]ContainerAnnotation{}
			}
			a.Containers[c.Name] = ca
		}
	}
	if s := w.Scaling; s != nil && s.NotEnoughData == "" {
		a.MinReplicas, a.MaxReplicas, a.TargetRPS = &s.MinReplicas, &s.MaxReplicas, s.TargetRPS
	}
	if s := w.Autoshutdown; s != nil && s.Recommended {
		a.IdleAfter = s.IdleAfter
	}
	if g := w.GPU; g != nil && g.Action != GPUNotEnough && g.Action != GPUKeep {
		a.GPU = g.Recommended
	}
	return a
}

// Annotations returns the annotations that set w's recommendation: one,
// AnnotationKey, whose value is the JSON of w.Annotation(at).
func (w WorkloadReport) Annotations(at time.Time) (map[string]string, error) {
	v, err := json.Marshal(w.Annotation(at))
	if err != nil {
		return nil, err
	}
	return map[string]string{AnnotationKey: string(v)}, nil
}
