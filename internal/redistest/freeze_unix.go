//go:build unix

package redistest

import "syscall"

// Freeze stops the process with SIGSTOP (by its PID): it keeps its sockets
// and answers nothing until Thaw, as a Redis stuck on a slow disk or a
// paused VM does.
func (s *Server) Freeze() error { return syscall.Kill(s.Pid(), syscall.SIGSTOP) }

// Thaw resumes a frozen process with SIGCONT.
func (s *Server) Thaw() error { return syscall.Kill(s.Pid(), syscall.SIGCONT) }
