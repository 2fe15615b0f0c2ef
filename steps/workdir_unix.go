//go:build unix

package steps

import (
	"os"
	"syscall"
)

// writable says whether the user may make entries in the directory dir.
func writable(dir string) bool { return syscall.Access(dir, 2 /* W_OK */) == nil }

// ownerUID is the uid owning the file st describes.
func ownerUID(st os.FileInfo) (int, bool) {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(sys.Uid), true
}
