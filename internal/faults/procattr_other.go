//go:build !linux

package faults

import "os/exec"

func setPdeathsig(*exec.Cmd) {}
