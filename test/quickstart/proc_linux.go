package quickstart

import "syscall"

// sysProcAttr starts a detached process in its own session, so it outlives
// this program; otherwise the kernel kills it when this program dies, so a
// test binary killed by a timeout leaves no manager or simulator behind.
func sysProcAttr(detach bool) *syscall.SysProcAttr {
	if detach {
		return &syscall.SysProcAttr{Setsid: true}
	}
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
