package steps

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vm2mesh/vm2mesh/vmconfig"
)

// systemDirs are never a work directory: vm2mesh writes a file named hosts
// there and makes the directory 0700, which would break any of them.
var systemDirs = []string{
	"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media", "/mnt",
	"/opt", "/proc", "/root", "/run", "/sbin", "/snap", "/srv", "/sys", "/tmp", "/usr", "/var",
	"/usr/bin", "/usr/include", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libexec", "/usr/local",
	"/usr/local/bin", "/usr/local/etc", "/usr/local/lib", "/usr/local/sbin", "/usr/local/share", "/usr/sbin",
	"/usr/share", "/usr/src", "/var/backups", "/var/cache", "/var/lib", "/var/local", "/var/lock", "/var/log",
	"/var/mail", "/var/opt", "/var/run", "/var/spool", "/var/tmp", "/var/www",
}

// pseudoFS are trees of kernel and device files, where nothing of vm2mesh's belongs.
var pseudoFS = []string{"/dev", "/proc", "/sys"}

// ownFiles are the names vm2mesh writes into a work directory: the VM's five
// files, the manifests of the steps, the dry run's plan and the saved progress;
// answers.yaml is where the README's examples keep the answers.
var ownFiles = append(slices.Clone(vmconfig.FileNames),
	"vm-cluster.yaml", "eastwest.yaml", "eastwest-gateway.yaml", "expose-istiod.yaml", "cross-network.yaml", "workloadgroup.yaml",
	"plan.sh", ".vm2mesh-state.json", "answers.yaml")

// ownFile says whether name is one of vm2mesh's files, a backup of one (NAME.bak)
// or the temp file of an interrupted atomic write (.NAME.tmp-*).
func ownFile(name string) bool {
	base := strings.TrimSuffix(name, ".bak")
	if t, _, ok := strings.Cut(strings.TrimPrefix(name, "."), ".tmp-"); ok && strings.HasPrefix(name, ".") {
		base = strings.TrimSuffix(t, ".bak")
	}
	return slices.Contains(ownFiles, base)
}

// WorkDir is a directory vm2mesh may write into, as CheckWorkDir found it.
type WorkDir struct {
	Key  string // how the operator named it: workDir, or -o
	Path string // absolute
	// loose is the mode of an existing directory that lets group or others in.
	loose fs.FileMode
}

// CheckWorkDir checks, before anything is written, that dir may hold vm2mesh's
// files: not a system directory, the home directory or one of its parents; a
// directory (or nothing yet, under a parent that can be written); owned by this
// user; and empty, or holding only vm2mesh's own files, unless allowExisting. key
// names the setting in errors, force how to allow a foreign directory.
func CheckWorkDir(key, dir string, allowExisting bool, force string) (WorkDir, error) {
	fail := func(format string, args ...any) (WorkDir, error) {
		return WorkDir{}, FieldError{Key: key, Problem: fmt.Sprintf(format, args...)}
	}
	if dir == "" {
		return fail("must not be empty; give a directory for the VM's files")
	}
	if p := unprintable(dir); p != "" {
		return fail("%s; retype the directory", p)
	}
	abs, err := filepath.Abs(expandHome(dir))
	if err != nil {
		return fail("%v; give an absolute directory", err)
	}
	resolved, existing, err := resolveExisting(abs)
	if err != nil {
		return fail("%v; give another directory", err)
	}
	const pick = "give a directory of its own for the VM's files, such as ./vmintegration"
	for _, p := range []string{abs, resolved} {
		if sys := systemDir(p); sys != "" {
			return fail("%s is %s; vm2mesh would write its files (one named hosts) there and make it 0700: %s", dir, sys, pick)
		}
	}
	if resolved != existing { // the directory is yet to be made
		st, err := os.Stat(existing)
		if err != nil {
			return fail("%v; %s", err, pick)
		}
		if !st.IsDir() {
			return fail("%s is %s, not a directory, so %s cannot be made; %s", existing, FileKind(st.Mode()), dir, pick)
		}
		if !writable(existing) {
			return fail("%s cannot be made: %s is not writable by you; %s", dir, existing, pick)
		}
		return WorkDir{Key: key, Path: abs}, nil
	}
	st, err := os.Stat(resolved)
	if err != nil {
		return fail("%v; %s", err, pick)
	}
	if !st.IsDir() {
		return fail("%s is %s, not a directory; %s", dir, FileKind(st.Mode()), pick)
	}
	if uid, ok := ownerUID(st); ok && uid != os.Getuid() && !allowExisting {
		return fail("%s belongs to uid %d, not to you (uid %d): its owner could read the token or swap the files; %s, or %s", dir, uid, os.Getuid(), pick, force)
	}
	foreign, links, err := foreignEntries(resolved)
	if err != nil {
		return fail("reading %s: %v; %s", dir, err, pick)
	}
	if len(links) > 0 {
		return fail("%s holds %s, which vm2mesh writes as regular files only; remove %s or %s", dir, strings.Join(links, ", "), plural(len(links), "it", "them"), pick)
	}
	if len(foreign) > 0 && !allowExisting {
		return fail("%s already holds files vm2mesh did not write (%s); %s, or %s", dir, strings.Join(foreign, ", "), pick, force)
	}
	w := WorkDir{Key: key, Path: abs}
	if st.Mode().Perm()&0o077 != 0 {
		w.loose = st.Mode().Perm()
	}
	return w, nil
}

// Tighten makes an existing work directory that lets group or others in 0700:
// it holds a token. warning says what it did ("" when there was nothing to do).
func (w WorkDir) Tighten() (warning string, err error) {
	if w.loose == 0 {
		return "", nil
	}
	if err := os.Chmod(w.Path, 0o700); err != nil {
		return "", fmt.Errorf("%s: %s is mode %04o, open to group or others, and cannot be made 0700: %w; chmod 700 it yourself", w.Key, w.Path, w.loose, err)
	}
	return fmt.Sprintf("%s %s was mode %04o, open to group or others; it holds a token, so vm2mesh made it 0700", w.Key, w.Path, w.loose), nil
}

// resolveExisting resolves the symbolic links of the longest existing part of
// abs and joins the rest to it; existing is that part, resolved.
func resolveExisting(abs string) (resolved, existing string, err error) {
	part, rest := abs, ""
	for {
		if _, err := os.Lstat(part); err == nil {
			break
		}
		parent := filepath.Dir(part)
		if parent == part {
			break
		}
		rest = filepath.Join(filepath.Base(part), rest)
		part = parent
	}
	real, err := filepath.EvalSymlinks(part)
	if err != nil {
		return "", "", err
	}
	return filepath.Join(real, rest), real, nil
}

// systemDir says which protected directory p is, or "".
func systemDir(p string) string {
	p = filepath.Clean(p)
	for _, d := range pseudoFS {
		if p == d || strings.HasPrefix(p, d+"/") {
			return "under " + d + ", kernel and device files"
		}
	}
	if slices.Contains(systemDirs, p) {
		return "a system directory"
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" {
		home = filepath.Clean(home)
		if real, err := filepath.EvalSymlinks(home); err == nil {
			home = real
		}
		if p == home {
			return "your home directory"
		}
		if strings.HasPrefix(home, p+"/") || p == "/" {
			return "a parent of your home directory"
		}
	}
	return ""
}

// maxEntries bounds the listing: a work directory holds a few dozen files, a
// directory with more is someone else's anyway.
const maxEntries = 1000

// holdsFleetState says whether a fleet's vms/ or groups/ directory holds a
// VM's or group's saved progress: a folder of that name alone is anyone's.
func holdsFleetState(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	entries, _ := f.ReadDir(maxEntries)
	for _, e := range entries {
		if st, err := os.Lstat(StatePath(filepath.Join(dir, e.Name()))); e.IsDir() && err == nil && st.Mode().IsRegular() {
			return true
		}
	}
	return false
}

// foreignEntries lists (up to three of) the names in dir that are not vm2mesh's,
// none when dir holds the saved progress; links are vm2mesh's names that are
// not regular files, which it would refuse to replace.
func foreignEntries(dir string) (foreign, links []string, err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	entries, err := f.ReadDir(maxEntries)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, err
	}
	more := len(entries) == maxEntries
	state := false
	var others []string
	for _, e := range entries {
		name := e.Name()
		if (name == FleetVMsDir || name == FleetGroupsDir) && e.IsDir() {
			if holdsFleetState(filepath.Join(dir, name)) {
				state = true // a fleet's: vm2mesh made this directory
			}
			continue
		}
		if !ownFile(name) {
			others = append(others, name)
			continue
		}
		if !e.Type().IsRegular() {
			links = append(links, name+" ("+FileKind(e.Type())+")")
		} else if name == filepath.Base(StatePath(dir)) {
			state = true
		}
	}
	if state { // vm2mesh made this directory: what else is there is the operator's
		return nil, links, nil
	}
	slices.Sort(others)
	if len(others) > 3 || more {
		others = append(others[:min(3, len(others))], "...")
	}
	return others, links, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// IsSystemDir says whether dir (absolute, resolved) is one of the system's
// directories, or under /dev, /proc or /sys, where vm2mesh writes nothing.
func IsSystemDir(dir string) bool {
	p := filepath.Clean(dir)
	for _, d := range pseudoFS {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return slices.Contains(systemDirs, p)
}
