// Package testcluster starts a real Kubernetes control plane for tests: etcd and
// kube-apiserver built from their Go modules (cached by version), listening on
// loopback only.
package testcluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Tool is a binary the harness builds from a scratch module under hack/tools.
type Tool struct {
	Name    string // the binary's name
	Module  string // directory under hack/tools
	Version string // cache key; must match the module's pin (TestToolVersionsMatchTheirModules)
	Package string
	LDFlags string
}

// kubeLDFlags make /version say v1.34.4, not v0.0.0.
const kubeLDFlags = "-X k8s.io/component-base/version.gitVersion=v1.34.4 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34 -X k8s.io/client-go/pkg/version.gitVersion=v1.34.4"

// IstioVersion is the istio.io/istio pseudo-version hack/tools/istio pins: only
// @latest resolves on this machine's module proxy.
const IstioVersion = "v0.0.0-20260827124520-eed52ebb66ad"

var (
	Etcd                  = Tool{Name: "etcd", Module: "etcd", Version: "v3.6.8", Package: "go.etcd.io/etcd/server/v3"}
	KubeAPIServer         = Tool{Name: "kube-apiserver", Module: "kubernetes", Version: "v1.34.4", Package: "k8s.io/kubernetes/cmd/kube-apiserver", LDFlags: kubeLDFlags}
	KubeControllerManager = Tool{Name: "kube-controller-manager", Module: "kubernetes", Version: "v1.34.4", Package: "k8s.io/kubernetes/cmd/kube-controller-manager", LDFlags: kubeLDFlags}
	KubeScheduler         = Tool{Name: "kube-scheduler", Module: "kubernetes", Version: "v1.34.4", Package: "k8s.io/kubernetes/cmd/kube-scheduler", LDFlags: kubeLDFlags}
	Kwok                  = Tool{Name: "kwok", Module: "kwok", Version: "v0.8.0", Package: "sigs.k8s.io/kwok/cmd/kwok"}
	Istioctl              = Tool{Name: "istioctl", Module: "istio", Version: IstioVersion, Package: "istio.io/istio/istioctl/cmd/istioctl"}
	PilotDiscovery        = Tool{Name: "pilot-discovery", Module: "istio", Version: IstioVersion, Package: "istio.io/istio/pilot/cmd/pilot-discovery"}
	PilotAgent            = Tool{Name: "pilot-agent", Module: "istio", Version: IstioVersion, Package: "istio.io/istio/pilot/cmd/pilot-agent"}
	// Helm installs Istio from the charts of the istio.io/istio module above.
	Helm = Tool{Name: "helm", Module: "helm", Version: "v3.22.0", Package: "helm.sh/helm/v3/cmd/helm", LDFlags: "-X helm.sh/helm/v3/internal/version.version=v3.22.0"}
	// Goreleaser checks .goreleaser.yaml and makes the snapshot release the
	// release tests install (hack/test).
	Goreleaser = Tool{Name: "goreleaser", Module: "goreleaser", Version: "v2.16.0", Package: "github.com/goreleaser/goreleaser/v2", LDFlags: "-X main.version=v2.16.0 -X main.builtBy=vm2mesh-hack-tools"}
)

// ControlPlaneTools start a cluster; EndToEndTools add what the whole onboarding
// needs (a cold build of these is ~10 minutes).
var (
	ControlPlaneTools = []Tool{Etcd, KubeAPIServer}
	EndToEndTools     = []Tool{KubeControllerManager, KubeScheduler, Kwok, Istioctl, PilotDiscovery, PilotAgent, Helm}
	ReleaseTools      = []Tool{Goreleaser} // a cold build is ~3 minutes
)

// AllTools are the tools prebuild builds.
func AllTools() []Tool {
	return append(append(append([]Tool{}, ControlPlaneTools...), EndToEndTools...), ReleaseTools...)
}

// RepoRoot finds the vm2mesh checkout from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "hack", "tools")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the vm2mesh checkout (hack/tools) above the working directory")
		}
		dir = parent
	}
}

// CacheDir is where built tools are kept between runs.
func CacheDir() string {
	if d := os.Getenv("VM2MESH_TOOLS_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "vm2mesh", "tools")
	}
	return filepath.Join(os.TempDir(), "vm2mesh-tools")
}

// Path builds the tool unless a binary of its version is cached, and returns it.
// Concurrent test binaries (one per package) serialise on a lock file.
func (t Tool) Path() (string, error) {
	cache := CacheDir()
	bin := filepath.Join(cache, t.Name+"-"+t.Version)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	// One lock per module: its tools share a build cache and go.sum.
	lock, err := os.OpenFile(filepath.Join(cache, "."+t.Module+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	if _, err := os.Stat(bin); err == nil {
		return bin, nil // another process built it while we waited
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	tmp := bin + ".tmp"
	args := []string{"build", "-o", tmp}
	if t.LDFlags != "" {
		args = append(args, "-ldflags", t.LDFlags)
	}
	args = append(args, t.Package)
	cmd := exec.Command("go", args...)
	cmd.Dir = filepath.Join(root, "hack", "tools", t.Module)
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building %s %s: %v\n%s", t.Name, t.Version, err, LastLines(string(out), 30))
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	PruneCache(t.Name+"-", filepath.Base(bin))
	return bin, nil
}

// PruneCache removes what a new build replaced: the cache's entries named
// prefix+something other than keep (older versions, ~100 MB to 1 GB each). A
// checkout still on an older pin builds it again.
func PruneCache(prefix, keep string) {
	entries, err := os.ReadDir(CacheDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, prefix) && name != keep && !strings.HasSuffix(name, ".tmp") {
			_ = os.RemoveAll(filepath.Join(CacheDir(), name))
		}
	}
}

// LastLines is the end of a log, for error messages.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ModuleDir is where module lies in the module cache, as the go.mod of
// hack/tools/<scratch> requires it ("" for vm2mesh's own go.mod). For a scratch
// module it runs offline: building its tools downloaded what it requires.
func ModuleDir(scratch, module string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module)
	cmd.Dir = root
	where := ""
	if scratch != "" {
		cmd.Dir = filepath.Join(root, "hack", "tools", scratch)
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off")
		where = fmt.Sprintf(" (the harness's build of hack/tools/%s downloads it)", scratch)
	}
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locating %s%s: %w", module, where, err)
	}
	return strings.TrimSpace(string(out)), nil
}
