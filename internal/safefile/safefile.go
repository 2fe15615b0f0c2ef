// Package safefile writes files so that nothing is lost: atomically, private, and
// with the previous content kept when it changes.
package safefile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// Write writes data to path atomically with mode 0600. An existing file with
// other content is kept as path.bak first. changed says whether the file changed.
func Write(path string, data []byte) (changed bool, err error) {
	// Reading or chmodding through a link would reach the file it points at
	// (/etc/hosts, /dev/zero): only a regular file is vm2mesh's to replace.
	if st, err := os.Lstat(path); err == nil && !st.Mode().IsRegular() {
		return false, fmt.Errorf("%s is not a regular file (%s): vm2mesh replaces only files it wrote; remove it and run again", path, st.Mode().Type())
	}
	old, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(old, data):
		return false, os.Chmod(path, 0o600)
	case err == nil:
		if err := writeAtomic(path+".bak", old); err != nil {
			return false, fmt.Errorf("backing up %s: %w", path, err)
		}
	case !os.IsNotExist(err):
		return false, err
	}
	return true, writeAtomic(path, data)
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Replace writes data to path atomically with mode 0600 and keeps no backup: for
// vm2mesh's own bookkeeping, which nobody edits.
func Replace(path string, data []byte) error { return writeAtomic(path, data) }
