package redisha

import (
	"os/exec"
	"syscall"
)

// setPdeathsig makes the kernel kill the child when the test binary exits, so
// an interrupted run leaves no redis-server behind.
func setPdeathsig(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
