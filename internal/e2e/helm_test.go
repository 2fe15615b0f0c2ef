package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/vm2mesh/vm2mesh/internal/testcluster"
)

// The mesh an operator installed with Helm, as Istio's docs do it for a canary
// control plane: the real helm (built from its Go module) installs istio-base
// and istiod revision canary with the revision tag prod, from the charts of the
// istio.io/istio module the harness's istiod is built from. Multi-network and
// autoregistration as the other end-to-end test's answers ask for.
var istiodCanaryValues = []string{
	"revision=canary",
	"revisionTags={prod}",
	"global.meshID=mesh1",
	"global.multiCluster.clusterName=cluster1",
	"global.network=kube-network",
	"pilot.env.PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION=true",
	"pilot.env.PILOT_ENABLE_WORKLOAD_ENTRY_HEALTHCHECKS=true",
}

// TestHelmInstalledMeshEndToEnd onboards a VM into a mesh vm2mesh did not
// install: Helm installed it, with revision canary and tag prod. The answers name
// the tag (revision: prod) and ask vm2mesh to install the east-west gateway from
// its own manifests; installIstio: auto must keep the running istiod-canary and
// install no second control plane. The first two subtests are the harness's part
// (Helm install, the real istiod from the Deployment Helm made) and stand on
// their own; the last is vm2mesh's.
func TestHelmInstalledMeshEndToEnd(t *testing.T) {
	skipUnlessIsolated(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := t.TempDir()
	s := startStack(t, ctx, dir)
	t.Cleanup(func() {
		if s.istiod != nil {
			s.istiod.Stop()
		}
	})

	if !t.Run("helm installs istio-base and istiod canary with tag prod", func(t *testing.T) {
		start := time.Now()
		if _, err := s.cluster.HelmInstall(ctx, "istio-base", "base", "istio-system"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.cluster.HelmInstall(ctx, "istiod-canary", "istio-control/istio-discovery", "istio-system", istiodCanaryValues...); err != nil {
			t.Fatal(err)
		}
		kube := s.cluster.Kube(t)
		webhook, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "istio-revision-tag-prod", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if l := webhook.Labels; l["istio.io/tag"] != "prod" || l["istio.io/rev"] != "canary" {
			t.Errorf("the tag's webhook is labelled %v, want istio.io/tag=prod and istio.io/rev=canary", l)
		}
		if _, err := kube.CoreV1().ConfigMaps("istio-system").Get(ctx, "istio-canary", metav1.GetOptions{}); err != nil {
			t.Errorf("the canary's mesh config: %v", err)
		}
		t.Logf("helm installed istio-base and istiod-canary (tag prod) in %s; istiod-canary is Available on %s",
			time.Since(start).Round(time.Millisecond), testcluster.FakeNode)
	}) {
		t.FailNow()
	}

	if !t.Run("the real istiod runs from istiod-canary's Deployment", func(t *testing.T) {
		if err := s.startIstiodAs(ctx, dir, "istiod-canary"); err != nil {
			t.Fatal(err)
		}
		env := s.istiodOptions.Env
		for _, want := range []string{"REVISION=canary", "CLUSTER_ID=cluster1", "PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION=true"} {
			if !slices.Contains(env, want) {
				t.Errorf("istiod-canary's env lacks %s: %v", want, env)
			}
		}
		// Its CA is up once it writes the root cert into the namespaces.
		kube := s.cluster.Kube(t)
		if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			_, err := kube.CoreV1().ConfigMaps("default").Get(ctx, "istio-ca-root-cert", metav1.GetOptions{})
			return err == nil, nil
		}); err != nil {
			s.dumpIstiod(t)
			t.Fatal("istiod-canary wrote no istio-ca-root-cert into namespace default within a minute")
		}
		t.Logf("istiod (revision canary) serves XDS and its CA on %s", s.istiod.SecureGRPC)
	}) {
		t.FailNow()
	}

	t.Run("vm2mesh onboards the VM through the tag prod", func(t *testing.T) {
		start := time.Now()
		// The harness plays the cloud's load balancer for the gateway vm2mesh installs.
		harness, stopHarness := context.WithCancel(ctx)
		defer stopHarness()
		lb := make(chan error, 1)
		go func() { lb <- s.playLoadBalancer(harness) }()

		s.workDir = filepath.Join(dir, "work")
		s.answers = s.writeAnswers(t, s.vm, s.workDir, "installIstio: auto", "revision: prod", "eastwestInstall: manifests")
		out, code := s.vm2mesh(t, ctx, "apply", "-f", s.answers, "--yes")
		if code != 0 {
			stopHarness()
		}
		if err := <-lb; err != nil && code == 0 {
			t.Error(err)
		}
		// Checked whatever the exit: auto keeps Helm's control plane (istiod-canary
		// stays the only one) and, with the gateway from vm2mesh's manifests,
		// nothing here needs istioctl install.
		ds, err := s.cluster.Kube(t).AppsV1().Deployments("istio-system").List(ctx, metav1.ListOptions{LabelSelector: "app=istiod"})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, d := range ds.Items {
			names = append(names, d.Name)
		}
		if strings.Join(names, " ") != "istiod-canary" {
			t.Errorf("istiod Deployments after the run: %v, want only Helm's istiod-canary", names)
		}
		if strings.Contains(out, "istioctl install") {
			t.Errorf("vm2mesh ran istioctl install over a Helm-installed mesh")
		}
		if code != 0 {
			dumpAgent(t, s.vm)
			s.dumpIstiod(t)
			t.Fatalf("vm2mesh apply: exit %d", code)
		}
		expect(t, out, "✓ Confirm the agent got its certificate", "generated new workload certificate")
		t.Logf("vm2mesh apply: exit 0 after %s", time.Since(start).Round(time.Second))
		// The tag is its revision's istiod: the only name istiod-canary's
		// certificate holds of the two.
		if hosts, err := os.ReadFile(filepath.Join(s.workDir, "hosts")); err != nil || string(hosts) != s.gateway+" istiod-canary.istio-system.svc\n" {
			t.Errorf("hosts is %q (%v), want the gateway's address for istiod-canary.istio-system.svc", hosts, err)
		}
		s.checkCertificate(t)

		// doctor, too, takes the tag for its revision.
		out, code = s.vm2mesh(t, ctx, "doctor", "-f", s.answers)
		if code != 0 || strings.Contains(out, " ✗ ") {
			t.Fatalf("doctor: exit %d", code)
		}
		expect(t, out, "revision canary (tag prod)", " ✓ vm-agent-cert: spiffe://", " ✓ workloadentry: ")
	})
}
