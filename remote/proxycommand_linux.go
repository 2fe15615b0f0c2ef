package remote

import (
	"os"
	"syscall"
)

// proxySysProcAttr: a process group of its own (Close kills the group), and
// killed with vm2mesh should vm2mesh die first.
func proxySysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killProxy kills the command's process group.
func killProxy(p *os.Process) {
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
}
