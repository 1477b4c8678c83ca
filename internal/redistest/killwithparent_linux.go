package redistest

import (
	"os/exec"
	"syscall"
)

// KillWithParent makes the kernel SIGKILL the child when the test binary
// exits, so a crashed or interrupted test run leaves no redis-server (or
// other helper process) behind. Every process a test starts should use it;
// it is here so that there is one place that knows how.
func KillWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
