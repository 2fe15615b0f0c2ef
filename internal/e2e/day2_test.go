package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"

	"github.com/vm2mesh/vm2mesh/internal/testvm"
)

// Day 2 with the real agent and istiod: doctor names each fault an operator
// meets, and remove takes the VM and its cluster objects out again.

// vmSnapshot is everything onboarding may change on the VM, as text to
// compare: the package, /etc/hosts byte for byte, every file and directory the
// package or vm2mesh places (owner and mode), the agent's iptables rules in
// both backends, the agent's processes and vm2mesh's private directories.
func vmSnapshot(t *testing.T, vm *testvm.VM) string {
	t.Helper()
	return vm.MustExec(t, `dpkg-query -W -f='${Package} ${Status}\n' istio-sidecar 2>/dev/null || echo 'istio-sidecar: not installed'
echo '== /etc/hosts'; od -c /etc/hosts
echo '== files'
for p in /etc/certs /var/run/secrets /var/lib/istio /etc/istio /var/lib/vm2mesh /usr/local/bin/istio-start.sh /usr/local/bin/pilot-agent /usr/local/bin/envoy /lib/systemd/system/istio.service /tmp/vm2mesh.*; do
	if [ -e "$p" ] || [ -L "$p" ]; then find "$p" -printf '%p %u %m %y\n' | sort; else echo "$p absent"; fi
done
echo '== nat'
for b in iptables-legacy iptables-nft ip6tables-legacy ip6tables-nft; do command -v $b >/dev/null && { echo "-- $b"; $b -t nat -S 2>/dev/null; }; done
echo '== processes'; ps -eo comm= | grep -E '^(pilot-agent|envoy|istio-start)' | sort || true`)
}

// doctorLine is doctor's line for the check name and the hint under it.
func doctorLine(out, name string) (line, hint string) {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, " ") && !strings.HasPrefix(l, "   hint: ") && strings.Contains(l, " "+name+": ") {
			if i+1 < len(lines) && strings.HasPrefix(lines[i+1], "   hint: ") {
				hint = lines[i+1]
			}
			return l, hint
		}
	}
	return "", ""
}

// failingChecks are the names of the checks doctor marked ✗.
func failingChecks(out string) []string {
	var names []string
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(l, " ✗ "); ok {
			name, _, _ := strings.Cut(rest, ":")
			names = append(names, name)
		}
	}
	return names
}

// doctorFaults breaks the onboarded VM five ways, one at a time: each makes
// doctor exit 1 naming the check and its hint; vm2mesh apply mends it and
// doctor passes again.
func (s *stack) doctorFaults(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	answers := s.writeAnswers(t, s.vm, s.workDir, "installIstio: auto")
	stopAgent := "kill $(pgrep -o -x pilot-agent) && while pgrep -x pilot-agent >/dev/null; do sleep 0.2; done"
	for _, f := range []struct {
		fault, do   string // do: a command run as root on the VM, or "" for deleteGroup
		check       string
		found, hint string
		mendWith    string // vm2mesh apply --only ...
	}{
		{"agent stopped", stopAgent, "vm-agent", "the agent is not running", "start it", "vm"},
		// Before the first certificate: the agent stopped, its certificate and
		// the token gone, as on a VM whose first start failed.
		{"token removed before the first certificate", stopAgent + "; rm -f /var/run/secrets/tokens/istio-token /etc/certs/cert-chain.pem /etc/certs/key.pem",
			"vm-file-istio-token", "/var/run/secrets/tokens/istio-token is missing", "--only vm", "vm"},
		// In place: /etc/hosts may be a mount point.
		{"hosts line removed", "grep -v 'managed by vm2mesh' /etc/hosts > /root/hosts.new; cat /root/hosts.new > /etc/hosts; rm /root/hosts.new",
			"vm-hosts", "/etc/hosts has no line for istiod.istio-system.svc", "--only vm", "vm"},
		{"another CA's root cert", "cat > /etc/certs/root-cert.pem <<'EOF'\n" + string(otherCA(t)) + "EOF\n",
			"vm-root-cert", "is not the cluster's CA", "fetches the current root cert", "vm"},
		{"WorkloadGroup deleted", "", "workloadgroup", "WorkloadGroup " + vmNamespace + "/" + vmApp + " not found", "--only cluster", "cluster"},
	} {
		t.Run(f.fault, func(t *testing.T) {
			if f.do != "" {
				s.vm.MustExec(t, f.do)
			} else if err := s.dynamic(t).Resource(workloadGroups).Namespace(vmNamespace).Delete(ctx, vmApp, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			out, code := s.vm2mesh(t, ctx, "doctor", "-f", answers)
			line, hint := doctorLine(out, f.check)
			if code != 1 || !strings.HasPrefix(line, " ✗ ") || !strings.Contains(line, f.found) || !strings.Contains(hint, f.hint) {
				t.Errorf("doctor: exit %d; %s:\n%s\n%s\nwant exit 1, ✗, %q and a hint with %q", code, f.check, line, hint, f.found, f.hint)
			}
			t.Logf("%s: doctor failed %v", f.fault, failingChecks(out))

			out, code = s.vm2mesh(t, ctx, "apply", "-f", answers, "--yes", "--only", f.mendWith)
			if code != 0 {
				dumpAgent(t, s.vm)
				t.Fatalf("mending with apply --only %s: exit %d", f.mendWith, code)
			}
			if out, code := s.vm2mesh(t, ctx, "doctor", "-f", answers); code != 0 {
				t.Fatalf("doctor after apply --only %s: exit %d, failing %v", f.mendWith, code, failingChecks(out))
			}
		})
	}
}

var workloadGroups = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "workloadgroups"}

// clusterSnapshot is every object the API server lists, by resource and name,
// with what says it changed: its UID, and its generation (or, for objects
// without a spec, its resourceVersion). Objects that churn on their own
// (events, leases, endpoints) are left out.
func (s *stack) clusterSnapshot(t *testing.T) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	disco, err := discovery.NewDiscoveryClientForConfig(s.cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	lists, err := disco.ServerPreferredResources()
	if err != nil {
		t.Fatal(err)
	}
	dyn := s.dynamic(t)
	churn := []string{"events", "leases", "endpoints", "endpointslices", "componentstatuses"}
	snap := map[string]string{}
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range l.APIResources {
			if !slices.Contains(r.Verbs, "list") || slices.Contains(churn, r.Name) {
				continue
			}
			items, err := dyn.Resource(gv.WithResource(r.Name)).List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatalf("listing %s: %v", r.Name, err)
			}
			for _, o := range items.Items {
				changed := fmt.Sprintf("generation %d", o.GetGeneration())
				if o.GetGeneration() == 0 {
					changed = "resourceVersion " + o.GetResourceVersion()
				}
				snap[fmt.Sprintf("%s.%s %s/%s", r.Name, gv.Group, o.GetNamespace(), o.GetName())] = fmt.Sprintf("uid %s, %s", o.GetUID(), changed)
			}
		}
	}
	return snap
}

// removeAll takes the VM out with vm2mesh remove: the VM as it was before the
// onboarding, the cluster without the VM's namespace (vm2mesh made it, and
// everything in it is the VM's), everything else untouched; a second remove
// changes nothing.
func (s *stack) removeAll(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	before := s.clusterSnapshot(t)
	out, code := s.vm2mesh(t, ctx, "remove", "-f", s.answers, "--yes")
	if code != 0 {
		dumpAgent(t, s.vm)
		t.Fatalf("remove: exit %d", code)
	}
	expect(t, out, "✓ Stop the Istio agent", "✓ Remove the sidecar package", "deleted WorkloadGroup "+vmNamespace+"/"+vmApp,
		"deleted namespace "+vmNamespace, " uninstall --purge")
	if got := vmSnapshot(t, s.vm); got != s.vmBefore {
		t.Errorf("the VM after remove:\n%s\nbefore the onboarding:\n%s", got, s.vmBefore)
	}

	// The namespace controller empties the namespace, then it goes.
	kube := s.cluster.Kube(t)
	if err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := kube.CoreV1().Namespaces().Get(ctx, vmNamespace, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	}); err != nil {
		t.Fatalf("namespace %s still there: %v", vmNamespace, err)
	}
	after := s.clusterSnapshot(t)
	var gone, changed, added []string
	for k, v := range before {
		w, ok := after[k]
		switch {
		case !ok:
			gone = append(gone, k)
		case w != v:
			changed = append(changed, fmt.Sprintf("%s: %s, was %s", k, w, v))
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			added = append(added, k)
		}
	}
	sort.Strings(gone)
	for _, k := range gone {
		_, name, _ := strings.Cut(k, " ")
		if !strings.HasPrefix(name, vmNamespace+"/") && k != "namespaces. /"+vmNamespace {
			t.Errorf("remove deleted %s, which is not the VM's", k)
		}
	}
	for _, want := range []string{"namespaces. /" + vmNamespace, "serviceaccounts. " + vmNamespace + "/" + vmServiceAccount,
		"workloadgroups.networking.istio.io " + vmNamespace + "/" + vmApp} {
		if !slices.Contains(gone, want) {
			t.Errorf("%s is still there after remove", want)
		}
	}
	if len(changed)+len(added) > 0 {
		t.Errorf("remove changed what is not the VM's: changed %v, added %v", changed, added)
	}
	t.Logf("remove deleted %d objects, all in namespace %s: %v", len(gone), vmNamespace, gone)

	out, code = s.vm2mesh(t, ctx, "remove", "-f", s.answers, "--yes")
	if code != 0 || !strings.Contains(out, "nothing changed") || strings.Contains(out, " → ") {
		t.Errorf("second remove: exit %d, want 0 and nothing changed", code)
	}
	if got := vmSnapshot(t, s.vm); got != s.vmBefore {
		t.Errorf("the VM after a second remove:\n%s", got)
	}
	if again := s.clusterSnapshot(t); !maps.Equal(again, after) {
		t.Errorf("a second remove changed the cluster")
	}
}

func (s *stack) dynamic(t *testing.T) dynamic.Interface {
	t.Helper()
	dyn, err := dynamic.NewForConfig(s.cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	return dyn
}
