package steps_test

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/vm2mesh/vm2mesh/k8s"
	"github.com/vm2mesh/vm2mesh/steps"
)

// workloadEntryStandIn creates what istiod's autoregistration makes for a
// proxy of group at address; no istiod runs here (the end-to-end test has it).
func workloadEntryStandIn(t *testing.T, ns, group, address string) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry",
		"metadata": map[string]any{"name": k8s.AutoregisteredName(group, address, ""), "namespace": ns,
			"annotations": map[string]any{k8s.AutoRegistrationGroupAnnotation: group}},
		"spec": map[string]any{"address": address, "labels": map[string]any{"app": group}},
	}}
	if _, err := dyn.Resource(schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "workloadentries"}).
		Namespace(ns).Create(context.Background(), u, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestVMWorkloadEntryFoundOrItsLikelyCausesNamed(t *testing.T) {
	istioCRDs(t)
	ctx := context.Background()
	cluster.CreateNamespace(t, "wle-istio")
	cluster.CreateNamespace(t, "wle-vm")
	s := settings(t, "wle-istio", "wle-vm")
	s.App = "wle-app"
	env := prepare(t, s)

	// No group in the VM's namespace, no entry: both said.
	_, err := env.WaitVMWorkloadEntry(ctx, "192.0.2.20", time.Second)
	hint := steps.HintOf(err)
	if err == nil || !strings.Contains(err.Error(), "istiod registered no WorkloadEntry for 192.0.2.20 in wle-vm (expected wle-app-192.0.2.20)") ||
		!strings.Contains(hint, "WorkloadGroup wle-app is not in wle-vm (found in no namespace)") ||
		!strings.Contains(hint, "autoregistration may be off in istiod") || !strings.Contains(hint, "the proxy may not be connected") {
		t.Errorf("no entry: %v\nhint: %s", err, hint)
	}

	// istiod registered the group at another address: that is named.
	workloadEntryStandIn(t, "wle-vm", "wle-app", "192.0.2.21")
	_, err = env.WaitVMWorkloadEntry(ctx, "192.0.2.20", time.Second)
	if hint := steps.HintOf(err); !strings.Contains(hint, "istiod registered group wle-app at 192.0.2.21, not 192.0.2.20: set vm.internalIP") {
		t.Errorf("an entry at another address: %v\nhint: %s", err, hint)
	}

	workloadEntryStandIn(t, "wle-vm", "wle-app", "192.0.2.20")
	we, err := env.WaitVMWorkloadEntry(ctx, "192.0.2.20", 5*time.Second)
	if err != nil || we.Name != "wle-app-192.0.2.20" || we.Labels["app"] != "wle-app" {
		t.Errorf("the VM's entry: %+v, %v", we, err)
	}
}
