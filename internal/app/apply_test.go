package app_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/vm2mesh/vm2mesh/internal/testcluster"
	"github.com/vm2mesh/vm2mesh/vmconfig"
)

var (
	cluster *testcluster.Cluster
	binary  string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vm2mesh-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "vm2mesh")
	root, err := testcluster.RepoRoot()
	if err != nil {
		panic(err)
	}
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building vm2mesh: %v\n%s", err, out)
		os.Exit(1)
	}
	code := testcluster.Main(m, &cluster)
	os.RemoveAll(dir)
	os.Exit(code)
}

// meshConfig is what `istioctl install` with meshID mesh1 puts into the istio
// ConfigMap.
const meshConfig = `defaultConfig:
  discoveryAddress: istiod.istio-system.svc:15012
  meshId: mesh1
  tracing:
    zipkin:
      address: zipkin.istio-system:9411
rootNamespace: istio-system
trustDomain: cluster.local
`

var istioOnce sync.Once

// istioInstalled makes the cluster look as it does after `istioctl install`, as
// far as vm2mesh reads it: Istio's real CRDs, the mesh ConfigMap, and istiod's
// Deployment (a stand-in object: no node runs its pod).
func istioInstalled(t testing.TB) {
	istioOnce.Do(func() {
		cluster.InstallIstioCRDs(t)
		cluster.CreateConfigMap(t, "istio-system", "istio", map[string]string{"mesh": meshConfig})
		cluster.CreateIstiodDeploymentStandIn(t, "istio-system", "istiod", "docker.io/istio/pilot:1.31.1")
		// The labels istioctl install puts on what it installs, by which vm2mesh
		// knows the mesh is istioctl's (and adds its gateway with istioctl too).
		patch := `{"metadata":{"labels":{"operator.istio.io/managed":"Reconcile","install.operator.istio.io/owning-resource":"installed-state","istio.io/rev":"default"}}}`
		if _, err := cluster.Kube(t).AppsV1().Deployments("istio-system").Patch(context.Background(), "istiod", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		// What a running istiod's Deployment reports (no kubelet runs here).
		status := `{"status":{"replicas":1,"readyReplicas":1,"availableReplicas":1}}`
		if _, err := cluster.Kube(t).AppsV1().Deployments("istio-system").Patch(context.Background(), "istiod", types.MergePatchType, []byte(status), metav1.PatchOptions{}, "status"); err != nil {
			t.Fatal(err)
		}
	})
}

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, env []string, args ...string) result {
	t.Helper()
	return runCmdEnv(t, env, binary, args...)
}

// runCmd runs another program, as run runs vm2mesh.
func runCmd(t *testing.T, program string, args ...string) result {
	t.Helper()
	return runCmdEnv(t, nil, program, args...)
}

func runCmdEnv(t testing.TB, env []string, program string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, program, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), env...)
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// answers writes an answers file: the guide's settings for namespace ns, with
// installIstio never and a manual gateway address, then extra lines.
func answers(t *testing.T, ns string, extra ...string) (path, workDir string) {
	t.Helper()
	dir := t.TempDir()
	workDir = filepath.Join(dir, "work")
	lines := []string{
		"kubeconfig: " + cluster.Kubeconfig,
		"kubeContext: \"\"",
		"cluster: Kubernetes",
		"clusterNetwork: \"\"",
		"meshID: mesh1",
		"revision: \"\"",
		"app: demo",
		"namespace: " + ns,
		"serviceAccount: vm",
		"vmNetwork: \"\"",
		"workDir: " + workDir,
		"autoregister: true",
		"tokenDuration: 3600",
	}
	keys := map[string]bool{}
	for _, e := range extra {
		keys[strings.SplitN(e, ":", 2)[0]] = true
	}
	var out []string
	for _, l := range append([]string{"installIstio: never", "gatewayAddress: 192.0.2.10"}, lines...) {
		if !keys[strings.SplitN(l, ":", 2)[0]] {
			out = append(out, l)
		}
	}
	out = append(out, extra...)
	path = filepath.Join(dir, "answers.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, workDir
}

// snapshot lists every object vm2mesh could touch with its resourceVersion.
func snapshot(t *testing.T) []string {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, gvr := range []schema.GroupVersionResource{
		{Version: "v1", Resource: "namespaces"},
		{Version: "v1", Resource: "serviceaccounts"},
		{Version: "v1", Resource: "configmaps"},
		{Group: "networking.istio.io", Version: "v1alpha3", Resource: "gateways"},
		{Group: "networking.istio.io", Version: "v1alpha3", Resource: "virtualservices"},
		{Group: "networking.istio.io", Version: "v1alpha3", Resource: "workloadgroups"},
	} {
		list, err := dyn.Resource(gvr).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range list.Items {
			out = append(out, fmt.Sprintf("%s %s/%s %s", gvr.Resource, o.GetNamespace(), o.GetName(), o.GetResourceVersion()))
		}
	}
	sort.Strings(out)
	return out
}

func assertUnchanged(t *testing.T, before []string) {
	t.Helper()
	after := snapshot(t)
	if !slices.Equal(before, after) {
		t.Errorf("the cluster changed:\nbefore %v\nafter  %v", before, after)
	}
}

func TestDryRunWritesPlanAndChangesNothing(t *testing.T) {
	istioInstalled(t)
	path, workDir := answers(t, "dry")
	before := snapshot(t)
	r := run(t, nil, "apply", "-f", path, "--dry-run")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertUnchanged(t, before)
	for _, f := range []string{"eastwest.yaml", "expose-istiod.yaml", "workloadgroup.yaml", "plan.sh"} {
		if _, err := os.Stat(filepath.Join(workDir, f)); err != nil {
			t.Errorf("dry run did not write %s: %v", f, err)
		}
	}
	plan, _ := os.ReadFile(filepath.Join(workDir, "plan.sh"))
	// istiod runs: plan.sh, which runs what it lists, installs no control plane.
	if _, err := os.Stat(filepath.Join(workDir, "vm-cluster.yaml")); err == nil || strings.Contains(string(plan), "vm-cluster.yaml") {
		t.Errorf("the dry run plans a control plane beside the running istiod:\n%s", plan)
	}
	// The commands come in the procedure's order.
	order := []string{"install -y -f " + workDir + "/eastwest.yaml",
		"expose-istiod.yaml", "kubectl create namespace dry", "kubectl create serviceaccount vm -n dry",
		"workloadgroup.yaml", "x workload entry configure"}
	at := 0
	for _, want := range order {
		i := strings.Index(string(plan[at:]), want)
		if i < 0 {
			t.Fatalf("plan.sh lacks %q after offset %d:\n%s", want, at, plan)
		}
		at += i
	}
	if !strings.Contains(string(plan), "# skipped: istiod 1.31.1 already runs and is kept") {
		t.Errorf("plan.sh does not say the control plane is skipped:\n%s", plan)
	}
	wg, _ := os.ReadFile(filepath.Join(workDir, "workloadgroup.yaml"))
	if !strings.Contains(string(wg), `serviceAccount: "vm"`) || !strings.Contains(string(wg), `namespace: "dry"`) {
		t.Errorf("workloadgroup.yaml:\n%s", wg)
	}
}

func TestApplyCreatesEverythingAndSecondRunChangesNothing(t *testing.T) {
	istioInstalled(t)
	cluster.RootCertWriterStandIn(t, "ROOT CERT OF THE MESH", "vm")
	path, workDir := answers(t, "vm")
	r := run(t, nil, "apply", "-f", path, "--yes")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Log(r.stdout)
	ctx := context.Background()
	k := cluster.Kube(t)
	if _, err := k.CoreV1().ServiceAccounts("vm").Get(ctx, "vm", metav1.GetOptions{}); err != nil {
		t.Errorf("service account: %v", err)
	}
	dyn, _ := dynamic.NewForConfig(cluster.Config)
	for _, o := range []struct{ res, ns, name string }{
		{"gateways", "istio-system", "istiod-gateway"},
		{"virtualservices", "istio-system", "istiod-vs"},
		{"workloadgroups", "vm", "demo"},
	} {
		gvr := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1alpha3", Resource: o.res}
		if _, err := dyn.Resource(gvr).Namespace(o.ns).Get(ctx, o.name, metav1.GetOptions{}); err != nil {
			t.Errorf("%s %s/%s: %v", o.res, o.ns, o.name, err)
		}
	}
	contents := map[string]string{}
	for _, name := range vmconfig.FileNames {
		p := filepath.Join(workDir, name)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		contents[name] = string(b)
		if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, st.Mode().Perm())
		}
	}
	if contents["hosts"] != "192.0.2.10 istiod.istio-system.svc\n" {
		t.Errorf("hosts = %q", contents["hosts"])
	}
	if contents["root-cert.pem"] != "ROOT CERT OF THE MESH" {
		t.Errorf("root-cert.pem = %q", contents["root-cert.pem"])
	}
	for _, want := range []string{"ISTIO_META_MESH_ID='mesh1'", "ISTIO_META_CLUSTER_ID='Kubernetes'", "ISTIO_META_AUTO_REGISTER_GROUP='demo'", "TRUST_DOMAIN='cluster.local'"} {
		if !strings.Contains(contents["cluster.env"], want) {
			t.Errorf("cluster.env lacks %s:\n%s", want, contents["cluster.env"])
		}
	}
	claims, err := vmconfig.ParseTokenClaims(contents["istio-token"])
	if err != nil || claims.Subject != "system:serviceaccount:vm:vm" || claims.Expiry-claims.IssuedAt != 3600 {
		t.Errorf("istio-token claims %+v %v", claims, err)
	}
	if strings.Contains(r.stdout+r.stderr, contents["istio-token"]) {
		t.Error("the token was printed")
	}

	before := snapshot(t)
	r = run(t, nil, "apply", "-f", path, "--yes")
	if r.code != 0 {
		t.Fatalf("second run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "nothing changed: all 6 steps were done already or skipped") {
		t.Errorf("second run does not say it changed nothing:\n%s", r.stdout)
	}
	assertUnchanged(t, before)
	for _, name := range vmconfig.FileNames {
		b, _ := os.ReadFile(filepath.Join(workDir, name))
		if string(b) != contents[name] {
			t.Errorf("second run rewrote %s", name)
		}
	}
}

func TestBadInputExitsOneAndChangesNothing(t *testing.T) {
	istioInstalled(t)
	dir := t.TempDir()
	unreachable := filepath.Join(dir, "unreachable")
	if err := os.WriteFile(unreachable, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	expired := filepath.Join(dir, "expired")
	if err := cluster.WriteKubeconfig(expired, "an-expired-token"); err != nil {
		t.Fatal(err)
	}
	// A stand-in istioctl that only answers `version`, for the skew check.
	oldIstioctl := filepath.Join(dir, "istioctl-1.20-standin")
	if err := os.WriteFile(oldIstioctl, []byte("#!/bin/sh\necho '{\"clientVersion\":{\"version\":\"1.20.3\"}}'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	emptyPath := "PATH=" + filepath.Join(dir, "no-tools-here")

	for _, tc := range []struct {
		name  string
		extra []string
		env   []string
		args  []string
		want  []string
	}{
		{name: "bad name", extra: []string{"app: Demo_App"}, want: []string{"app:", "not a valid name"}},
		{name: "bad namespace", extra: []string{"namespace: -vm"}, want: []string{"namespace:"}},
		{name: "unknown key", extra: []string{"colour: blue"}, want: []string{`unknown key "colour"`}},
		{name: "negative duration", extra: []string{"tokenDuration: -5"}, want: []string{"tokenDuration:", "negative"}},
		{name: "bad install policy", extra: []string{"installIstio: sometimes"}, want: []string{"installIstio:", "auto, always or never"}},
		{name: "unreachable API server", extra: []string{"kubeconfig: " + unreachable}, want: []string{"cannot reach the API server", "127.0.0.1:1"}},
		{name: "expired credentials", extra: []string{"kubeconfig: " + expired}, want: []string{"rejected the credentials", "log in again"}},
		{name: "unknown context", extra: []string{"kubeContext: prod"}, want: []string{`context "prod" is not in the kubeconfig`}},
		{name: "missing istioctl", extra: []string{"installIstio: always"}, env: []string{emptyPath}, want: []string{"istioctl is not on PATH"}},
		{name: "istioctl too old", extra: []string{"installIstio: always", "istioctl: " + oldIstioctl}, want: []string{"istioctl 1.20.3 is more than one minor version away from istiod 1.31.1"}},
		{name: "no confirmation", args: []string{"--yes=false"}, want: []string{"add --yes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, _ := answers(t, "bad-input", tc.extra...)
			before := snapshot(t)
			args := append([]string{"apply", "-f", path, "--yes"}, tc.args...)
			r := run(t, tc.env, args...)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			assertUnchanged(t, before)
		})
	}
}

func TestInterruptedRunExits130AndResumes(t *testing.T) {
	istioInstalled(t)
	path, workDir := answers(t, "resume")
	// No root cert appears at first: the vm-files step waits for it, and we interrupt.
	cmd := exec.Command(binary, "apply", "-f", path, "--yes")
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), "Generate the VM's files") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 130 {
		t.Fatalf("exit %v, want 130\n%s", err, out.String())
	}
	state, _ := os.ReadFile(filepath.Join(workDir, ".vm2mesh-state.json"))
	if !strings.Contains(string(state), `"vm-files"`) || !strings.Contains(string(state), `"failed"`) {
		t.Errorf("state after interrupt:\n%s", state)
	}

	cluster.RootCertWriterStandIn(t, "ROOT", "resume")
	r := run(t, nil, "apply", "-f", path, "--yes")
	if r.code != 0 {
		t.Fatalf("resume: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "resuming: the last run failed at vm-files") || !strings.Contains(r.stdout, "done: 1 steps ran, 5 skipped") {
		t.Errorf("resume output:\n%s", r.stdout)
	}
}

func TestGenerateIsADropInForIstioctl(t *testing.T) {
	cluster.CreateServiceAccount(t, "legacy", "ratings-sa")
	cluster.CreateConfigMap(t, "legacy", "istio-ca-root-cert", map[string]string{"root-cert.pem": "fake-CA-cert"})
	root, _ := testcluster.RepoRoot()
	cases := filepath.Join(root, "vmconfig", "testdata", "revision-annotation")
	mesh, err := os.ReadFile(filepath.Join(cases, "meshconfig.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cluster.CreateConfigMap(t, "istio-system", "istio-canary", map[string]string{"mesh": string(mesh)})
	out := filepath.Join(t.TempDir(), "out")
	r := run(t, nil, "generate", "-f", filepath.Join(cases, "workloadgroup.yaml"), "-o", out,
		"--internalIP", "192.0.2.20", "--ingressIP", "192.0.2.21", "--clusterID", "east", "--revision", "canary",
		"--kubeconfig", cluster.Kubeconfig)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "Configuration generation into directory "+out+" was successful") {
		t.Errorf("stdout: %s", r.stdout)
	}
	for _, name := range []string{"cluster.env", "mesh.yaml", "hosts", "root-cert.pem"} {
		got, _ := os.ReadFile(filepath.Join(out, name))
		want, _ := os.ReadFile(filepath.Join(cases, name+".golden"))
		if string(got) != string(want) {
			t.Errorf("%s differs from the golden:\n%s", name, got)
		}
	}

	// Without --clusterID it reads the sidecar injector's values, as istioctl does.
	r = run(t, nil, "generate", "-f", filepath.Join(cases, "workloadgroup.yaml"), "-o", out, "--revision", "canary", "--kubeconfig", cluster.Kubeconfig)
	if r.code != 1 || !strings.Contains(r.stderr, "failed to automatically determine the --clusterID") {
		t.Errorf("without --clusterID: exit %d\n%s", r.code, r.stderr)
	}
	r = run(t, nil, "generate", "-f", filepath.Join(cases, "workloadgroup.yaml"), "-o", out, "--internalIP", "a", "--externalIP", "b", "--kubeconfig", cluster.Kubeconfig)
	if r.code != 1 || !strings.Contains(r.stderr, "mutually exclusive") {
		t.Errorf("both IPs: exit %d\n%s", r.code, r.stderr)
	}
}

// lockedBuffer is written by the command's copier while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
