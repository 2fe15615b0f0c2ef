package app_test

import (
	"context"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/vm2mesh/vm2mesh/internal/testcluster"
)

// clusterOnly runs the cluster half for namespace ns and returns its answers.
func clusterOnly(t *testing.T, ns string) string {
	t.Helper()
	istioInstalled(t)
	cluster.RootCertWriterStandIn(t, "ROOT CERT OF THE MESH", ns)
	path, _ := answers(t, ns)
	if r := run(t, nil, "apply", "-f", path, "--yes"); r.code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	return path
}

func TestRemoveKeepsANamespaceItDidNotCreate(t *testing.T) {
	ns := testcluster.UniqueName("theirs")
	cluster.CreateNamespace(t, ns)
	path := clusterOnly(t, ns)
	r := run(t, nil, "remove", "-f", path, "--yes")
	if r.code != 0 {
		t.Fatalf("remove: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"deleted WorkloadGroup " + ns + "/demo", "deleted service account vm", "kept namespace " + ns + " (vm2mesh's state in workDir does not record creating it)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if got := strings.Join(clusterObjects(t, ns), " "); got != "namespace" {
		t.Errorf("the cluster after remove: %s, want the namespace alone", got)
	}
	r = run(t, nil, "remove", "-f", path, "--yes")
	if r.code != 0 || !strings.Contains(r.stdout, "nothing changed") {
		t.Errorf("second remove: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// The namespace step's record survives answers changed between apply and remove.
func TestRemoveDeletesTheNamespaceItCreatedAfterTheAnswersChanged(t *testing.T) {
	ns := testcluster.UniqueName("changed")
	path := clusterOnly(t, ns)
	rewrite(t, path, "tokenDuration: 3600", "tokenDuration: 7200")
	r := run(t, nil, "remove", "-f", path, "--yes")
	if r.code != 0 || !strings.Contains(r.stdout, "deleted namespace "+ns) {
		t.Fatalf("remove: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

func TestRemoveAllDeletesIstiodsExposureAndTheGatewayOnlyWhenAsked(t *testing.T) {
	ns := testcluster.UniqueName("all")
	path := clusterOnly(t, ns)
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	exposure := func() []string {
		var have []string
		for _, o := range []struct{ res, name string }{{"gateways", "istiod-gateway"}, {"virtualservices", "istiod-vs"}} {
			gvr := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: o.res}
			_, err := dyn.Resource(gvr).Namespace("istio-system").Get(context.Background(), o.name, metav1.GetOptions{})
			if err == nil {
				have = append(have, o.name)
			} else if !apierrors.IsNotFound(err) {
				t.Fatal(err)
			}
		}
		return have
	}
	// What istioctl install -f eastwest.yaml labels (stand-ins: a Service and a
	// ServiceAccount of names of their own), and another object beside them.
	k := cluster.Kube(t)
	sfx := testcluster.UniqueName("")
	gwLabels := map[string]string{"install.operator.istio.io/owning-resource": "eastwest", "operator.istio.io/component": "IngressGateways"}
	meta := func(name string, labels map[string]string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name + sfx, Namespace: "istio-system", Labels: labels}
	}
	ctx := context.Background()
	for _, err := range []error{
		func() error {
			_, err := k.CoreV1().ServiceAccounts("istio-system").Create(ctx, &corev1.ServiceAccount{ObjectMeta: meta("gw-sa", gwLabels)}, metav1.CreateOptions{})
			return err
		}(),
		func() error {
			_, err := k.CoreV1().Services("istio-system").Create(ctx, &corev1.Service{ObjectMeta: meta("gw-svc", gwLabels),
				Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "tls", Port: 15443}}}}, metav1.CreateOptions{})
			return err
		}(),
		func() error {
			_, err := k.CoreV1().ServiceAccounts("istio-system").Create(ctx, &corev1.ServiceAccount{ObjectMeta: meta("other-sa", nil)}, metav1.CreateOptions{})
			return err
		}(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = k.CoreV1().ServiceAccounts("istio-system").Delete(ctx, "other-sa"+sfx, metav1.DeleteOptions{})
	})
	// And one object of eastwest-gateway.yaml as vm2mesh applies it (eastwestInstall:
	// manifests), owning a field: the API server keeps no manager that owns none.
	applied := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ServiceAccount",
		"metadata": map[string]any{"name": "istio-eastwestgateway", "namespace": "istio-system", "labels": map[string]any{"app": "istio-eastwestgateway"}}}}
	if _, err := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}).Namespace("istio-system").
		Apply(ctx, "istio-eastwestgateway", applied, metav1.ApplyOptions{FieldManager: "vm2mesh"}); err != nil {
		t.Fatal(err)
	}
	gateway := func() string {
		var have []string
		for _, n := range []string{"gw-sa", "other-sa"} {
			if _, err := k.CoreV1().ServiceAccounts("istio-system").Get(ctx, n+sfx, metav1.GetOptions{}); err == nil {
				have = append(have, n)
			}
			if n == "gw-sa" {
				if _, err := k.CoreV1().Services("istio-system").Get(ctx, "gw-svc"+sfx, metav1.GetOptions{}); err == nil {
					have = append(have, "gw-svc")
				}
			}
		}
		return strings.Join(have, " ")
	}
	// Other tests expect istiod exposed: this test puts it back (expose-istiod
	// runs before the namespace step, which may fail on the terminating namespace).
	t.Cleanup(func() {
		run(t, nil, "apply", "-f", path, "--yes")
		if got := exposure(); len(got) != 2 {
			t.Errorf("istiod's exposure not restored: %v", got)
		}
	})
	if r := run(t, nil, "remove", "-f", path, "--yes"); r.code != 0 || !strings.Contains(r.stdout, "vm2mesh remove --all deletes them") {
		t.Fatalf("remove: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := exposure(); len(got) != 2 {
		t.Errorf("remove without --all deleted istiod's exposure: left %v", got)
	}
	if got := gateway(); got != "gw-sa gw-svc other-sa" {
		t.Errorf("remove without --all deleted some of the gateway: left %s", got)
	}
	r := run(t, nil, "remove", "-f", path, "--yes", "--all")
	if r.code != 0 || !strings.Contains(r.stdout, "deleted Gateway/istiod-gateway") || !strings.Contains(r.stdout, "deleted VirtualService/istiod-vs") ||
		!strings.Contains(r.stdout, "deleted services/gw-svc"+sfx) {
		t.Fatalf("remove --all: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := exposure(); len(got) != 0 {
		t.Errorf("left after remove --all: %v", got)
	}
	if got := gateway(); got != "other-sa" {
		t.Errorf("left of the gateway after remove --all: %s, want other-sa alone", got)
	}
	if !strings.Contains(r.stdout, "deleted serviceaccounts/istio-eastwestgateway") {
		t.Errorf("remove --all did not delete the gateway's object vm2mesh applied:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "istioctl uninstall --purge") {
		t.Errorf("the summary does not say how to remove the control plane:\n%s", r.stdout)
	}
}

func TestRemoveRefusesBadFlagsBeforeContactingAnything(t *testing.T) {
	istioInstalled(t)
	ns := testcluster.UniqueName("flags")
	path, workDir := answers(t, ns)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"remove"}, "expecting the answers file apply used: -f answers.yaml"},
		{[]string{"remove", "-f", path, "--only", "gateway", "--yes"}, `--only takes cluster or vm, not "gateway"`},
		{[]string{"remove", "-f", path}, "add --yes to confirm, or --dry-run"},
		{[]string{"remove", "-f", "-"}, "cannot ask there: add --yes"},
		{[]string{"remove", "-f", path, "extra"}, "takes no arguments"},
		{[]string{"remove", "-f", path, "--password", "x"}, "no password on the command line"},
	} {
		r := run(t, nil, tc.args...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, want 1 and %q:\n%s%s", tc.args, r.code, tc.want, r.stdout, r.stderr)
		}
	}
	if _, err := cluster.Kube(t).CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace %s: %v", ns, err)
	}
	if _, err := os.Stat(workDir); !os.IsNotExist(err) {
		t.Errorf("workDir was made: %v", err)
	}
}
