//go:build unix && !linux

package quickstart

import "syscall"

// sysProcAttr starts a detached process in its own session, so it outlives
// this program. Without Linux's parent-death signal, non-detached
// processes rely on Stack.Down and the reaper (StartReaper).
func sysProcAttr(detach bool) *syscall.SysProcAttr {
	if detach {
		return &syscall.SysProcAttr{Setsid: true}
	}
	return &syscall.SysProcAttr{Setpgid: true}
}
