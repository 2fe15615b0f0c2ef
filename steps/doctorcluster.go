package steps

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/vm2mesh/vm2mesh/k8s"
)

// The cluster's half of doctor: every call is a read, bounded by its check's deadline.

// Istio's networking resources, at the version vm2mesh's manifests use.
var (
	gatewayGVR        = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1alpha3", Resource: "gateways"}
	virtualServiceGVR = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1alpha3", Resource: "virtualservices"}
	workloadGroupGVR  = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1alpha3", Resource: "workloadgroups"}
)

// The ports the east-west gateway needs for VMs: istiod's XDS/CA and the mesh's mTLS.
var gatewayPorts = []int32{15012, 15443}

const fixCluster = "run vm2mesh apply -f answers.yaml --only cluster to create it"

func checkClusterAPI(ctx context.Context, d *doctor) CheckResult {
	c, err := k8s.New(clusterOptions(d.env.Settings, d.o))
	if err != nil {
		return failed("check kubeconfig and kubeContext in the answers file (or --kubeconfig, --context)", "%v", err)
	}
	version, err := c.Ping(ctx)
	if err != nil {
		return failed("check that the cluster runs, the kubeconfig points at it and its credentials are current (kubectl version)", "%v", err)
	}
	d.env.Client, d.env.ServerVersion = c, version
	return ok("context %q at %s (Kubernetes %s)", c.Context, c.Server, version)
}

func checkIstiod(ctx context.Context, d *doctor) CheckResult {
	s := d.env.Settings
	// revision may be a tag, as apply accepts: doctor looks at the revision it
	// names.
	revision, tag := s.Revision, ""
	if mesh, err := d.env.Client.DiscoverMesh(ctx); err == nil {
		if r, isTag, ok := mesh.Resolve(s.Revision); ok && isTag {
			revision, tag = r, s.Revision
			if r == "default" {
				revision = ""
			}
		}
	}
	info, err := d.env.Client.Istiod(ctx, s.IstioNamespace, revision)
	if err != nil {
		return failed("check that your credentials may read Deployments in "+s.IstioNamespace, "reading istiod: %v", err)
	}
	name := k8s.IstiodDeployment(revision)
	rev := revision
	if rev == "" {
		rev = "default"
	}
	if tag != "" {
		rev += " (tag " + tag + ")"
	}
	if !info.Found {
		return failed("install the control plane: vm2mesh apply --only cluster (installIstio: auto), or fix revision and istioNamespace in the answers file",
			"no Deployment %s/%s (revision %s)", s.IstioNamespace, name, rev)
	}
	d.env.Istiod = info
	version := info.Version
	if version == "" {
		version = "of unknown version (its image has no tag)"
	}
	dep, err := d.env.Client.Kube.AppsV1().Deployments(s.IstioNamespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return failed("check that your credentials may read Deployments in "+s.IstioNamespace, "reading %s/%s: %v", s.IstioNamespace, name, err)
	}
	want := int32(1)
	if dep.Spec.Replicas != nil {
		want = *dep.Spec.Replicas
	}
	if dep.Status.ReadyReplicas == 0 {
		return failed(fmt.Sprintf("kubectl -n %s get pods -l app=istiod shows why; VMs cannot join while istiod is down", s.IstioNamespace),
			"istiod %s, revision %s: Deployment %s/%s has 0 of %d replicas ready", version, rev, s.IstioNamespace, name, want)
	}
	return ok("istiod %s, revision %s, %d of %d replicas ready", version, rev, dep.Status.ReadyReplicas, want)
}

func checkGateway(ctx context.Context, d *doctor) CheckResult {
	s := d.env.Settings
	c := d.env.Client
	cctx, cancel := k8s.WithTimeout(ctx)
	defer cancel()
	svc, err := c.Kube.CoreV1().Services(s.IstioNamespace).Get(cctx, EastWestService, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if s.GatewayAddress != "" {
			return warned("", "no Service %s/%s; the answers file's gatewayAddress %s stands for it", s.IstioNamespace, EastWestService, s.GatewayAddress)
		}
		return failed("install the east-west gateway (vm2mesh apply --only cluster), or set gatewayAddress",
			"no Service %s/%s", s.IstioNamespace, EastWestService)
	}
	if err != nil {
		return failed("check that your credentials may read Services in "+s.IstioNamespace, "reading %s/%s: %v", s.IstioNamespace, EastWestService, err)
	}
	var ports []string
	have := map[int32]bool{}
	for _, p := range svc.Spec.Ports {
		ports = append(ports, strconv.Itoa(int(p.Port)))
		have[p.Port] = true
	}
	var missing []string
	for _, p := range gatewayPorts {
		if !have[p] {
			missing = append(missing, strconv.Itoa(int(p)))
		}
	}
	addr, aerr := c.GatewayAddress(ctx, s.IstioNamespace, EastWestService, d.env.Resolver)
	where := addr.IP + " (" + addr.Source + ")"
	switch {
	case s.GatewayAddress != "":
		where = s.GatewayAddress + " (gatewayAddress)"
	case aerr != nil:
		return failed("give the gateway an external address (a LoadBalancer, externalIPs) or set gatewayAddress", "%v", aerr)
	}
	if len(missing) > 0 {
		return failed("reinstall the east-west gateway with vm2mesh's eastwest.yaml (istioctl install -f it)",
			"gateway %s lacks port %s (has %s)", where, strings.Join(missing, ", "), strings.Join(ports, ", "))
	}
	return ok("gateway %s, ports %s", where, strings.Join(ports, ", "))
}

func checkExposeIstiod(ctx context.Context, d *doctor) CheckResult {
	ns := d.env.Settings.IstioNamespace
	var missing, found []string
	for _, o := range []struct {
		gvr        schema.GroupVersionResource
		kind, name string
	}{{gatewayGVR, "Gateway", "istiod-gateway"}, {virtualServiceGVR, "VirtualService", "istiod-vs"}} {
		_, err := d.get(ctx, o.gvr, ns, o.name)
		switch {
		case apierrors.IsNotFound(err):
			missing = append(missing, o.kind+" "+o.name)
		case err != nil:
			return failed("check that Istio's CRDs are installed and your credentials may read them", "reading %s %s/%s: %v", o.kind, ns, o.name, err)
		default:
			found = append(found, o.kind+" "+o.name)
		}
	}
	if len(missing) > 0 {
		return failed("VMs reach istiod through them: "+fixCluster, "%s missing in %s", strings.Join(missing, " and "), ns)
	}
	return ok("%s in %s", strings.Join(found, " and "), ns)
}

func (d *doctor) get(ctx context.Context, gvr schema.GroupVersionResource, ns, name string) (*unstructured.Unstructured, error) {
	cctx, cancel := k8s.WithTimeout(ctx)
	defer cancel()
	return d.env.Client.Dynamic.Resource(gvr).Namespace(ns).Get(cctx, name, metav1.GetOptions{})
}

func checkNamespace(ctx context.Context, d *doctor) CheckResult {
	s := d.env.Settings
	c := d.env.Client
	nsOK, err := c.NamespaceExists(ctx, s.Namespace)
	if err != nil {
		return failed("check your credentials", "reading namespace %s: %v", s.Namespace, err)
	}
	if !nsOK {
		return failed(fixCluster, "namespace %s does not exist", s.Namespace)
	}
	saOK, err := c.ServiceAccountExists(ctx, s.Namespace, s.ServiceAccount)
	if err != nil {
		return failed("check your credentials", "reading service account %s/%s: %v", s.Namespace, s.ServiceAccount, err)
	}
	if !saOK {
		return failed("the VM's identity is this service account: "+fixCluster, "namespace %s exists, service account %s does not", s.Namespace, s.ServiceAccount)
	}
	return ok("namespace %s, service account %s", s.Namespace, s.ServiceAccount)
}

func checkWorkloadGroup(ctx context.Context, d *doctor) CheckResult {
	s := d.env.Settings
	if !s.Autoregister {
		return skipped("autoregister is off: no WorkloadGroup is applied, the VM's WorkloadEntry is yours to create")
	}
	wg, err := d.get(ctx, workloadGroupGVR, s.Namespace, s.App)
	if apierrors.IsNotFound(err) {
		return failed("istiod registers the VM from it: "+fixCluster, "WorkloadGroup %s/%s not found", s.Namespace, s.App)
	}
	if err != nil {
		return failed("check that Istio's CRDs are installed and your credentials may read them", "reading WorkloadGroup %s/%s: %v", s.Namespace, s.App, err)
	}
	sa, _, _ := unstructured.NestedString(wg.Object, "spec", "template", "serviceAccount")
	if sa != s.ServiceAccount {
		return failed("its service account must be the VM's: "+fixCluster, "WorkloadGroup %s/%s is for service account %q, not %q", s.Namespace, s.App, sa, s.ServiceAccount)
	}
	return ok("WorkloadGroup %s/%s, service account %s", s.Namespace, s.App, sa)
}

// checkWorkloadEntry lists the WorkloadEntries istiod registered for the
// group (k8s.WorkloadEntries), with their health.
func checkWorkloadEntry(ctx context.Context, d *doctor) CheckResult {
	s := d.env.Settings
	// The VM's address, when cluster.env pins it (ISTIO_SVC_IP); else every
	// entry of the group: the VM's own address is known only once it is reached.
	addr, at := svcIP(d.env), ""
	if addr != "" {
		at = " at " + addr
	}
	entries, err := d.env.Client.WorkloadEntries(ctx, s.Namespace, s.App, addr)
	if err != nil {
		return failed("check that Istio's CRDs are installed and your credentials may list WorkloadEntries", "listing WorkloadEntries in %s: %v", s.Namespace, err)
	}
	if len(entries) == 0 {
		// An onboarded VM's agent connected and istiod registered it: none means
		// it is not (or no longer) a member.
		return failed("istiod registers the VM when its agent connects: see the VM's checks below (vm-agent, vm-agent-log)",
			"no WorkloadEntry for group %s%s in %s yet", s.App, at, s.Namespace)
	}
	var texts []string
	unhealthy := false
	for _, w := range entries {
		texts = append(texts, fmt.Sprintf("%s (%s) %s", w.Name, w.Address, w.HealthText()))
		unhealthy = unhealthy || w.Health == "False"
	}
	slices.Sort(texts)
	if unhealthy {
		return failed("the WorkloadGroup's probe fails on the VM: check the app and the probe in workloadgroup.yaml", "%s", strings.Join(texts, "; "))
	}
	return ok("%s", strings.Join(texts, "; "))
}

// svcIP is ISTIO_SVC_IP from the work directory's cluster.env, or "".
func svcIP(env *Env) string {
	b, err := os.ReadFile(env.File("cluster.env"))
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, found := strings.Cut(strings.TrimSpace(l), "="); found && k == "ISTIO_SVC_IP" {
			return strings.Trim(v, `'"`)
		}
	}
	return ""
}
