package scaler

import "math"

// HPA is the part of the Kubernetes HorizontalPodAutoscaler's algorithm that
// KEDA relies on for an AverageValue external metric, plus KEDA's own
// activation step to and from zero. ebb demo plays KEDA and the HPA with it.
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
