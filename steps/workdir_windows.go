//go:build windows

package steps

import "os"

// writable: Windows has no access(2); making the directory says it instead.
func writable(string) bool { return true }

// ownerUID: Windows files have owners by SID, not uid; ACLs guard workDir there.
func ownerUID(os.FileInfo) (int, bool) { return 0, false }
