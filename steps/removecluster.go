package steps

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/vm2mesh/vm2mesh/assets"
	"github.com/vm2mesh/vm2mesh/k8s"
)

// The cluster half of remove deletes what vm2mesh made for this VM and nothing
// it found: the VM's WorkloadEntry, the WorkloadGroup once no other VM uses it,
// the namespace and service account only if the State says vm2mesh created them
// (and the namespace holds nothing else), and, with --all, istiod's exposure.
// The control plane and the east-west gateway are never deleted: the summary
// says how.

const istioNetworking = "networking.istio.io"

// istioResource is the client of an Istio kind; ok is false when the cluster
// has no such kind (Istio's CRDs are gone): nothing of it to delete.
func istioResource(env *Env, kind, namespace string) (ri dynamic.ResourceInterface, ok bool, err error) {
	gk := schema.GroupKind{Group: istioNetworking, Kind: kind}
	m, err := env.Client.Mapper.RESTMapping(gk)
	if meta.IsNoMatchError(err) {
		env.Client.Mapper.Reset()
		m, err = env.Client.Mapper.RESTMapping(gk)
	}
	if meta.IsNoMatchError(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return env.Client.Dynamic.Resource(m.Resource).Namespace(namespace), true, nil
}

// managedByUs says whether vm2mesh's field manager wrote the object.
func managedByUs(o *unstructured.Unstructured) bool {
	for _, f := range o.GetManagedFields() {
		if f.Manager == k8s.FieldManager {
			return true
		}
	}
	return false
}

// vmAddresses are the addresses the VM may have registered with: what it says
// it has (when connected), vm.internalIP, and vm.host when it is an address.
func (e *Env) vmAddresses(ctx context.Context) []string {
	var addrs []string
	add := func(a string) {
		if net.ParseIP(a) != nil && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	add(e.Settings.VM.InternalIP)
	add(e.Settings.VM.Host)
	if e.VM != nil {
		if out, err := e.VM.Run(ctx, "hostname -I 2>/dev/null; true"); err == nil {
			for _, a := range strings.Fields(out) {
				add(a)
			}
		}
	}
	return addrs
}

// groupEntries lists the WorkloadEntries istiod made from the group and is not
// deleting yet, split into the VM's (by address) and the others.
func groupEntries(ctx context.Context, env *Env) (ours, others []k8s.WorkloadEntry, err error) {
	s := env.Settings
	if _, ok, err := istioResource(env, "WorkloadEntry", s.Namespace); err != nil || !ok {
		return nil, nil, err // no such kind: no entries to delete
	}
	entries, err := env.Client.WorkloadEntries(ctx, s.Namespace, s.App, "")
	if err != nil {
		return nil, nil, err
	}
	addrs := env.vmAddresses(ctx)
	for _, we := range entries {
		switch {
		case we.Deleting:
		case slices.Contains(addrs, we.Address):
			ours = append(ours, we)
		default:
			others = append(others, we)
		}
	}
	return ours, others, nil
}

func names(entries []k8s.WorkloadEntry) string {
	var n []string
	for _, we := range entries {
		n = append(n, we.Name)
	}
	return strings.Join(n, ", ")
}

// RemoveWorkloadEntry deletes the WorkloadEntry istiod registered for this VM.
// istiod deletes it by itself once the agent has been gone a while; this makes
// sure, also where istiod is down.
type RemoveWorkloadEntry struct{}

func (RemoveWorkloadEntry) Name() string  { return "remove-workloadentry" }
func (RemoveWorkloadEntry) Title() string { return "Delete the VM's WorkloadEntry" }

func (RemoveWorkloadEntry) Check(ctx context.Context, env *Env) (Status, error) {
	ours, others, err := groupEntries(ctx, env)
	if err != nil {
		return Status{}, err
	}
	if len(ours) == 0 {
		reason := fmt.Sprintf("no WorkloadEntry of group %s has the VM's address", env.Settings.App)
		if len(env.vmAddresses(ctx)) == 0 {
			reason = "the VM's address is not known (vm.host is a name and the VM is not contacted; vm.internalIP gives it)"
		}
		if len(others) > 0 {
			reason += fmt.Sprintf("; kept those of other VMs: %s", names(others))
		}
		return Status{Skip: true, Reason: reason}, nil
	}
	return Status{Reason: "WorkloadEntry " + names(ours)}, nil
}

func (RemoveWorkloadEntry) Plan(env *Env) ([]Action, error) {
	return []Action{{Kind: Note, Title: "delete", Body: fmt.Sprintf("delete the WorkloadEntries in %s annotated %s=%s whose address is the VM's", env.Settings.Namespace, k8s.AutoRegistrationGroupAnnotation, env.Settings.App)}}, nil
}

func (RemoveWorkloadEntry) Run(ctx context.Context, env *Env, out *Output) error {
	ours, _, err := groupEntries(ctx, env)
	if err != nil {
		return err
	}
	ri, _, err := istioResource(env, "WorkloadEntry", env.Settings.Namespace)
	if err != nil {
		return err
	}
	for _, we := range ours {
		if err := deleteObject(ctx, ri, we.Name); err != nil {
			return err
		}
		out.Logf("deleted WorkloadEntry %s/%s", we.Namespace, we.Name)
	}
	out.Summary("deleted %s", names(ours))
	return nil
}

func deleteObject(ctx context.Context, ri dynamic.ResourceInterface, name string) error {
	ctx, cancel := k8s.WithTimeout(ctx)
	defer cancel()
	err := ri.Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deleting %s: %w", name, err)
	}
	return nil
}

// RemoveWorkloadGroup deletes the WorkloadGroup vm2mesh applied, unless another
// VM is still registered from it.
type RemoveWorkloadGroup struct{}

func (RemoveWorkloadGroup) Name() string  { return "remove-workloadgroup" }
func (RemoveWorkloadGroup) Title() string { return "Delete the WorkloadGroup" }

// ownGroup is the WorkloadGroup when it is vm2mesh's; why says otherwise.
func ownGroup(ctx context.Context, env *Env) (ri dynamic.ResourceInterface, why string, err error) {
	s := env.Settings
	ri, ok, err := istioResource(env, "WorkloadGroup", s.Namespace)
	if err != nil {
		return nil, "", err
	}
	if !ok {
		return nil, "the cluster has no WorkloadGroup kind", nil
	}
	gctx, cancel := k8s.WithTimeout(ctx)
	defer cancel()
	wg, err := ri.Get(gctx, s.App, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Sprintf("WorkloadGroup %s/%s is gone", s.Namespace, s.App), nil
	case err != nil:
		return nil, "", err
	case wg.GetDeletionTimestamp() != nil:
		return nil, fmt.Sprintf("WorkloadGroup %s/%s is being deleted", s.Namespace, s.App), nil
	case !managedByUs(wg):
		return nil, fmt.Sprintf("WorkloadGroup %s/%s was not applied by vm2mesh: kept", s.Namespace, s.App), nil
	}
	return ri, "", nil
}

func (RemoveWorkloadGroup) Check(ctx context.Context, env *Env) (Status, error) {
	ri, why, err := ownGroup(ctx, env)
	if err != nil || ri == nil {
		return Status{Skip: err == nil, Reason: why}, err
	}
	_, others, err := groupEntries(ctx, env)
	if err != nil {
		return Status{}, err
	}
	if len(others) > 0 {
		return Status{Skip: true, Reason: fmt.Sprintf("kept: other VMs are registered from it (%s)", names(others))}, nil
	}
	return Status{Reason: fmt.Sprintf("WorkloadGroup %s/%s", env.Settings.Namespace, env.Settings.App)}, nil
}

func (RemoveWorkloadGroup) Plan(env *Env) ([]Action, error) {
	return []Action{{Kind: Command, Title: "delete (vm2mesh does it through the API)", Argv: kubectlArgv(env, "delete", "workloadgroup", env.Settings.App, "-n", env.Settings.Namespace)}}, nil
}

func (RemoveWorkloadGroup) Run(ctx context.Context, env *Env, out *Output) error {
	ri, why, err := ownGroup(ctx, env)
	if err != nil {
		return err
	}
	if ri == nil {
		out.Summary("%s", why)
		return nil
	}
	if err := deleteObject(ctx, ri, env.Settings.App); err != nil {
		return err
	}
	out.Summary("deleted WorkloadGroup %s/%s", env.Settings.Namespace, env.Settings.App)
	return nil
}

// RemoveNamespace deletes the service account and the namespace when the State
// says the namespace step created them; the namespace only when nothing but
// what Kubernetes and istiod put into every namespace is left in it.
type RemoveNamespace struct{}

func (RemoveNamespace) Name() string { return "remove-namespace" }
func (RemoveNamespace) Title() string {
	return "Delete the namespace and service account vm2mesh created"
}

// nsPlan is what the step would delete, and why not the rest.
type nsPlan struct {
	sa, ns bool
	kept   []string
}

func (RemoveNamespace) plan(ctx context.Context, env *Env) (nsPlan, error) {
	s := env.Settings
	created := LoadState(env.WorkDir, s).Created
	var p nsPlan
	kc := env.Client.Kube.CoreV1()
	gctx, cancel := k8s.WithTimeout(ctx)
	defer cancel()
	ns, err := kc.Namespaces().Get(gctx, s.Namespace, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || (err == nil && ns.DeletionTimestamp != nil) {
		return p, nil // gone, or going with all it holds
	}
	if err != nil {
		return p, err
	}
	_, err = kc.ServiceAccounts(s.Namespace).Get(gctx, s.ServiceAccount, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return p, err
	}
	if err == nil {
		users, err := serviceAccountUsers(ctx, env)
		switch {
		case err != nil:
			return p, err
		case !created[serviceAccountKey(s)]:
			p.kept = append(p.kept, "service account "+s.ServiceAccount+" (vm2mesh's state in workDir does not record creating it)")
		case len(users) > 0:
			p.kept = append(p.kept, "service account "+s.ServiceAccount+", the identity of "+strings.Join(users, ", "))
		default:
			p.sa = true
		}
	}
	if !created[namespaceKey(s)] {
		p.kept = append(p.kept, "namespace "+s.Namespace+" (vm2mesh's state in workDir does not record creating it)")
		return p, nil
	}
	left, err := namespaceContents(ctx, env, p.sa)
	if err != nil {
		return p, err
	}
	if len(left) > 0 {
		if len(left) > 5 {
			left = append(left[:5], fmt.Sprintf("and %d more", len(left)-5))
		}
		p.kept = append(p.kept, "namespace "+s.Namespace+", which holds "+strings.Join(left, ", "))
		return p, nil
	}
	p.ns = true
	return p, nil
}

// serviceAccountUsers names what else runs as the VM's service account: other
// VMs' WorkloadEntries, a WorkloadGroup this remove keeps, pods. Deleting it
// would end their tokens.
func serviceAccountUsers(ctx context.Context, env *Env) ([]string, error) {
	s := env.Settings
	var users []string
	mine, others, err := groupEntries(ctx, env)
	if err != nil {
		return nil, err
	}
	ours := map[string]bool{}
	for _, we := range mine {
		ours[we.Name] = true // RemoveWorkloadEntry deletes them first
	}
	all, _, err := istioResource(env, "WorkloadEntry", s.Namespace)
	if err != nil {
		return nil, err
	}
	if all != nil {
		lctx, cancel := k8s.WithTimeout(ctx)
		list, err := all.List(lctx, metav1.ListOptions{})
		cancel()
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, err
		}
		if list != nil {
			for _, we := range list.Items {
				if sa, _, _ := unstructured.NestedString(we.Object, "spec", "serviceAccount"); sa == s.ServiceAccount && !ours[we.GetName()] {
					users = append(users, "WorkloadEntry/"+we.GetName())
				}
			}
		}
	}
	if groups, ok, err := istioResource(env, "WorkloadGroup", s.Namespace); err != nil {
		return nil, err
	} else if ok {
		ri, _, err := ownGroup(ctx, env)
		if err != nil {
			return nil, err
		}
		deleted := ri != nil && len(others) == 0 // RemoveWorkloadGroup deletes it first
		lctx, cancel := k8s.WithTimeout(ctx)
		list, err := groups.List(lctx, metav1.ListOptions{})
		cancel()
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, err
		}
		if list != nil {
			for _, wg := range list.Items {
				sa, _, _ := unstructured.NestedString(wg.Object, "spec", "template", "serviceAccount")
				if sa == s.ServiceAccount && !(deleted && wg.GetName() == s.App) {
					users = append(users, "WorkloadGroup/"+wg.GetName())
				}
			}
		}
	}
	lctx, cancel := k8s.WithTimeout(ctx)
	defer cancel()
	pods, err := env.Client.Kube.CoreV1().Pods(s.Namespace).List(lctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for _, pod := range pods.Items {
		if pod.Spec.ServiceAccountName == s.ServiceAccount {
			users = append(users, "Pod/"+pod.Name)
		}
	}
	return users, nil
}

// namespaceContents lists what the namespace holds besides what comes with every
// namespace (the default service account, the root certificates Kubernetes and
// istiod write, istiod's CRL, events) and what this remove deletes first.
func namespaceContents(ctx context.Context, env *Env, ourSA bool) ([]string, error) {
	s := env.Settings
	ignored := map[string]bool{
		"ServiceAccount/default": true, "ConfigMap/kube-root-ca.crt": true, "ConfigMap/" + k8s.RootCertConfigMap: true,
		"ConfigMap/" + k8s.CRLConfigMap: true,
	}
	if ourSA {
		ignored["ServiceAccount/"+s.ServiceAccount] = true
	}
	ours, _, err := groupEntries(ctx, env)
	if err != nil {
		return nil, err
	}
	for _, we := range ours {
		ignored["WorkloadEntry/"+we.Name] = true
	}
	if ri, _, err := ownGroup(ctx, env); err != nil {
		return nil, err
	} else if ri != nil {
		if _, others, _ := groupEntries(ctx, env); len(others) == 0 {
			ignored["WorkloadGroup/"+s.App] = true
		}
	}
	// Partial discovery (an aggregated API down) still lists the rest.
	lists, err := env.Client.Kube.Discovery().ServerPreferredNamespacedResources()
	if len(lists) == 0 && err != nil {
		return nil, fmt.Errorf("listing the cluster's kinds: %w", err)
	}
	var left []string
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			// Endpoints mirror Services (listed here anyway), and listing them
			// makes the API server warn that v1 Endpoints is deprecated.
			if !slices.Contains(r.Verbs, "list") || strings.Contains(r.Name, "/") || r.Kind == "Event" || (gv.Group == "" && r.Name == "endpoints") {
				continue
			}
			lctx, cancel := k8s.WithTimeout(ctx)
			items, err := env.Client.Dynamic.Resource(gv.WithResource(r.Name)).Namespace(s.Namespace).List(lctx, metav1.ListOptions{})
			cancel()
			if err != nil {
				if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) {
					continue
				}
				return nil, fmt.Errorf("listing %s in %s: %w", r.Name, s.Namespace, err)
			}
			for _, it := range items.Items {
				if name := r.Kind + "/" + it.GetName(); !ignored[name] {
					left = append(left, name)
				}
			}
		}
	}
	slices.Sort(left)
	return left, nil
}

func (n RemoveNamespace) Check(ctx context.Context, env *Env) (Status, error) {
	p, err := n.plan(ctx, env)
	if err != nil {
		return Status{}, err
	}
	kept := strings.Join(p.kept, "; ")
	if !p.sa && !p.ns {
		if kept == "" {
			kept = fmt.Sprintf("namespace %s is gone", env.Settings.Namespace)
		}
		return Status{Skip: true, Reason: "kept " + kept}, nil
	}
	return Status{Reason: kept}, nil
}

func (RemoveNamespace) Plan(env *Env) ([]Action, error) {
	s := env.Settings
	return []Action{
		{Kind: Command, Title: "delete the service account if vm2mesh created it", Argv: kubectlArgv(env, "delete", "serviceaccount", s.ServiceAccount, "-n", s.Namespace)},
		{Kind: Command, Title: "delete the namespace if vm2mesh created it and it holds nothing else", Argv: kubectlArgv(env, "delete", "namespace", s.Namespace)},
	}, nil
}

func (n RemoveNamespace) Run(ctx context.Context, env *Env, out *Output) error {
	s := env.Settings
	p, err := n.plan(ctx, env)
	if err != nil {
		return err
	}
	kc := env.Client.Kube.CoreV1()
	dctx, cancel := k8s.WithTimeout(ctx)
	defer cancel()
	if p.sa {
		if err := kc.ServiceAccounts(s.Namespace).Delete(dctx, s.ServiceAccount, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting service account %s/%s: %w", s.Namespace, s.ServiceAccount, err)
		}
		out.Created(serviceAccountKey(s), false)
		out.Summary("deleted service account %s", s.ServiceAccount)
	}
	if p.ns {
		if err := kc.Namespaces().Delete(dctx, s.Namespace, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting namespace %s: %w", s.Namespace, err)
		}
		out.Created(namespaceKey(s), false)
		out.Summary("deleted namespace %s", s.Namespace)
	}
	if len(p.kept) > 0 {
		out.Summary("kept %s", strings.Join(p.kept, "; "))
	}
	return nil
}

// RemoveExposure deletes the Gateways and VirtualService that expose istiod
// (--all): other VMs of the mesh may still need them, so only when asked.
type RemoveExposure struct{}

func (RemoveExposure) Name() string  { return "remove-expose-istiod" }
func (RemoveExposure) Title() string { return "Delete istiod's exposure through the gateway" }

// ours lists the exposure's objects that are in the cluster and vm2mesh's;
// kept names those another tool wrote.
func (RemoveExposure) ours(ctx context.Context, env *Env) (ours []*unstructured.Unstructured, kept []string, err error) {
	objs, err := ExposeIstiod{}.objects(env)
	if err != nil {
		return nil, nil, err
	}
	for _, o := range objs {
		if o.GetKind() == "Namespace" { // the network label: harmless, and the namespace is Istio's
			continue
		}
		ri, ok, err := istioResource(env, o.GetKind(), o.GetNamespace())
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			continue
		}
		gctx, cancel := k8s.WithTimeout(ctx)
		live, err := ri.Get(gctx, o.GetName(), metav1.GetOptions{})
		cancel()
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return nil, nil, err
		case managedByUs(live):
			ours = append(ours, live)
		default:
			kept = append(kept, k8s.Describe(live)+" (not applied by vm2mesh)")
		}
	}
	return ours, kept, nil
}

func (r RemoveExposure) Check(ctx context.Context, env *Env) (Status, error) {
	ours, kept, err := r.ours(ctx, env)
	if err != nil {
		return Status{}, err
	}
	if len(ours) == 0 {
		reason := "none of istiod-gateway, istiod-vs, cross-network-gateway is vm2mesh's in the cluster"
		if len(kept) > 0 {
			reason += "; kept " + strings.Join(kept, ", ")
		}
		return Status{Skip: true, Reason: reason}, nil
	}
	var d []string
	for _, o := range ours {
		d = append(d, k8s.Describe(o))
	}
	return Status{Reason: strings.Join(d, ", ")}, nil
}

func (RemoveExposure) Plan(env *Env) ([]Action, error) {
	s := env.Settings
	argv := kubectlArgv(env, "delete", "-n", s.IstioNamespace, "gateway.networking.istio.io/istiod-gateway", "virtualservice.networking.istio.io/istiod-vs")
	if s.MultiNetwork() {
		argv = kubectlArgv(env, "delete", "-n", s.IstioNamespace, "gateway.networking.istio.io/istiod-gateway", "virtualservice.networking.istio.io/istiod-vs", "gateway.networking.istio.io/cross-network-gateway")
	}
	return []Action{{Kind: Command, Title: "delete those vm2mesh applied (through the API)", Argv: argv}}, nil
}

func (r RemoveExposure) Run(ctx context.Context, env *Env, out *Output) error {
	ours, kept, err := r.ours(ctx, env)
	if err != nil {
		return err
	}
	for _, o := range ours {
		ri, _, err := istioResource(env, o.GetKind(), o.GetNamespace())
		if err != nil {
			return err
		}
		if err := deleteObject(ctx, ri, o.GetName()); err != nil {
			return err
		}
		out.Logf("deleted %s", k8s.Describe(o))
	}
	out.Summary("deleted %d objects", len(ours))
	if len(kept) > 0 {
		out.Summary("kept %s", strings.Join(kept, ", "))
	}
	return nil
}

// eastWestSelector picks what `istioctl install -f eastwest.yaml` made, as
// `istioctl uninstall -f eastwest.yaml` prunes it: the IstioOperator's name
// and the gateways' component label.
const eastWestSelector = "install.operator.istio.io/owning-resource=eastwest,operator.istio.io/component=IngressGateways"

// eastWestKinds are the namespaced kinds istioctl's uninstall prunes.
var eastWestKinds = []schema.GroupVersionResource{
	{Group: "apps", Version: "v1", Resource: "deployments"},
	{Group: "apps", Version: "v1", Resource: "daemonsets"},
	{Version: "v1", Resource: "services"},
	{Version: "v1", Resource: "configmaps"},
	{Version: "v1", Resource: "pods"},
	{Version: "v1", Resource: "secrets"},
	{Version: "v1", Resource: "serviceaccounts"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
	{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"},
	{Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers"},
}

// RemoveEastWest deletes the east-west gateway vm2mesh installed (--all): what
// istioctl installed from eastwest.yaml, or the manifests vm2mesh applied.
// Every VM of the mesh reaches istiod through it.
type RemoveEastWest struct{}

func (RemoveEastWest) Name() string  { return "remove-eastwest-gateway" }
func (RemoveEastWest) Title() string { return "Delete the east-west gateway" }

type labeled struct {
	gvr  schema.GroupVersionResource
	name string
}

func (RemoveEastWest) find(ctx context.Context, env *Env) ([]labeled, error) {
	var found []labeled
	for _, gvr := range eastWestKinds {
		lctx, cancel := k8s.WithTimeout(ctx)
		list, err := env.Client.Dynamic.Resource(gvr).Namespace(env.Settings.IstioNamespace).List(lctx, metav1.ListOptions{LabelSelector: eastWestSelector})
		cancel()
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("listing %s in %s: %w", gvr.Resource, env.Settings.IstioNamespace, err)
		}
		for _, it := range list.Items {
			if it.GetDeletionTimestamp() == nil {
				found = append(found, labeled{gvr, it.GetName()})
			}
		}
	}
	applied, err := appliedEastWest(ctx, env)
	if err != nil {
		return nil, err
	}
	for _, a := range applied {
		if !slices.Contains(found, a) {
			found = append(found, a)
		}
	}
	return found, nil
}

// appliedEastWest finds the gateway's objects vm2mesh server-side applied from
// eastwest-gateway.yaml (eastwestInstall: manifests): those its field manager
// wrote, by the names the manifests give them.
func appliedEastWest(ctx context.Context, env *Env) ([]labeled, error) {
	s := env.Settings
	m, err := assets.Render(eastWestManifestsFile, map[string]any{
		"IstioNamespace": s.IstioNamespace, "Revision": orDefault(s.Revision), "ClusterNetwork": s.ClusterNetwork,
	})
	if err != nil {
		return nil, err
	}
	objs, err := k8s.ParseObjects(m)
	if err != nil {
		return nil, err
	}
	var found []labeled
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		mapping, err := env.Client.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		gctx, cancel := k8s.WithTimeout(ctx)
		live, err := env.Client.Dynamic.Resource(mapping.Resource).Namespace(o.GetNamespace()).Get(gctx, o.GetName(), metav1.GetOptions{})
		cancel()
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return nil, err
		case managedByUs(live) && live.GetDeletionTimestamp() == nil:
			found = append(found, labeled{mapping.Resource, o.GetName()})
		}
	}
	return found, nil
}

func describeLabeled(l []labeled) string {
	var d []string
	for _, o := range l {
		d = append(d, o.gvr.Resource+"/"+o.name)
	}
	return strings.Join(d, ", ")
}

func (r RemoveEastWest) Check(ctx context.Context, env *Env) (Status, error) {
	found, err := r.find(ctx, env)
	if err != nil {
		return Status{}, err
	}
	if len(found) == 0 {
		return Status{Skip: true, Reason: fmt.Sprintf("nothing in %s is labeled %s or was applied by vm2mesh from %s (a gateway installed with helm: helm uninstall -n %s istio-eastwestgateway)",
			env.Settings.IstioNamespace, eastWestSelector, eastWestManifestsFile, env.Settings.IstioNamespace)}, nil
	}
	return Status{Reason: describeLabeled(found)}, nil
}

func (RemoveEastWest) Plan(env *Env) ([]Action, error) {
	var kinds []string
	for _, k := range eastWestKinds {
		kinds = append(kinds, k.Resource)
	}
	return []Action{
		{Kind: Command, Title: "delete what istioctl installed from eastwest.yaml, as istioctl uninstall -f eastwest.yaml prunes it (through the API)",
			Argv: kubectlArgv(env, "delete", "-n", env.Settings.IstioNamespace, strings.Join(kinds, ","), "-l", eastWestSelector)},
		{Kind: Note, Title: "manifests", Body: "and the objects of " + eastWestManifestsFile + " that vm2mesh applied (its field manager wrote them)"},
	}, nil
}

func (r RemoveEastWest) Run(ctx context.Context, env *Env, out *Output) error {
	found, err := r.find(ctx, env)
	if err != nil {
		return err
	}
	for _, o := range found {
		if err := deleteObject(ctx, env.Client.Dynamic.Resource(o.gvr).Namespace(env.Settings.IstioNamespace), o.name); err != nil {
			return err
		}
		out.Logf("deleted %s/%s", o.gvr.Resource, o.name)
	}
	out.Summary("deleted %d objects of the gateway", len(found))
	return nil
}

// LeftInCluster says what remove never deletes and how to, for the summary.
func LeftInCluster(env *Env, all bool) []string {
	s := env.Settings
	var left []string
	if !all {
		left = append(left,
			"istiod's exposure (Gateway istiod-gateway, VirtualService istiod-vs; cross-network-gateway when multi-network) and the east-west gateway: other VMs may use them; vm2mesh remove --all deletes them")
	}
	left = append(left,
		fmt.Sprintf("the control plane: %s (or, installed with helm: helm uninstall -n %s istiod; helm uninstall -n %s istio-base)",
			ShellJoin(env.IstioctlArgv("uninstall", "--purge")), s.IstioNamespace, s.IstioNamespace))
	return left
}
