//go:build !linux

package redistest

import "os/exec"

// KillWithParent does nothing outside Linux: there is no portable way to make
// a child die with its parent; test cleanups kill it instead.
func KillWithParent(cmd *exec.Cmd) {}
