package steps

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vm2mesh/vm2mesh/k8s"
	"github.com/vm2mesh/vm2mesh/remote"
)

// Env is what the steps of one run share: the settings and the cluster, as the
// preflight found them.
type Env struct {
	Settings Settings
	WorkDir  string // absolute
	Client   *k8s.Client
	Istioctl k8s.Istioctl // Path is empty when istioctl is not needed
	Resolver k8s.Resolver // nil: the system resolver

	ServerVersion string
	Mesh          k8s.Mesh       // every istiod in the cluster, its tags
	Istiod        k8s.IstiodInfo // the one the VM joins; Found is false when none runs
	revision      string         // revision resolved against Mesh; see Revision
	resolved      bool           // revision is set

	VM    *remote.Client // nil until ConnectVM
	Facts VMFacts
	// vmChanged is set by VM steps that changed what the agent reads, so the
	// agent is restarted and its log judged again.
	vmChanged bool
	// agentStarted: this run started the agent; logOffsets are where its two log
	// files ended before.
	agentStarted bool
	logOffsets   [2]int64
}

// Close ends the VM connection.
func (e *Env) Close() {
	if e.VM == nil {
		return
	}
	// The connection's private directory: made by its first command, so there
	// is one even when nothing was uploaded.
	_ = e.VM.RemoveTempDir(context.Background())
	e.VM.Close()
}

// clusterOptions are o with the answers file's kubeconfig and context where the
// flags gave none: the flags win, as Flags.Apply decides.
func clusterOptions(s Settings, o k8s.Options) k8s.Options {
	if o.Kubeconfig == "" {
		o.Kubeconfig = expandHome(s.Kubeconfig)
	}
	if o.Context == "" {
		o.Context = s.KubeContext
	}
	return o
}

// connectCluster loads the kubeconfig context o names and checks that the API
// server answers and accepts us.
func (e *Env) connectCluster(ctx context.Context, o k8s.Options) error {
	c, err := k8s.New(o)
	if err != nil {
		return WithHint(err, "check kubeContext in the answers file or --context")
	}
	version, err := c.Ping(ctx)
	if err != nil {
		return err
	}
	e.Client, e.ServerVersion = c, version
	return nil
}

// Prepare checks the settings and the cluster before anything changes: the
// kubeconfig context, that the API server answers and accepts us, which istiods
// run and which of them the VM joins, and istioctl when a step will need it.
// Every error says what to fix.
func Prepare(ctx context.Context, s Settings, o k8s.Options) (*Env, error) {
	o = clusterOptions(s, o)
	env, err := NewEnv(s)
	if err != nil {
		return nil, err
	}
	if err := env.connectCluster(ctx, o); err != nil {
		return nil, err
	}
	c := env.Client
	env.Mesh, err = c.DiscoverMesh(ctx)
	if err != nil {
		return nil, err
	}
	if err := env.pickIstiod(); err != nil {
		return nil, err
	}
	if err := env.checkEastWestNone(ctx); err != nil {
		return nil, err
	}
	need, err := env.needsIstioctl(ctx)
	if err != nil {
		return nil, err
	}
	if need {
		path, err := k8s.FindIstioctl(expandHome(s.Istioctl))
		if err != nil {
			if s.Istioctl == "" {
				return nil, WithHint(err, "or set istioctl: in the answers file to its path")
			}
			return nil, WithHint(err, "fix the istioctl: path in the answers file")
		}
		env.Istioctl = k8s.Istioctl{Path: path, Kubeconfig: o.Kubeconfig, Context: c.Context}
		v, err := env.Istioctl.ClientVersion(ctx)
		if err != nil {
			return nil, fmt.Errorf("istioctl at %s does not run: %w", path, err)
		}
		if env.Istiod.Found {
			if skew, ok := k8s.MinorSkew(v, env.Istiod.Version); ok && skew > 1 {
				return nil, fmt.Errorf("istioctl %s is more than one minor version away from istiod %s: use istioctl %s (set istioctl: in the answers file)",
					v, env.Istiod.Version, env.Istiod.Version)
			}
		}
	}
	return env, nil
}

// needsIstioctl: the control plane, or the east-west gateway with istioctl,
// will be installed.
func (e *Env) needsIstioctl(ctx context.Context) (bool, error) {
	switch {
	case e.Settings.InstallIstio == InstallNever:
		return false, nil
	case e.installsControlPlane():
		return true, nil
	case e.EastWestMethod() != EastWestIstioctl:
		return false, nil
	}
	gw, err := e.Client.ServiceExists(ctx, e.Settings.IstioNamespace, EastWestService)
	return !gw, err
}

// IstioctlArgv is the istioctl command line for the plan, whether or not
// istioctl was resolved (a dry run on a machine without it still shows it).
func (e *Env) IstioctlArgv(args ...string) []string {
	ic := e.Istioctl
	if ic.Path == "" {
		ic.Path = "istioctl"
		if e.Settings.Istioctl != "" {
			ic.Path = expandHome(e.Settings.Istioctl)
		}
		ic.Kubeconfig = expandHome(e.Settings.Kubeconfig)
		if e.Client != nil {
			ic.Context = e.Client.Context
		}
	}
	return ic.Argv(args...)
}

// mkWorkDir makes the work directory private: it will hold a token.
func mkWorkDir(env *Env) error { return os.MkdirAll(env.WorkDir, 0o700) }

// File is the absolute path of a file in the work directory.
func (e *Env) File(name string) string { return filepath.Join(e.WorkDir, name) }

func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, strings.TrimPrefix(p, "~"))
		}
	}
	return p
}

// CheckOnly validates --only: "" (both halves), cluster or vm.
func CheckOnly(only string) error {
	if only != "" && only != HalfCluster && only != HalfVM {
		return fmt.Errorf("--only takes cluster or vm, not %q", only)
	}
	return nil
}

// PrepareRun runs the preflight of the halves that will run, before anything
// changes, and returns their steps in order. The cluster half runs unless only
// is vm; the VM half when vm.host is set, or when it is asked for alone (it then
// reads the five files from the work directory).
//
// Nothing is contacted before CheckLocal passed: a wrong key, a missing file or
// an unsafe workDir stops the run here, whoever calls (apply, the wizard).
func PrepareRun(ctx context.Context, s Settings, o k8s.Options, only string, p Prompts) (*Env, []Step, error) {
	local, err := CheckLocal(s, o, only)
	if err != nil {
		return nil, nil, err
	}
	// apply and the wizard tighten it first and say so; this is for other callers.
	if _, err := local.WorkDir.Tighten(); err != nil {
		return nil, nil, err
	}
	cluster, vm := Halves(s, only)
	var env *Env
	if cluster {
		env, err = Prepare(ctx, s, o)
	} else {
		env, err = NewEnv(s)
	}
	if err != nil {
		return nil, nil, err
	}
	var list []Step
	if cluster {
		list = append(list, ClusterSteps()...)
	}
	if vm {
		if err := env.ConnectVM(ctx, p); err != nil {
			return nil, nil, err
		}
		list = append(list, VMSteps()...)
	}
	return env, list, nil
}
