package app_test

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	for _, want := range []string{"deleted WorkloadGroup " + ns + "/demo", "deleted service account vm", "kept namespace " + ns + " (vm2mesh did not create it)"} {
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

func TestRemoveAllDeletesIstiodsExposureOnlyWhenAsked(t *testing.T) {
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
	// Other tests expect istiod exposed: this test puts it back (expose-istiod
	// runs before the namespace step, which may fail on the terminating namespace).
	t.Cleanup(func() {
		run(t, nil, "apply", "-f", path, "--yes")
		if got := exposure(); len(got) != 2 {
			t.Errorf("istiod's exposure not restored: %v", got)
		}
	})
	if r := run(t, nil, "remove", "-f", path, "--yes"); r.code != 0 || !strings.Contains(r.stdout, "vm2mesh remove --all deletes it") {
		t.Fatalf("remove: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := exposure(); len(got) != 2 {
		t.Errorf("remove without --all deleted istiod's exposure: left %v", got)
	}
	r := run(t, nil, "remove", "-f", path, "--yes", "--all")
	if r.code != 0 || !strings.Contains(r.stdout, "deleted Gateway/istiod-gateway") || !strings.Contains(r.stdout, "deleted VirtualService/istiod-vs") {
		t.Fatalf("remove --all: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := exposure(); len(got) != 0 {
		t.Errorf("left after remove --all: %v", got)
	}
	if !strings.Contains(r.stdout, "istioctl uninstall --purge") {
		t.Errorf("the summary does not say how to remove the control plane:\n%s", r.stdout)
	}
}
