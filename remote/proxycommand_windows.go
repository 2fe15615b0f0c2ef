package remote

import (
	"os"
	"syscall"
)

// proxySysProcAttr: Windows has no process groups to signal; Close kills the
// command itself.
func proxySysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{}
}

// killProxy kills the command (what it started may outlive it on Windows).
func killProxy(p *os.Process) {
	_ = p.Kill()
}
