package steps

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/vm2mesh/vm2mesh/assets"
	"github.com/vm2mesh/vm2mesh/internal/safefile"
	"github.com/vm2mesh/vm2mesh/k8s"
	"github.com/vm2mesh/vm2mesh/vmconfig"
)

// ExposeIstiod routes 15012 and 15017 of the east-west gateway to istiod and, on
// multi-network meshes, opens the cross-network gateway and names the network.
type ExposeIstiod struct{}

func (ExposeIstiod) Name() string  { return "expose-istiod" }
func (ExposeIstiod) Title() string { return "Expose istiod through the gateway" }

type manifestFile struct{ file, title, yaml string }

func (ExposeIstiod) manifests(env *Env) ([]manifestFile, error) {
	s := env.Settings
	data := map[string]any{
		"IstioNamespace": s.IstioNamespace,
		"IstiodService":  vmconfig.IstiodHost(s.IstioNamespace, env.Revision()) + ".cluster.local",
		"ClusterNetwork": s.ClusterNetwork,
	}
	out := []manifestFile{{file: "expose-istiod.yaml", title: "Gateway istiod-gateway, VirtualService istiod-vs"}}
	if s.MultiNetwork() {
		out = append(out, manifestFile{file: "cross-network.yaml", title: "Gateway cross-network-gateway, network label on " + s.IstioNamespace})
	}
	for i := range out {
		b, err := assets.Render(out[i].file, data)
		if err != nil {
			return nil, err
		}
		out[i].yaml = string(b)
	}
	return out, nil
}

func (e ExposeIstiod) objects(env *Env) ([]*unstructured.Unstructured, error) {
	ms, err := e.manifests(env)
	if err != nil {
		return nil, err
	}
	var objs []*unstructured.Unstructured
	for _, m := range ms {
		o, err := k8s.ParseObjects([]byte(m.yaml))
		if err != nil {
			return nil, err
		}
		objs = append(objs, o...)
	}
	return objs, nil
}

func (e ExposeIstiod) Check(ctx context.Context, env *Env) (Status, error) {
	objs, err := e.objects(env)
	if err != nil {
		return Status{}, err
	}
	return checkApplied(ctx, env, objs)
}

// checkApplied skips when every object is in the cluster as we would apply it.
func checkApplied(ctx context.Context, env *Env, objs []*unstructured.Unstructured) (Status, error) {
	for _, o := range objs {
		ok, err := env.Client.UpToDate(ctx, o)
		if err != nil {
			return Status{}, err
		}
		if !ok {
			return Status{Reason: k8s.Describe(o) + " is missing or differs"}, nil
		}
	}
	return Status{Skip: true, Reason: fmt.Sprintf("all %d objects are applied and up to date", len(objs))}, nil
}

func (e ExposeIstiod) Plan(env *Env) ([]Action, error) {
	ms, err := e.manifests(env)
	if err != nil {
		return nil, err
	}
	var acts []Action
	for _, m := range ms {
		acts = append(acts, applyActions(env, m.file, m.title, m.yaml)...)
	}
	return acts, nil
}

// applyActions shows a server-side apply as the manifest and the kubectl line
// that does the same.
func applyActions(env *Env, file, title, yaml string) []Action {
	return []Action{
		{Kind: Manifest, Title: title, File: file, Body: yaml},
		{Kind: Command, Title: "server-side apply (vm2mesh does it through the API)",
			Argv: kubectlArgv(env, "apply", "--server-side", "--field-manager="+k8s.FieldManager, "-f", env.File(file))},
	}
}

func kubectlArgv(env *Env, args ...string) []string {
	argv := append([]string{"kubectl"}, args...)
	if env.Settings.Kubeconfig != "" {
		argv = append(argv, "--kubeconfig", env.Settings.Kubeconfig)
	}
	if env.Client != nil && env.Client.Context != "" {
		argv = append(argv, "--context", env.Client.Context)
	}
	return argv
}

func (e ExposeIstiod) Run(ctx context.Context, env *Env, out *Output) error {
	ms, err := e.manifests(env)
	if err != nil {
		return err
	}
	if err := mkWorkDir(env); err != nil {
		return err
	}
	n := 0
	for _, m := range ms {
		if _, err := safefile.Write(env.File(m.file), []byte(m.yaml)); err != nil {
			return err
		}
		objs, err := k8s.ParseObjects([]byte(m.yaml))
		if err != nil {
			return err
		}
		for _, o := range objs {
			if _, err := env.Client.Apply(ctx, o); err != nil {
				return WithHint(err, "these are Istio resources: Istio's CRDs must be installed (installIstio: auto or always does it)")
			}
			out.Logf("applied %s", k8s.Describe(o))
			n++
		}
	}
	out.Summary("applied %d objects", n)
	return nil
}
