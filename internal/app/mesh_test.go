package app_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vm2mesh/vm2mesh/internal/meshtest"
	"github.com/vm2mesh/vm2mesh/internal/testcluster"
)

// versionOnlyIstioctl is an istioctl that answers `version` and fails anything
// else, so that a run which would install with it says so in its exit.
func versionOnlyIstioctl(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "istioctl-version-only-standin")
	script := "#!/bin/sh\n[ \"$1\" = version ] && { echo '{\"clientVersion\":{\"version\":\"1.31.1\"}}'; exit 0; }\necho \"stand-in istioctl: $*\" >&2\nexit 3\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestApplyBesideARevisionedHelmIstiod: istiod-canary, installed by Helm, is
// the istiod of its namespace. installIstio: auto installs no second control
// plane (plan.sh holds no istioctl install), says what it found, and adds the
// east-west gateway without istioctl, as vm2mesh's manifests, offering Helm's
// command instead; apply then creates them and the VM's files for revision canary.
func TestApplyBesideARevisionedHelmIstiod(t *testing.T) {
	istioInstalled(t)
	kube := cluster.Kube(t)
	istioNS, ns := testcluster.UniqueName("istio-helm"), testcluster.UniqueName("helm-vm")
	meshtest.HelmIstiod(istioNS, "canary", "docker.io/istio/pilot:1.31.1").Create(t, kube)
	cluster.CreateConfigMap(t, istioNS, "istio-canary", map[string]string{"mesh": strings.ReplaceAll(meshConfig, "istiod.istio-system.svc", "istiod-canary."+istioNS+".svc")})
	cluster.RootCertWriterStandIn(t, "ROOT CERT OF THE MESH", ns)
	istioctl := versionOnlyIstioctl(t)
	path, workDir := answers(t, ns, "installIstio: auto", "istioNamespace: "+istioNS, "istioctl: "+istioctl, "gatewayAddress: 192.0.2.10")

	r := run(t, nil, "apply", "-f", path, "--dry-run")
	if r.code != 0 {
		t.Fatalf("dry run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if want := "mesh: istiod 1.31.1 revision canary in " + istioNS + " (Helm release istiod-canary)"; !strings.Contains(r.stdout, want) {
		t.Errorf("the preflight does not show the mesh as %q:\n%s", want, r.stdout)
	}
	plan, _ := os.ReadFile(filepath.Join(workDir, "plan.sh"))
	for _, line := range strings.Split(string(plan), "\n") {
		if strings.Contains(line, "install -y -f") {
			t.Errorf("plan.sh runs istioctl install: %s", line)
		}
	}
	for _, want := range []string{
		"# skipped: istiod 1.31.1 already runs and is kept: revision canary in " + istioNS + ", installed by Helm release istiod-canary",
		"# manifest: eastwest-gateway.yaml", "kubectl apply --server-side --field-manager=vm2mesh -f " + workDir + "/eastwest-gateway.yaml",
		"#   helm install istio-eastwestgateway istio/gateway -n " + istioNS + " --version 1.31.1 --set revision=canary",
		"192.0.2.10 -> istiod-canary." + istioNS + ".svc",
	} {
		if !strings.Contains(string(plan), want) {
			t.Errorf("plan.sh lacks %q:\n%s", want, plan)
		}
	}
	if _, err := os.Stat(filepath.Join(workDir, "vm-cluster.yaml")); err == nil {
		t.Error("the dry run wrote a control plane's IstioOperator")
	}

	r = run(t, nil, "apply", "-f", path, "--yes", "--only", "cluster")
	if r.code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	ctx := context.Background()
	d, err := kube.AppsV1().Deployments(istioNS).Get(ctx, "istio-eastwestgateway", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the gateway's Deployment: %v\n%s", err, r.stdout)
	}
	if d.Spec.Template.Labels["istio.io/rev"] != "canary" || d.ManagedFields[0].Manager != "vm2mesh" {
		t.Errorf("gateway Deployment labels %v, managers %+v", d.Spec.Template.Labels, d.ManagedFields)
	}
	for _, get := range []func() error{
		func() error {
			_, err := kube.CoreV1().Services(istioNS).Get(ctx, "istio-eastwestgateway", metav1.GetOptions{})
			return err
		},
		func() error {
			_, err := kube.CoreV1().ServiceAccounts(istioNS).Get(ctx, "istio-eastwestgateway", metav1.GetOptions{})
			return err
		},
		func() error {
			_, err := kube.RbacV1().Roles(istioNS).Get(ctx, "istio-eastwestgateway-sds", metav1.GetOptions{})
			return err
		},
		func() error {
			_, err := kube.RbacV1().RoleBindings(istioNS).Get(ctx, "istio-eastwestgateway-sds", metav1.GetOptions{})
			return err
		},
	} {
		if err := get(); err != nil {
			t.Error(err)
		}
	}
	hosts, _ := os.ReadFile(filepath.Join(workDir, "hosts"))
	if string(hosts) != "192.0.2.10 istiod-canary."+istioNS+".svc\n" {
		t.Errorf("hosts = %q", hosts)
	}
	if list, _ := kube.AppsV1().Deployments(istioNS).List(ctx, metav1.ListOptions{LabelSelector: "app=istiod"}); len(list.Items) != 1 {
		t.Errorf("%d istiods in %s, want only istiod-canary", len(list.Items), istioNS)
	}
}

// TestApplyAsksWhichRevisionAndTakesATag: with two revisions and no revision,
// apply stops before anything changes, naming both with their versions and the
// tags; revision: prod (a tag) is revision canary.
func TestApplyAsksWhichRevisionAndTakesATag(t *testing.T) {
	istioInstalled(t)
	kube := cluster.Kube(t)
	istioNS := testcluster.UniqueName("istio-two")
	meshtest.HelmIstiod(istioNS, "canary", "docker.io/istio/pilot:1.31.1").Create(t, kube)
	meshtest.HelmIstiod(istioNS, "stable", "docker.io/istio/pilot:1.30.2").Create(t, kube)
	meshtest.Injector(t, kube, istioNS, "canary", "prod")
	istioctl := versionOnlyIstioctl(t)
	path, workDir := answers(t, testcluster.UniqueName("two-vm"), "installIstio: auto", "istioNamespace: "+istioNS, "istioctl: "+istioctl)

	before := snapshot(t)
	r := run(t, nil, "apply", "-f", path, "--yes")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"revision: is empty, but the cluster runs several Istio revisions",
		"canary (istiod 1.31.1 in " + istioNS + ", Helm release istiod-canary)", "stable (istiod 1.30.2 in " + istioNS + ", Helm release istiod-stable)",
		"prod -> canary (istiod 1.31.1)", "set revision to the one the VM joins"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	assertUnchanged(t, before)
	if _, err := os.Stat(workDir); err == nil {
		if entries, _ := os.ReadDir(workDir); len(entries) > 0 {
			t.Errorf("the refused run wrote into workDir: %v", entries)
		}
	}

	path, workDir = answers(t, testcluster.UniqueName("two-vm"), "installIstio: auto", "istioNamespace: "+istioNS, "istioctl: "+istioctl, "revision: prod")
	r = run(t, nil, "apply", "-f", path, "--dry-run")
	if r.code != 0 {
		t.Fatalf("revision prod: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "tags: prod -> canary; the VM joins revision canary in "+istioNS) {
		t.Errorf("the preflight does not say the VM joins canary:\n%s", r.stdout)
	}
	plan, _ := os.ReadFile(filepath.Join(workDir, "plan.sh"))
	expose, _ := os.ReadFile(filepath.Join(workDir, "expose-istiod.yaml"))
	if !strings.Contains(string(plan), "-> istiod-canary."+istioNS+".svc") || !strings.Contains(string(plan), istioNS+"/istio-canary mesh config") ||
		!strings.Contains(string(expose), "istiod-canary."+istioNS+".svc.cluster.local") {
		t.Errorf("revision prod is not canary:\n%s\n%s", plan, expose)
	}
}

// TestAutoregistrationNoteOnlyWhenIstiodTurnsItOff: istiod's default for
// PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION is true, so only an istiod whose
// env sets it false gets the plan's note.
func TestAutoregistrationNoteOnlyWhenIstiodTurnsItOff(t *testing.T) {
	istioInstalled(t)
	const note = "PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION is false, so no WorkloadEntry will appear"
	for _, tc := range []struct {
		name string
		env  []corev1.EnvVar
		note bool
	}{
		{"unset", nil, false},
		{"false", []corev1.EnvVar{{Name: "PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION", Value: "false"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			istioNS := testcluster.UniqueName("istio-note")
			meshtest.HelmIstiod(istioNS, "", "docker.io/istio/pilot:1.31.1", tc.env...).Create(t, cluster.Kube(t))
			path, workDir := answers(t, testcluster.UniqueName("note-vm"), "istioNamespace: "+istioNS)
			if r := run(t, nil, "apply", "-f", path, "--dry-run"); r.code != 0 {
				t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			plan, _ := os.ReadFile(filepath.Join(workDir, "plan.sh"))
			if got := strings.Contains(string(plan), "WorkloadEntry will appear"); got != tc.note || (got && !strings.Contains(string(plan), note)) {
				t.Errorf("note %v, want %v:\n%s", got, tc.note, plan)
			}
		})
	}
}
