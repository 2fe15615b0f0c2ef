//go:build !linux && !windows

package remote

import (
	"os"
	"syscall"
)

// proxySysProcAttr: a process group of its own (Close kills the group).
func proxySysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// killProxy kills the command's process group.
func killProxy(p *os.Process) {
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
}
