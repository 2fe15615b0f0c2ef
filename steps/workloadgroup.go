package steps

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"github.com/vm2mesh/vm2mesh/assets"
	"github.com/vm2mesh/vm2mesh/internal/safefile"
	"github.com/vm2mesh/vm2mesh/k8s"
)

// WorkloadGroup writes the VM's WorkloadGroup into the work directory and, with
// autoregistration, applies it: only then does istiod create a WorkloadEntry that
// Services can select.
type WorkloadGroup struct{}

func (WorkloadGroup) Name() string  { return "workloadgroup" }
func (WorkloadGroup) Title() string { return "Create the WorkloadGroup" }

// WorkloadGroupYAML renders the WorkloadGroup for the settings.
func WorkloadGroupYAML(s Settings) ([]byte, error) {
	return assets.Render("workloadgroup.yaml", map[string]any{
		"App": s.App, "Namespace": s.Namespace, "ServiceAccount": s.ServiceAccount, "VMNetwork": s.VMNetwork,
	})
}

func (WorkloadGroup) Check(ctx context.Context, env *Env) (Status, error) {
	want, err := WorkloadGroupYAML(env.Settings)
	if err != nil {
		return Status{}, err
	}
	have, err := os.ReadFile(env.File("workloadgroup.yaml"))
	if err != nil || !bytes.Equal(have, want) {
		return Status{Reason: "workloadgroup.yaml is not written yet"}, nil
	}
	if !env.Settings.Autoregister {
		return Status{Skip: true, Reason: "workloadgroup.yaml is written; autoregistration is off, so it is not applied"}, nil
	}
	objs, err := k8s.ParseObjects(want)
	if err != nil {
		return Status{}, err
	}
	return checkApplied(ctx, env, objs)
}

func (WorkloadGroup) Plan(env *Env) ([]Action, error) {
	y, err := WorkloadGroupYAML(env.Settings)
	if err != nil {
		return nil, err
	}
	title := fmt.Sprintf("WorkloadGroup %s in %s", env.Settings.App, env.Settings.Namespace)
	if env.Settings.Autoregister {
		return applyActions(env, "workloadgroup.yaml", title, string(y)), nil
	}
	return []Action{
		{Kind: Manifest, Title: title, File: "workloadgroup.yaml", Body: string(y)},
		{Kind: Note, Title: "not applied", Body: "autoregistration is off: the WorkloadGroup is written, not applied. Without it no WorkloadEntry exists and no Service selects the VM; create a WorkloadEntry for the VM yourself."},
	}, nil
}

func (WorkloadGroup) Run(ctx context.Context, env *Env, out *Output) error {
	y, err := WorkloadGroupYAML(env.Settings)
	if err != nil {
		return err
	}
	if err := mkWorkDir(env); err != nil {
		return err
	}
	if _, err := safefile.Write(env.File("workloadgroup.yaml"), y); err != nil {
		return err
	}
	out.Summary("wrote %s", env.File("workloadgroup.yaml"))
	if !env.Settings.Autoregister {
		out.Warnf("autoregistration is off: the WorkloadGroup is not applied, so no WorkloadEntry will exist for the VM and no Service can select it")
		return nil
	}
	objs, err := k8s.ParseObjects(y)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if _, err := env.Client.Apply(ctx, o); err != nil {
			return err
		}
		out.Summary("applied %s", k8s.Describe(o))
	}
	return nil
}
