//go:build !linux

package reliability

import "syscall"

// sysProcAttr puts a restarted manager in its own process group; outside
// Linux nothing kills it should this test process die, but the Stack's
// reaper does (it reads manager.pid).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
