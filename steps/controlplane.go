package steps

import (
	"context"
	"fmt"

	"github.com/vm2mesh/vm2mesh/assets"
	"github.com/vm2mesh/vm2mesh/internal/safefile"
)

// autoregistrationEnv is the istiod setting that lets VMs register themselves.
const autoregistrationEnv = "PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION"

// ControlPlane installs istiod with the mesh ID, cluster name and network a VM
// needs, unless one already runs anywhere in the cluster.
type ControlPlane struct{}

func (ControlPlane) Name() string  { return "control-plane" }
func (ControlPlane) Title() string { return "Install the Istio control plane" }

func (ControlPlane) manifest(env *Env) ([]byte, error) {
	s := env.Settings
	return assets.Render("controlplane.yaml", map[string]any{
		"IstioNamespace": s.IstioNamespace, "Revision": env.Revision(), "MeshID": s.MeshID,
		"Cluster": s.Cluster, "ClusterNetwork": s.ClusterNetwork, "Autoregister": s.Autoregister,
	})
}

func (ControlPlane) Check(ctx context.Context, env *Env) (Status, error) {
	s := env.Settings
	if s.InstallIstio == InstallAlways {
		return Status{Reason: "installIstio is always"}, nil
	}
	if is := env.Istiod; is.Found {
		reason := fmt.Sprintf("istiod %s already runs and is kept: revision %s in %s, installed by %s (installIstio: always would reinstall it)",
			orUnknown(is.Version), is.Revision, is.Namespace, is.ManagedBy())
		// Unset is Istio's default (on): only an istiod whose env turns it off gets the note.
		if on, known := is.Flag(autoregistrationEnv); s.Autoregister && known && !on {
			reason += "; note: its " + autoregistrationEnv + " is false, so no WorkloadEntry will appear for the VM (set it to true in istiod's env)"
		}
		return Status{Skip: true, Reason: reason}, nil
	}
	if s.InstallIstio == InstallNever {
		return Status{Skip: true, Reason: "no istiod found, and installIstio is never: the later steps need a running istiod"}, nil
	}
	return Status{Reason: "no istiod found"}, nil
}

func (c ControlPlane) Plan(env *Env) ([]Action, error) {
	// Nothing of istioctl's is shown where it will not run: plan.sh runs what it lists.
	if !env.installsControlPlane() {
		body := "installIstio is never: vm2mesh installs no control plane; the later steps need a running istiod"
		if len(env.Mesh.Istiods) > 0 {
			body = fmt.Sprintf("the cluster runs %s; vm2mesh installs no control plane beside it (installIstio: always would)", env.Mesh.Summary())
		}
		return []Action{{Kind: Note, Title: "no control plane to install", Body: body}}, nil
	}
	m, err := c.manifest(env)
	if err != nil {
		return nil, err
	}
	return installActions(env, "vm-cluster.yaml", "IstioOperator istio", m), nil
}

// installActions shows an istioctl install: the IstioOperator and the command line.
func installActions(env *Env, file, title string, manifest []byte) []Action {
	return []Action{
		{Kind: Manifest, Title: title, File: file, Body: string(manifest)},
		{Kind: Command, Title: "istioctl install", Argv: env.IstioctlArgv("install", "-y", "-f", env.File(file))},
	}
}

func (c ControlPlane) Run(ctx context.Context, env *Env, out *Output) error {
	return istioctlInstall(ctx, env, out, c, "vm-cluster.yaml")
}

// istioctlInstall writes the step's manifest and streams `istioctl install` on it.
func istioctlInstall(ctx context.Context, env *Env, out *Output, st interface {
	manifest(*Env) ([]byte, error)
}, file string) error {
	m, err := st.manifest(env)
	if err != nil {
		return err
	}
	if err := mkWorkDir(env); err != nil {
		return err
	}
	if _, err := safefile.Write(env.File(file), m); err != nil {
		return err
	}
	if env.Istioctl.Path == "" {
		return WithHint(fmt.Errorf("istioctl is needed here but was not found"), "install istioctl or set istioctl: in the answers file")
	}
	err = env.Istioctl.Run(ctx, func(line string) { out.Logf("%s", line) }, "install", "-y", "-f", env.File(file))
	if err != nil {
		return WithHint(err, "read istioctl's output above; fix the cause and run vm2mesh again (it resumes here)")
	}
	out.Summary("istioctl install -f %s", env.File(file))
	return nil
}

func orUnknown(v string) string {
	if v == "" {
		return "(version unknown)"
	}
	return v
}
