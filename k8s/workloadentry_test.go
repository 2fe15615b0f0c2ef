package k8s_test

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/vm2mesh/vm2mesh/k8s"
)

// autoregisteredEntryStandIn creates the WorkloadEntry istiod's autoregistration
// makes for a proxy of group at address (name, group annotation, labels), with
// a Healthy condition when health is set. No istiod runs here; the end-to-end
// test has the real one.
func autoregisteredEntryStandIn(t *testing.T, ns, group, address, network, health string) {
	t.Helper()
	ctx := context.Background()
	annotations := map[string]any{k8s.AutoRegistrationGroupAnnotation: group}
	if health != "" {
		annotations[k8s.HealthChecksAnnotation] = "true"
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry",
		"metadata": map[string]any{"name": k8s.AutoregisteredName(group, address, network), "namespace": ns, "annotations": annotations},
		"spec":     map[string]any{"address": address, "network": network, "labels": map[string]any{"app": group}, "serviceAccount": "vm"},
	}}
	res := newClient(t).Dynamic.Resource(schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "workloadentries"}).Namespace(ns)
	created, err := res.Create(ctx, u, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if health == "" {
		return
	}
	created.Object["status"] = map[string]any{"conditions": []any{map[string]any{
		"type": "Healthy", "status": health, "message": "probe says " + health, "lastProbeTime": time.Now().UTC().Format(time.RFC3339),
	}}}
	if _, err := res.UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestWorkloadEntriesOfTheGroupAtTheAddress(t *testing.T) {
	cluster.InstallIstioCRDs(t)
	ctx := context.Background()
	ns := "wle-ns"
	cluster.CreateNamespace(t, ns)
	c := newClient(t)
	if got, err := c.WaitWorkloadEntry(ctx, ns, "demo", "198.51.100.7", 2*time.Second); err != nil || got != nil {
		t.Fatalf("before istiod registered anything: %+v, %v", got, err)
	}
	autoregisteredEntryStandIn(t, ns, "demo", "198.51.100.7", "vm-network", "")
	autoregisteredEntryStandIn(t, ns, "demo", "198.51.100.8", "", "False")
	autoregisteredEntryStandIn(t, ns, "other", "198.51.100.7", "", "")
	autoregisteredEntryStandIn(t, ns, "demo", "2001:db8::7", "", "True")

	got, err := c.WaitWorkloadEntry(ctx, ns, "demo", "198.51.100.7", 5*time.Second)
	if err != nil || got == nil {
		t.Fatalf("the VM's entry: %+v, %v", got, err)
	}
	if got.Name != "demo-198.51.100.7-vm-network" || got.Network != "vm-network" || got.LabelText() != "app=demo" || got.HealthText() != "not health-checked (the WorkloadGroup has no probe)" {
		t.Errorf("the VM's entry: %+v", got)
	}
	if got, _ := c.WaitWorkloadEntry(ctx, ns, "demo", "198.51.100.8", 5*time.Second); got == nil || got.HealthText() != "unhealthy: probe says False" {
		t.Errorf("an unhealthy entry: %+v", got)
	}
	if got, _ := c.WaitWorkloadEntry(ctx, ns, "demo", "2001:db8::7", 5*time.Second); got == nil || got.Name != "demo-2001-db8--7" || got.HealthText() != "healthy" {
		t.Errorf("an IPv6 entry: %+v", got)
	}
	all, err := c.WorkloadEntries(ctx, ns, "demo", "")
	if err != nil || len(all) != 3 {
		t.Errorf("the group's entries: %d, %v", len(all), err)
	}
	if got, err := c.WaitWorkloadEntry(ctx, "elsewhere", "demo", "198.51.100.7", 2*time.Second); err != nil || got != nil {
		t.Errorf("another namespace: %+v, %v", got, err)
	}
}
