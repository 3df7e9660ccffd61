package controlplane

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill the process if the test binary dies
// before it could stop it, so no server outlives its test run.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
