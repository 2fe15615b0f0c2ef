//go:build !linux

package remote

import "syscall"

// proxySysProcAttr: a process group of its own (Close kills the group).
func proxySysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
