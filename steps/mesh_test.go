package steps_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vm2mesh/vm2mesh/internal/meshtest"
	"github.com/vm2mesh/vm2mesh/internal/testcluster"
	"github.com/vm2mesh/vm2mesh/k8s"
	"github.com/vm2mesh/vm2mesh/steps"
)

func deleteDeployment(t *testing.T, ns, name string) {
	meshtest.DeleteDeployment(t, cluster.Kube(t), ns, name)
}

// helmMesh makes istiod-<rev> of each revision in a namespace of its own, as
// Helm installs it, and returns the namespace.
func helmMesh(t *testing.T, revisions map[string]string, env ...corev1.EnvVar) string {
	t.Helper()
	ns := testcluster.UniqueName("istio-helm")
	for rev, version := range revisions {
		meshtest.HelmIstiod(ns, rev, "docker.io/istio/pilot:"+version, env...).Create(t, cluster.Kube(t))
	}
	return ns
}

// TestAutoKeepsARevisionedIstiodAlone: with istiod-canary the only istiod of
// the cluster, installIstio: auto installs no control plane and runs no
// istioctl: the plan and plan.sh hold no istioctl install, and the steps work
// with revision canary.
func TestAutoKeepsARevisionedIstiodAlone(t *testing.T) {
	istioCRDs(t)
	istioctl, record := istioctlStandIn(t, "1.31.1")
	ns := helmMesh(t, map[string]string{"canary": "1.31.1"})
	s := settings(t, ns, testcluster.UniqueName("vm"))
	s.InstallIstio, s.Istioctl, s.GatewayAddress = steps.InstallAuto, istioctl, ""
	env := prepare(t, s)
	if env.Istioctl.Path != "" {
		t.Errorf("istioctl was looked for, as if something would be installed with it: %+v", env.Istioctl)
	}
	if env.Revision() != "canary" || env.Istiod.Name != "istiod-canary" {
		t.Errorf("revision %q, istiod %+v", env.Revision(), env.Istiod)
	}
	st, err := steps.ControlPlane{}.Check(context.Background(), env)
	if err != nil || !st.Skip || !strings.Contains(st.Reason, "istiod 1.31.1 already runs and is kept: revision canary in "+ns+", installed by Helm release istiod-canary") {
		t.Errorf("control plane: %+v %v", st, err)
	}

	r := &steps.Runner{Steps: steps.ClusterSteps(), Env: env}
	if _, err := r.DryRun(context.Background()); err != nil {
		t.Fatal(err)
	}
	plan, _ := os.ReadFile(filepath.Join(env.WorkDir, "plan.sh"))
	for _, line := range strings.Split(string(plan), "\n") {
		if strings.Contains(line, istioctl) && strings.Contains(line, " install ") {
			t.Errorf("plan.sh runs istioctl install: %s", line)
		}
	}
	for _, want := range []string{
		"kubectl apply --server-side --field-manager=vm2mesh -f " + env.File("eastwest-gateway.yaml"),
		"helm install istio-eastwestgateway istio/gateway -n " + ns + " --version 1.31.1 --set revision=canary",
		"from the " + ns + "/istio-canary mesh config", "-> istiod-canary." + ns + ".svc",
	} {
		if !strings.Contains(string(plan), want) {
			t.Errorf("plan.sh lacks %q:\n%s", want, plan)
		}
	}
	expose, _ := os.ReadFile(env.File("expose-istiod.yaml"))
	if !strings.Contains(string(expose), "istiod-canary."+ns+".svc.cluster.local") {
		t.Errorf("istiod-vs routes to another istiod:\n%s", expose)
	}
	if _, err := os.Stat(env.File("vm-cluster.yaml")); err == nil {
		t.Error("the control plane's IstioOperator was written")
	}
	if _, err := os.Stat(record + ".args"); err == nil {
		t.Error("istioctl ran")
	}
}

// TestSeveralRevisionsAskForOneAndTagsResolve: two revisions and no revision
// is an error naming both with their versions; a tag is taken for the
// revision it points at; a name that is neither lists what there is.
func TestSeveralRevisionsAskForOneAndTagsResolve(t *testing.T) {
	ns := helmMesh(t, map[string]string{"canary": "1.31.1", "stable": "1.30.2"})
	kube := cluster.Kube(t)
	meshtest.Injector(t, kube, ns, "canary", "prod")
	s := settings(t, ns, "vm")
	s.InstallIstio = steps.InstallAuto
	s.GatewayAddress = "192.0.2.10"

	_, err := steps.Prepare(context.Background(), s, k8s.Options{})
	want := []string{"revision: is empty, but the cluster runs several Istio revisions",
		"canary (istiod 1.31.1 in " + ns + ", Helm release istiod-canary)", "stable (istiod 1.30.2 in " + ns + ", Helm release istiod-stable)",
		"prod -> canary (istiod 1.31.1)", "set revision to the one the VM joins"}
	for _, w := range want {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("no revision: error %v lacks %q", err, w)
		}
	}

	s.Revision = "prod"
	env := prepare(t, s)
	if env.Revision() != "canary" || env.Istiod.Name != "istiod-canary" || env.Istiod.Version != "1.31.1" {
		t.Errorf("revision prod: %q, istiod %+v", env.Revision(), env.Istiod)
	}
	s.Revision = "stable"
	if env := prepare(t, s); env.Revision() != "stable" || env.Istiod.Version != "1.30.2" {
		t.Errorf("revision stable: %q, istiod %+v", env.Revision(), env.Istiod)
	}

	s.Revision = "1-32"
	_, err = steps.Prepare(context.Background(), s, k8s.Options{})
	for _, w := range []string{`revision: "1-32" is neither a revision nor a tag`, "canary (istiod 1.31.1", "stable (istiod 1.30.2", "prod -> canary"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("unknown revision: error %v lacks %q", err, w)
		}
	}

	// The revision runs, but not in istioNamespace: nothing is installed beside it.
	s.Revision, s.IstioNamespace = "canary", testcluster.UniqueName("istio-elsewhere")
	_, err = steps.Prepare(context.Background(), s, k8s.Options{})
	if err == nil || !strings.Contains(err.Error(), "istioNamespace: "+s.IstioNamespace+" runs no istiod of revision canary, which runs in "+ns+"; set istioNamespace to "+ns) {
		t.Errorf("other namespace: %v", err)
	}
}

// TestAutoregistrationNoteOnlyWhenIstiodTurnsItOff: istiod's default is on, so
// an istiod whose env does not set it gets no note.
func TestAutoregistrationNoteOnlyWhenIstiodTurnsItOff(t *testing.T) {
	const note = "PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION is false, so no WorkloadEntry will appear"
	for _, tc := range []struct {
		name string
		env  []corev1.EnvVar
		note bool
	}{
		{"unset", nil, false},
		{"true", []corev1.EnvVar{{Name: "PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION", Value: "true"}}, false},
		{"false", []corev1.EnvVar{{Name: "PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION", Value: "false"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := helmMesh(t, map[string]string{"": "1.31.1"}, tc.env...)
			s := settings(t, ns, "vm")
			s.InstallIstio = steps.InstallAuto
			env := prepare(t, s)
			st, err := steps.ControlPlane{}.Check(context.Background(), env)
			if err != nil || !st.Skip {
				t.Fatalf("%+v %v", st, err)
			}
			if got := strings.Contains(st.Reason, note); got != tc.note {
				t.Errorf("note %v, want %v: %s", got, tc.note, st.Reason)
			}
		})
	}
}

// TestEastWestByManifestsBesideHelm installs the gateway on a mesh Helm
// manages without istioctl: the plan shows the manifests and the helm
// command, and the objects are vm2mesh's (server-side apply).
func TestEastWestByManifestsBesideHelm(t *testing.T) {
	istioctl, record := istioctlStandIn(t, "1.31.1")
	ns := helmMesh(t, map[string]string{"canary": "1.31.1"})
	s := settings(t, ns, "vm")
	s.InstallIstio, s.Istioctl, s.GatewayAddress = steps.InstallAuto, istioctl, ""
	s.ClusterNetwork, s.VMNetwork = "kube-network", "vm-network"
	old := steps.GatewayWait
	steps.GatewayWait = 20 * time.Second
	t.Cleanup(func() { steps.GatewayWait = old })
	env := prepare(t, s)
	if env.EastWestMethod() != steps.EastWestManifests || env.Istioctl.Path != "" {
		t.Fatalf("method %s, istioctl %+v", env.EastWestMethod(), env.Istioctl)
	}

	acts, err := steps.EastWestGateway{}.Plan(env)
	if err != nil {
		t.Fatal(err)
	}
	var shown strings.Builder
	for _, a := range acts {
		shown.WriteString(string(a.Kind) + " " + a.Title + "\n" + a.Body + "\n" + steps.ShellJoin(a.Argv) + "\n")
	}
	for _, want := range []string{
		"manifest Deployment, Service, ServiceAccount, Role and RoleBinding istio-eastwestgateway (gateway injection, revision canary)",
		"inject.istio.io/templates: gateway", `istio.io/rev: "canary"`, "image: auto", `topology.istio.io/network: "kube-network"`,
		"ISTIO_META_REQUESTED_NETWORK_VIEW", "port: 15012", "port: 15017", "type: LoadBalancer",
		"kubectl apply --server-side --field-manager=vm2mesh",
		"note or let Helm own it", "Helm manages istiod here (Helm release istiod-canary)",
		"helm install istio-eastwestgateway istio/gateway -n " + ns + " --version 1.31.1 --set revision=canary --set labels.istio=eastwestgateway --set labels.app=istio-eastwestgateway --set networkGateway=kube-network",
	} {
		if !strings.Contains(shown.String(), want) {
			t.Errorf("the plan lacks %q:\n%s", want, shown.String())
		}
	}

	// No controller or cloud here: the test gives the Service its address.
	go func() {
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if err := cluster.SetLoadBalancerIngress(ns, steps.EastWestService, []corev1.LoadBalancerIngress{{IP: "192.0.2.88"}}); err == nil {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Error("the gateway Service never appeared")
	}()
	rec, err := run(t, env, steps.EastWestGateway{})
	if err != nil {
		t.Fatal(err)
	}
	if done := rec.text(steps.Done); !strings.Contains(done, "gateway address 192.0.2.88 (LoadBalancer IP)") {
		t.Errorf("done: %s", done)
	}
	ctx := context.Background()
	kube := cluster.Kube(t)
	d, err := kube.AppsV1().Deployments(ns).Get(ctx, steps.EastWestService, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := d.Spec.Template
	if pod.Annotations["inject.istio.io/templates"] != "gateway" || pod.Labels["sidecar.istio.io/inject"] != "true" || pod.Labels["istio.io/rev"] != "canary" ||
		pod.Labels["istio"] != "eastwestgateway" || pod.Labels["topology.istio.io/network"] != "kube-network" || pod.Spec.Containers[0].Image != "auto" ||
		pod.Spec.ServiceAccountName != "istio-eastwestgateway" {
		t.Errorf("gateway pod template: %+v", pod)
	}
	svc, err := kube.CoreV1().Services(ns).Get(ctx, steps.EastWestService, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ports []string
	for _, p := range svc.Spec.Ports {
		ports = append(ports, p.Name+":"+p.TargetPort.String())
	}
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || strings.Join(ports, " ") != "status-port:15021 tls:15443 tls-istiod:15012 tls-webhook:15017" {
		t.Errorf("service %s ports %v", svc.Spec.Type, ports)
	}
	managers := map[string]metav1.ObjectMeta{"Deployment": d.ObjectMeta, "Service": svc.ObjectMeta}
	sa, err := kube.CoreV1().ServiceAccounts(ns).Get(ctx, "istio-eastwestgateway", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	managers["ServiceAccount"] = sa.ObjectMeta
	role, err := kube.RbacV1().Roles(ns).Get(ctx, "istio-eastwestgateway-sds", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(role.Rules) != 1 || strings.Join(role.Rules[0].Verbs, ",") != "get,watch,list" || role.Rules[0].Resources[0] != "secrets" {
		t.Errorf("role rules %+v", role.Rules)
	}
	managers["Role"] = role.ObjectMeta
	binding, err := kube.RbacV1().RoleBindings(ns).Get(ctx, "istio-eastwestgateway-sds", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if binding.Subjects[0].Name != "istio-eastwestgateway" || binding.RoleRef.Name != "istio-eastwestgateway-sds" {
		t.Errorf("role binding %+v", binding)
	}
	managers["RoleBinding"] = binding.ObjectMeta
	for kind, m := range managers {
		applied := false
		for _, f := range m.ManagedFields {
			applied = applied || (f.Manager == k8s.FieldManager && f.Operation == metav1.ManagedFieldsOperationApply)
		}
		if !applied {
			t.Errorf("%s is not server-side applied by %s: %+v", kind, k8s.FieldManager, m.ManagedFields)
		}
	}
	if _, err := os.Stat(record + ".args"); err == nil {
		t.Error("istioctl ran")
	}
	if st, err := (steps.EastWestGateway{}).Check(ctx, env); err != nil || !st.Skip {
		t.Errorf("after install: %+v %v", st, err)
	}
}

// TestEastWestNoneNeedsAGatewayOrAnAddress: eastwestInstall: none installs
// nothing, so a run without the gateway and without gatewayAddress is refused
// before anything changes.
func TestEastWestNoneNeedsAGatewayOrAnAddress(t *testing.T) {
	ns := helmMesh(t, map[string]string{"canary": "1.31.1"})
	s := settings(t, ns, "vm")
	s.InstallIstio, s.EastWestInstall, s.GatewayAddress = steps.InstallAuto, steps.EastWestNone, ""
	_, err := steps.Prepare(context.Background(), s, k8s.Options{})
	if err == nil || !strings.Contains(err.Error(), "eastwestInstall: is none, but there is no service "+ns+"/istio-eastwestgateway and gatewayAddress is empty") {
		t.Errorf("none without a gateway: %v", err)
	}
	s.GatewayAddress = "192.0.2.10"
	env := prepare(t, s)
	if st, err := (steps.EastWestGateway{}).Check(context.Background(), env); err != nil || !st.Skip || !strings.Contains(st.Reason, "VMs use gatewayAddress 192.0.2.10") {
		t.Errorf("none with gatewayAddress: %+v %v", st, err)
	}
}
