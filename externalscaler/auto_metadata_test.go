package externalscaler

import (
	"testing"

	"github.com/ebbscale/ebb/shutdown"
)

func TestParseTriggerIdleAfterAuto(t *testing.T) {
	for _, raw := range []string{"auto", "Auto"} {
		got, err := ParseTrigger("report", "batch", map[string]string{"signal": "requests", "target": "1", "idleAfter": raw}, ParseOptions{})
		if err != nil || got.IdleAfter != shutdown.AutoIdleAfter {
			t.Errorf("idleAfter %q: %v, %v; want shutdown.AutoIdleAfter", raw, got.IdleAfter, err)
		}
	}
	_, err := ParseTrigger("report", "batch", map[string]string{"signal": "requests", "target": "1", "idleAfter": "automatic"}, ParseOptions{})
	if want := `metadata idleAfter: "automatic" is not a duration in (0s, 720h] such as 15m`; err == nil || err.Error() != want {
		t.Errorf("idleAfter automatic: %v, want %q", err, want)
	}
}
