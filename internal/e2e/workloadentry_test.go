package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/vm2mesh/vm2mesh/k8s"
)

// The WorkloadEntry the real istiod autoregistered for the onboarded VM, when
// the Envoy stand-in's ADS stream through the agent reached it.

const vmApp = "e2e-app" // app: in writeAnswers, the WorkloadGroup's name

// checkWorkloadEntry: istiod registered the VM at its address, vm-verify
// reports that entry, and when the agent stops istiod removes it (after
// PILOT_WORKLOAD_ENTRY_GRACE_PERIOD, 10s by default); started again, the VM is
// registered again; with its entry gone, vm-verify fails naming the causes.
func (s *stack) checkWorkloadEntry(t *testing.T) {
	t.Helper()
	c, err := k8s.NewForConfig(s.cluster.Config, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	entries, err := c.WorkloadEntries(ctx, vmNamespace, vmApp, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("istiod's WorkloadEntries for %s in %s: %+v, want one", vmApp, vmNamespace, entries)
	}
	we := entries[0]
	if we.Address != s.vm.Addr || we.Name != k8s.AutoregisteredName(vmApp, s.vm.Addr, "vm-network") || we.Network != "vm-network" || we.Labels["app"] != vmApp {
		t.Errorf("WorkloadEntry %+v, want %s at the VM's address %s on vm-network, app=%s", we, k8s.AutoregisteredName(vmApp, s.vm.Addr, "vm-network"), s.vm.Addr, vmApp)
	}
	t.Logf("istiod registered WorkloadEntry %s/%s: address %s, network %s, labels %s, %s", we.Namespace, we.Name, we.Address, we.Network, we.LabelText(), we.HealthText())

	// A run with the cluster sees it and says so in vm-verify's verdict.
	out, code := s.vm2mesh(t, ctx, "apply", "-f", s.writeAnswers(t, s.vm, s.workDir, "installIstio: auto"), "--yes")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	expect(t, out, fmt.Sprintf("WorkloadEntry %s/%s at %s", vmNamespace, we.Name, s.vm.Addr))

	// The agent stops (and Envoy with it): istiod removes the entry.
	s.vm.MustExec(t, "kill $(pgrep -o -x pilot-agent)")
	stopped := time.Now()
	if err := wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		ws, err := c.WorkloadEntries(ctx, vmNamespace, vmApp, s.vm.Addr)
		if err != nil {
			return false, err
		}
		return len(ws) == 0 || ws[0].Health == "False", nil
	}); err != nil {
		s.dumpIstiod(t)
		t.Fatalf("the VM's WorkloadEntry stayed after its agent stopped: %v", err)
	}
	t.Logf("the agent stopped: istiod removed the WorkloadEntry (or marked it unhealthy) after %s", time.Since(stopped).Round(time.Second))

	// vm2mesh starts the agent again: istiod registers the VM again.
	answers := s.writeAnswers(t, s.vm, s.workDir, "installIstio: auto", "  agentWait: 10")
	out, code = s.vm2mesh(t, ctx, "apply", "-f", answers, "--yes")
	if code != 0 {
		dumpAgent(t, s.vm)
		t.Fatalf("exit %d", code)
	}
	expect(t, out, "✓ Confirm the agent got its certificate", fmt.Sprintf("WorkloadEntry %s/%s at %s", vmNamespace, we.Name, s.vm.Addr))

	// An entry deleted under a connected proxy is not made again (istiod's
	// autoregistration acts on connections and WorkloadGroups only): the VM
	// has none, and vm-verify says so with the likely causes.
	if err := c.Dynamic.Resource(schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "workloadentries"}).
		Namespace(vmNamespace).Delete(ctx, we.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	out, code = s.vm2mesh(t, ctx, "apply", "-f", answers, "--yes")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	expect(t, out, fmt.Sprintf("✗ Confirm the agent got its certificate: the agent has its certificate, but istiod registered no WorkloadEntry for %s in %s (expected %s)", s.vm.Addr, vmNamespace, we.Name),
		"hint: likely causes:", "the proxy may not be connected")
}
