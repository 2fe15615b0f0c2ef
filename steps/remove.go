package steps

import (
	"context"

	"github.com/vm2mesh/vm2mesh/k8s"
)

// PrepareRemove is PrepareRun for remove: the same local checks before anything
// is contacted, the cluster without istioctl (remove installs nothing), and the
// steps in the reverse order of apply: the VM first, so its agent is gone
// before its WorkloadEntry and group are deleted.
func PrepareRemove(ctx context.Context, s Settings, o k8s.Options, only string, all bool, p Prompts) (*Env, []Step, error) {
	local, err := CheckLocal(s, o, only)
	if err != nil {
		return nil, nil, err
	}
	if _, err := local.WorkDir.Tighten(); err != nil {
		return nil, nil, err
	}
	cluster, vm := Halves(s, only)
	env, err := NewEnv(s)
	if err != nil {
		return nil, nil, err
	}
	if cluster {
		if err := env.connectCluster(ctx, clusterOptions(s, o)); err != nil {
			return nil, nil, err
		}
	}
	var list []Step
	if vm {
		if err := env.ConnectVM(ctx, p); err != nil {
			return nil, nil, err
		}
		list = append(list, RemoveVMSteps()...)
	}
	if cluster {
		list = append(list, RemoveClusterSteps(all)...)
	}
	return env, list, nil
}
