//go:build !linux

package redistest

import "os/exec"

func setPdeathsig(cmd *exec.Cmd) {}
