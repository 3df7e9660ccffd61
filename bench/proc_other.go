//go:build !linux

package bench

import (
	"errors"
	"os/exec"
	"time"
)

// ProcStats is what /proc says about a process at one moment.
type ProcStats struct {
	CPU time.Duration
	RSS int64
	HWM int64
}

// ReadProc needs Linux's /proc.
func ReadProc(int) (ProcStats, error) {
	return ProcStats{}, errors.New("process statistics need Linux /proc")
}

// SelfCPU needs Linux.
func SelfCPU() time.Duration { return 0 }

func dieWithParent(*exec.Cmd) {}
