package reliability

import "syscall"

// sysProcAttr puts a restarted manager in its own process group and has the
// kernel kill it when this test process dies, so a test killed by its
// timeout leaves no manager behind (as test/quickstart does for the
// processes it starts).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
