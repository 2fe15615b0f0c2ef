package app_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/vm2mesh/vm2mesh/internal/testvm"
)

var (
	workloadEntries = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "workloadentries"}
	workloadGroups  = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "workloadgroups"}
)

// autoregisteredEntryStandIn makes the WorkloadEntry istiod's autoregistration
// would make for a proxy of group demo at address (no istiod runs here).
func autoregisteredEntryStandIn(t *testing.T, ns, address string) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	we := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry",
		"metadata": map[string]any{
			"name": "demo-" + address, "namespace": ns,
			"annotations": map[string]any{"istio.io/autoRegistrationGroup": "demo", "istio.io/workloadController": "istiod-stand-in"},
			"labels":      map[string]any{"app": "demo"},
		},
		"spec": map[string]any{"address": address, "serviceAccount": "vm", "labels": map[string]any{"app": "demo"}},
	}}
	if _, err := dyn.Resource(workloadEntries).Namespace(ns).Create(context.Background(), we, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// clusterObjects says which of the objects onboarding makes are in ns: the
// namespace (a terminating one counts as gone: no controller finalizes it
// here), the service account, the WorkloadGroup and each WorkloadEntry.
func clusterObjects(t *testing.T, ns string) []string {
	t.Helper()
	ctx := context.Background()
	k := cluster.Kube(t)
	var have []string
	n, err := k.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		t.Fatal(err)
	case n.DeletionTimestamp != nil:
		return []string{"namespace terminating"}
	}
	have = append(have, "namespace")
	if _, err := k.CoreV1().ServiceAccounts(ns).Get(ctx, "vm", metav1.GetOptions{}); err == nil {
		have = append(have, "serviceaccount/vm")
	}
	dyn, _ := dynamic.NewForConfig(cluster.Config)
	if _, err := dyn.Resource(workloadGroups).Namespace(ns).Get(ctx, "demo", metav1.GetOptions{}); err == nil {
		have = append(have, "workloadgroup/demo")
	}
	list, err := dyn.Resource(workloadEntries).Namespace(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, we := range list.Items {
		have = append(have, "workloadentry/"+we.GetName())
	}
	return have
}

// vmState is what onboarding changes on the VM, as text to compare.
func vmState(t *testing.T, vm *testvm.VM) string {
	t.Helper()
	return vm.MustExec(t, `dpkg -s istio-sidecar >/dev/null 2>&1 && echo package installed || echo no package
for f in /etc/certs/root-cert.pem /var/run/secrets/tokens/istio-token /var/lib/istio/envoy/cluster.env /etc/istio/config/mesh /etc/certs/cert-chain.pem /etc/certs/key.pem /var/lib/vm2mesh; do
	if [ -e $f ] || [ -L $f ]; then echo "$f there"; fi
done
pgrep -f '^/bin/sh /usr/local/bin/istio-start[.]sh' >/dev/null && echo agent running || echo no agent
echo hosts:; cat /etc/hosts`)
}

func TestRemoveUndoesApplyAndASecondRemoveChangesNothing(t *testing.T) {
	testvm.Skip(t)
	vm := testvm.Start(t, testvm.Options{})
	// Lines of the VM's own, one of them ending in CRLF: each must come back byte for byte.
	vm.MustExec(t, `printf '127.0.0.1\tlocalhost\n10.1.2.3 db.internal db   # the database\r\n::1 localhost ip6-localhost\n' > /etc/hosts`)
	before := vmState(t, vm)
	path, workDir, ns := onboardingAnswers(t, vm, vmCase{user: "root"})
	if r := run(t, nil, "apply", "-f", path, "--yes", "--only", "vm"); r.code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	autoregisteredEntryStandIn(t, ns, vm.Addr)
	onboardedVM := vmState(t, vm)
	onboardedCluster := clusterObjects(t, ns)
	if want := "namespace serviceaccount/vm workloadgroup/demo workloadentry/demo-" + vm.Addr; strings.Join(onboardedCluster, " ") != want {
		t.Fatalf("cluster after apply: %v, want %s", onboardedCluster, want)
	}

	r := run(t, nil, "remove", "-f", path, "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, filepath.Join(workDir, "remove-plan.sh")) {
		t.Fatalf("dry run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	plan, _ := os.ReadFile(filepath.Join(workDir, "remove-plan.sh"))
	for _, want := range []string{"vm2mesh remove", "dpkg -r istio-sidecar", "kubectl delete workloadgroup demo -n " + ns, "kubectl delete namespace " + ns} {
		if !strings.Contains(string(plan), want) {
			t.Errorf("remove-plan.sh lacks %q:\n%s", want, plan)
		}
	}
	if got := vmState(t, vm); got != onboardedVM {
		t.Errorf("the dry run changed the VM:\n%s\nwas\n%s", got, onboardedVM)
	}
	if got := clusterObjects(t, ns); strings.Join(got, " ") != strings.Join(onboardedCluster, " ") {
		t.Errorf("the dry run changed the cluster: %v", got)
	}

	r = run(t, nil, "remove", "-f", path)
	if r.code != 1 || !strings.Contains(r.stderr, "add --yes") {
		t.Errorf("remove without --yes and no terminal: exit %d\n%s", r.code, r.stderr)
	}

	r = run(t, nil, "remove", "-f", path, "--yes")
	if r.code != 0 {
		t.Fatalf("remove: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Log(r.stdout)
	for _, want := range []string{"✓ Stop the Istio agent", "✓ Remove the sidecar package", "deleted WorkloadEntry " + ns + "/demo-" + vm.Addr,
		"deleted WorkloadGroup " + ns + "/demo", "deleted namespace " + ns, "istioctl uninstall --purge"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if got := vmState(t, vm); got != before {
		t.Errorf("the VM after remove:\n%q\nbefore apply:\n%q", got, before)
	}
	if got := clusterObjects(t, ns); len(got) != 0 && strings.Join(got, " ") != "namespace terminating" {
		t.Errorf("the cluster after remove: %v", got)
	}

	r = run(t, nil, "remove", "-f", path, "--yes")
	if r.code != 0 || !strings.Contains(r.stdout, "nothing changed") || strings.Contains(r.stdout, " → ") {
		t.Errorf("second remove: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := vmState(t, vm); got != before {
		t.Errorf("the VM after a second remove:\n%s", got)
	}
}

func TestRemoveKeepsWhatIsNotVM2meshs(t *testing.T) {
	testvm.Skip(t)
	vm := testvm.Start(t, testvm.Options{})
	before := vmState(t, vm)
	path, workDir, ns := onboardingAnswers(t, vm, vmCase{user: "root"})
	if r := run(t, nil, "apply", "-f", path, "--yes", "--only", "vm"); r.code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// Another VM registered from the same group, and an object of someone else's.
	autoregisteredEntryStandIn(t, ns, "192.0.2.77")
	cluster.CreateConfigMap(t, ns, "not-vm2mesh", map[string]string{"k": "v"})

	r := run(t, nil, "remove", "-f", path, "--yes", "--only", "vm")
	if r.code != 0 {
		t.Fatalf("remove --only vm: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := vmState(t, vm); got != before {
		t.Errorf("the VM after remove --only vm:\n%s\nbefore:\n%s", got, before)
	}
	if got, want := strings.Join(clusterObjects(t, ns), " "), "namespace serviceaccount/vm workloadgroup/demo workloadentry/demo-192.0.2.77"; got != want {
		t.Errorf("remove --only vm changed the cluster: %s", got)
	}
	// The VM comes back as it left.
	if r := run(t, nil, "apply", "-f", path, "--yes", "--only", "vm"); r.code != 0 {
		t.Fatalf("apply after remove: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertOnboarded(t, vm, workDir)
	if r := run(t, nil, "remove", "-f", path, "--yes", "--only", "vm"); r.code != 0 {
		t.Fatalf("second remove --only vm: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := vmState(t, vm); got != before {
		t.Errorf("the VM after the second remove --only vm:\n%s\nbefore:\n%s", got, before)
	}

	r = run(t, nil, "remove", "-f", path, "--yes", "--only", "cluster")
	if r.code != 0 {
		t.Fatalf("remove --only cluster: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Log(r.stdout)
	for _, want := range []string{"kept: other VMs are registered from it (demo-192.0.2.77)", "ConfigMap/not-vm2mesh",
		"kept service account vm, the identity of WorkloadEntry/demo-192.0.2.77, WorkloadGroup/demo"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if got, want := strings.Join(clusterObjects(t, ns), " "), "namespace serviceaccount/vm workloadgroup/demo workloadentry/demo-192.0.2.77"; got != want {
		t.Errorf("the cluster after remove: %s, want %s", got, want)
	}
	if _, err := cluster.Kube(t).CoreV1().ConfigMaps(ns).Get(context.Background(), "not-vm2mesh", metav1.GetOptions{}); err != nil {
		t.Errorf("the unrelated ConfigMap: %v", err)
	}
}

// A compromised istio-proxy plants links where remove deletes: remove runs there
// as istio-proxy, so root's files are never reached.
func TestRemoveNeverFollowsIstioProxysLinks(t *testing.T) {
	testvm.Skip(t)
	vm := testvm.Start(t, testvm.Options{})
	path, _, _ := onboardingAnswers(t, vm, vmCase{user: "root"})
	if r := run(t, nil, "apply", "-f", path, "--yes", "--only", "vm"); r.code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	vm.MustExec(t, `umask 077; echo precious > /root/precious; mkdir -p /root/dir; echo precious > /root/dir/istio-token
setpriv --reuid="$(id -u istio-proxy)" --regid="$(id -g istio-proxy)" --clear-groups sh -c '
	ln -sf /root/precious /var/lib/istio/envoy/cluster.env
	rm -rf /var/run/secrets/tokens && ln -s /root/dir /var/run/secrets/tokens'`)
	r := run(t, nil, "remove", "-f", path, "--yes", "--only", "vm")
	if r.code != 0 {
		t.Fatalf("remove: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := vm.MustExec(t, "cat /root/precious /root/dir/istio-token; stat -c '%U %a' /root/precious /root/dir/istio-token"); got != "precious\nprecious\nroot 600\nroot 600\n" {
		t.Errorf("root's files after remove:\n%s", got)
	}
	if got := vm.MustExec(t, "[ -e /var/lib/istio/envoy/cluster.env ] || [ -L /var/lib/istio/envoy/cluster.env ] && echo there; dpkg -s istio-sidecar >/dev/null 2>&1 && echo installed; true"); got != "" {
		t.Errorf("after remove: %s", got)
	}
}

func TestRemoveRHELVMWithPasswordlessSudo(t *testing.T) {
	testvm.Skip(t)
	vm := testvm.Start(t, testvm.Options{Family: testvm.RHEL, ProvidesRPM: standInPackages(t).BaseProvidesRPM})
	hosts := vm.MustExec(t, "cat /etc/hosts")
	path, _, _ := onboardingAnswers(t, vm, vmCase{family: testvm.RHEL, user: testvm.UserNoPasswordSudo})
	if r := run(t, nil, "apply", "-f", path, "--yes", "--only", "vm"); r.code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r := run(t, nil, "remove", "-f", path, "--yes", "--only", "vm")
	if r.code != 0 || !strings.Contains(r.stdout, "removed istio-sidecar") {
		t.Fatalf("remove: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	got := vm.MustExec(t, `rpm -q istio-sidecar >/dev/null 2>&1 && echo installed
for f in /etc/certs/root-cert.pem /var/run/secrets/tokens/istio-token /var/lib/istio/envoy/cluster.env /etc/istio/config/mesh /var/lib/vm2mesh; do [ -e $f ] && echo "$f there"; done
pgrep -f '^/bin/sh /usr/local/bin/istio-start[.]sh' >/dev/null && echo agent running; true`)
	if got != "" {
		t.Errorf("after remove:\n%s", got)
	}
	if got := vm.MustExec(t, "cat /etc/hosts"); got != hosts {
		t.Errorf("/etc/hosts after remove:\n%q\nbefore:\n%q", got, hosts)
	}
}

// A remove that stopped resumes: what it already removed is skipped.
func TestRemoveResumesWhereItStopped(t *testing.T) {
	testvm.Skip(t)
	vm := testvm.Start(t, testvm.Options{})
	path, _, _ := onboardingAnswers(t, vm, vmCase{user: "root"})
	if r := run(t, nil, "apply", "-f", path, "--yes", "--only", "vm"); r.code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// vm2mesh's directory no longer root's: the last VM step refuses it.
	vm.MustExec(t, "chown nobody /var/lib/vm2mesh")
	r := run(t, nil, "remove", "-f", path, "--yes", "--only", "vm")
	if r.code != 1 || !strings.Contains(r.stdout, "✗ Remove /var/lib/vm2mesh") || !strings.Contains(r.stdout, "is not root's directory") {
		t.Fatalf("remove: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	vm.MustExec(t, "chown root /var/lib/vm2mesh")
	r = run(t, nil, "remove", "-f", path, "--yes", "--only", "vm")
	if r.code != 0 || !strings.Contains(r.stdout, "resuming: the last run failed at vm-remove-state") ||
		!strings.Contains(r.stdout, "done: 1 steps ran, 5 skipped") {
		t.Fatalf("resumed remove: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := vm.MustExec(t, "ls -d /var/lib/vm2mesh 2>/dev/null; true"); got != "" {
		t.Errorf("left: %s", got)
	}
}
