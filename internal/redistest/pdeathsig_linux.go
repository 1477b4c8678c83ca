package redistest

import (
	"os/exec"
	"syscall"
)

// setPdeathsig makes the kernel kill the child when the test binary exits, so a
// crashed or interrupted test run leaves no redis-server behind.
func setPdeathsig(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
