package faults

import (
	"os/exec"
	"syscall"
)

// setPdeathsig makes the kernel kill the child when the test binary dies, so
// an interrupted run leaves no worker, fake or redis-server behind.
func setPdeathsig(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
