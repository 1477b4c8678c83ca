//go:build !linux

package redisha

import "os/exec"

func setPdeathsig(*exec.Cmd) {}
