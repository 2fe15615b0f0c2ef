package steps

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/vm2mesh/vm2mesh/k8s"
	"github.com/vm2mesh/vm2mesh/vmconfig"
)

// Local is what the checks of this machine found, before anything is contacted.
type Local struct {
	WorkDir WorkDir
}

// ForceWorkDir is how to let workDir be a directory vm2mesh did not make.
const ForceWorkDir = "set allowExistingWorkDir: true in the answers file to use it anyway"

// CheckLocal checks everything a run needs from this machine before it contacts
// the cluster or the VM: the settings, --only, workDir, and the files the
// settings name (kubeconfig and its context, istioctl; for the VM half its key,
// password files, ssh_config, known_hosts and package, and with --only vm the five
// files). It reads files and changes nothing. Every problem names its key.
func CheckLocal(s Settings, o k8s.Options, only string) (*Local, error) {
	return checkLocal(s, o, only, true)
}

// CheckStart is CheckLocal for the wizard's start: the VM's host and package
// may still be filled in on its pages, so only what is set is checked.
func CheckStart(s Settings, o k8s.Options, only string) (*Local, error) {
	return checkLocal(s, o, only, false)
}

func checkLocal(s Settings, o k8s.Options, only string, complete bool) (*Local, error) {
	if err := CheckOnly(only); err != nil {
		return nil, err
	}
	errs := s.Validate()
	cluster, vm := Halves(s, only)
	if vm && complete {
		errs = append(errs, s.ValidateVM()...)
	}
	if len(errs) > 0 { // files named by invalid values are not worth looking at
		return nil, ValidationError(errs)
	}
	add := func(key, format string, args ...any) {
		errs = append(errs, FieldError{Key: key, Problem: fmt.Sprintf(format, args...)})
	}
	wd, err := CheckWorkDir("workDir", s.WorkDir, s.AllowExistingWorkDir, ForceWorkDir)
	if fe := (FieldError{}); errors.As(err, &fe) {
		errs = append(errs, fe)
	} else if err != nil {
		return nil, err
	}
	if cluster {
		errs = append(errs, CheckKube(s, o)...)
		if s.Istioctl != "" {
			if p := istioctlProblem(s.Istioctl); p != "" {
				add("istioctl", "%s", p)
			}
		}
	}
	if vm {
		v := s.VM
		for _, f := range []struct {
			key, path string
			expand    bool // the step that reads it expands ~
			what      string
		}{
			{"vm.identityFile", v.IdentityFile, true, "the SSH private key"},
			{"vm.passwordFile", v.PasswordFile, true, "a file holding the SSH password"},
			{"vm.sudoPasswordFile", v.SudoPasswordFile, true, "a file holding the sudo password"},
			{"vm.package", v.Package, false, "Istio's istio-sidecar.rpm or .deb"},
		} {
			if f.path != "" {
				if p := regularFileProblem(f.path, f.expand, false); p != "" {
					add(f.key, "%s; give the path of %s", p, f.what)
				}
			}
		}
		// A missing ssh_config is an empty one, as for ssh -F.
		if v.SSHConfig != "" {
			if p := regularFileProblem(v.SSHConfig, false, true); p != "" {
				add("vm.sshConfig", "%s; give an ssh_config file, or leave vm.sshConfig empty for ~/.ssh/config", p)
			}
		}
		if v.KnownHostsFile != "" {
			if p := knownHostsProblem(v.KnownHostsFile); p != "" {
				add("vm.knownHostsFile", "%s", p)
			}
		}
		if only == HalfVM && err == nil {
			var missing []string
			for _, name := range vmconfig.FileNames {
				if st, err := os.Stat(filepath.Join(wd.Path, name)); err != nil || !st.Mode().IsRegular() {
					missing = append(missing, name)
				}
			}
			if len(missing) > 0 {
				add("workDir", "%s lacks %s, which --only vm sends to the VM; run the cluster half first (vm2mesh apply --only cluster)", s.WorkDir, strings.Join(missing, ", "))
			} else if err := CheckVMFiles(&Env{Settings: s, WorkDir: wd.Path}); err != nil {
				// What in them reaches root's shell on the VM, parsed before the VM is contacted.
				add("workDir", "%v; %s", err, HintOf(err))
			}
		}
	}
	if len(errs) > 0 {
		return nil, ValidationError(errs)
	}
	return &Local{WorkDir: wd}, nil
}

// Halves says which halves run: the cluster half unless --only vm; the VM half
// when vm.host is set, or when it is asked for alone.
func Halves(s Settings, only string) (cluster, vm bool) {
	return only != HalfVM, only != HalfCluster && (s.VM.Host != "" || only == HalfVM)
}

// CheckKube checks the kubeconfig a run will read (--kubeconfig, else the
// answers file's) and that the context asked for is in it. KUBECONFIG and
// ~/.kube/config are client-go's to find, as for kubectl.
func CheckKube(s Settings, o k8s.Options) []FieldError {
	var errs []FieldError
	cfgKey, cfg := "kubeconfig", s.Kubeconfig
	if o.Kubeconfig != "" {
		cfgKey, cfg = "--kubeconfig", o.Kubeconfig
	}
	if cfg != "" {
		if p := regularFileProblem(cfg, true, false); p != "" {
			return append(errs, FieldError{Key: cfgKey, Problem: p + "; give the kubeconfig file of the cluster (as for kubectl --kubeconfig)"})
		}
	}
	ctxKey, name := "kubeContext", s.KubeContext
	if o.Context != "" {
		ctxKey, name = "--context", o.Context
	}
	if name == "" {
		return errs
	}
	contexts, _, err := k8s.Contexts(expandHome(cfg))
	if err != nil {
		return append(errs, FieldError{Key: cfgKey, Problem: fmt.Sprintf("%v; fix the kubeconfig (kubectl config view shows what it reads)", err)})
	}
	if !slices.Contains(contexts, name) {
		sort.Strings(contexts)
		have := "it has none"
		if len(contexts) > 0 {
			have = "pick one of " + strings.Join(contexts, ", ")
		}
		errs = append(errs, FieldError{Key: ctxKey, Problem: fmt.Sprintf("context %q is not in the kubeconfig: %s (kubectl config get-contexts)", name, have)})
	}
	return errs
}

// regularFileProblem says why path is not a readable regular file, or "". A
// missing file is fine when mayBeMissing. expand: the reader expands ~, else a
// leading ~ is worth a word.
func regularFileProblem(path string, expand, mayBeMissing bool) string {
	p := path
	if expand {
		p = expandHome(path)
	}
	st, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist) && mayBeMissing:
		return ""
	case errors.Is(err, fs.ErrNotExist) && !expand && strings.HasPrefix(path, "~"):
		return fmt.Sprintf("%s does not exist (~ is not expanded here: write the full path)", path)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("%s does not exist", path)
	case err != nil:
		return fmt.Sprintf("%s: %v", path, unwrapPath(err))
	case !st.Mode().IsRegular():
		return fmt.Sprintf("%s is %s, not a regular file", path, FileKind(st.Mode()))
	}
	// Opening shows what the permissions allow (root reads all); O_NONBLOCK
	// cannot hang here, the file is regular.
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Sprintf("%s cannot be read: %v", path, unwrapPath(err))
	}
	f.Close()
	return ""
}

// knownHostsProblem: a known_hosts file may be missing (it is created), but its
// directory must exist, or be one to create under the home directory (~/.ssh
// on a new account).
func knownHostsProblem(path string) string {
	const fix = "give a known_hosts file, or leave vm.knownHostsFile empty for ~/.ssh/known_hosts"
	if p := regularFileProblem(path, true, true); p != "" {
		return p + "; " + fix
	}
	p, err := filepath.Abs(expandHome(path))
	if err != nil {
		return fmt.Sprintf("%v; %s", err, fix)
	}
	if _, err := os.Stat(p); err == nil {
		return ""
	}
	dir := filepath.Dir(p)
	st, err := os.Stat(dir)
	switch {
	case err == nil && !st.IsDir():
		return fmt.Sprintf("%s is %s, not a directory; %s", dir, FileKind(st.Mode()), fix)
	case err == nil:
		return ""
	}
	if home, herr := os.UserHomeDir(); herr == nil && strings.HasPrefix(dir, filepath.Clean(home)+"/") {
		return ""
	}
	return fmt.Sprintf("%s does not exist and its directory %s neither; create the directory, or %s", path, dir, fix)
}

// istioctlProblem: istioctl names an executable file (a bare name is looked
// up on PATH, as it will be run).
func istioctlProblem(name string) string {
	const fix = "give the path of istioctl (within one minor version of istiod), or leave istioctl empty to use the one on PATH"
	p, err := exec.LookPath(expandHome(name))
	if err != nil {
		if !strings.Contains(name, "/") {
			return fmt.Sprintf("%q is not on PATH; %s", name, fix)
		}
		st, serr := os.Stat(expandHome(name))
		switch {
		case serr != nil:
			return fmt.Sprintf("%s does not exist; %s", name, fix)
		case !st.Mode().IsRegular():
			return fmt.Sprintf("%s is %s, not a program; %s", name, FileKind(st.Mode()), fix)
		}
		return fmt.Sprintf("%s is not executable (chmod +x it); %s", name, fix)
	}
	if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
		return fmt.Sprintf("%s is not a program; %s", name, fix)
	}
	return ""
}
