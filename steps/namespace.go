package steps

import (
	"context"
	"fmt"
)

// Namespace creates the VM's namespace and service account when they are missing.
// It never deletes or changes them.
type Namespace struct{}

func (Namespace) Name() string  { return "namespace" }
func (Namespace) Title() string { return "Create the namespace and service account" }

func (Namespace) Check(ctx context.Context, env *Env) (Status, error) {
	s := env.Settings
	ns, err := env.Client.NamespaceExists(ctx, s.Namespace)
	if err != nil || !ns {
		return Status{Reason: fmt.Sprintf("namespace %s is missing", s.Namespace)}, err
	}
	sa, err := env.Client.ServiceAccountExists(ctx, s.Namespace, s.ServiceAccount)
	if err != nil || !sa {
		return Status{Reason: fmt.Sprintf("service account %s/%s is missing", s.Namespace, s.ServiceAccount)}, err
	}
	return Status{Skip: true, Reason: fmt.Sprintf("namespace %s and service account %s exist", s.Namespace, s.ServiceAccount)}, nil
}

func (Namespace) Plan(env *Env) ([]Action, error) {
	s := env.Settings
	return []Action{
		{Kind: Command, Title: "create the namespace if missing", Argv: kubectlArgv(env, "create", "namespace", s.Namespace)},
		{Kind: Command, Title: "create the service account if missing", Argv: kubectlArgv(env, "create", "serviceaccount", s.ServiceAccount, "-n", s.Namespace)},
	}, nil
}

func (Namespace) Run(ctx context.Context, env *Env, out *Output) error {
	s := env.Settings
	created, err := env.Client.EnsureNamespace(ctx, s.Namespace)
	if err != nil {
		return err
	}
	if created {
		out.Created(namespaceKey(s), true)
	}
	out.Summary("namespace %s %s", s.Namespace, createdOrKept(created))
	created, err = env.Client.EnsureServiceAccount(ctx, s.Namespace, s.ServiceAccount)
	if err != nil {
		return err
	}
	if created {
		out.Created(serviceAccountKey(s), true)
	}
	out.Summary("service account %s %s", s.ServiceAccount, createdOrKept(created))
	return nil
}

func createdOrKept(created bool) string {
	if created {
		return "created"
	}
	return "already existed"
}

// The State's names for what the namespace step created.
func namespaceKey(s Settings) string { return "namespace/" + s.Namespace }
func serviceAccountKey(s Settings) string {
	return "serviceaccount/" + s.Namespace + "/" + s.ServiceAccount
}
