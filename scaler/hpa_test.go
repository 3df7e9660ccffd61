package scaler

import "testing"

func TestHPADesired(t *testing.T) {
	t.Parallel()
	h := HPA{Target: 10, MinReplicas: 0, MaxReplicas: 8, Tolerance: 0.1}
	tests := []struct {
		name    string
		h       HPA
		value   float64
		active  bool
		current int
		want    int
	}{
		{"inactive scales to min (zero)", h, 0, false, 3, 0},
		{"inactive with min 2", HPA{Target: 10, MinReplicas: 2, MaxReplicas: 8, Tolerance: 0.1}, 0, false, 3, 2},
		{"activation from zero goes to one", h, 55, true, 0, 1},
		{"ceil(value/target)", h, 55, true, 1, 6},
		{"within tolerance keeps current", h, 31, true, 3, 3},
		{"just outside tolerance", h, 34, true, 3, 4},
		{"scale down", h, 12, true, 5, 2},
		{"capped at max", h, 500, true, 4, 8},
		{"active with no load keeps one", h, 0, true, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.h.Desired(tt.value, tt.active, tt.current); got != tt.want {
				t.Errorf("Desired(%v, %v, %d) = %d, want %d", tt.value, tt.active, tt.current, got, tt.want)
			}
		})
	}
}

// TestSnapshotValueAndActive checks the lookups KEDA's calls use against
// the observation Lookup copies out.
