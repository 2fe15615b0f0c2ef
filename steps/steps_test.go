package steps_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/vm2mesh/vm2mesh/internal/testcluster"
	"github.com/vm2mesh/vm2mesh/k8s"
	"github.com/vm2mesh/vm2mesh/steps"
)

var cluster *testcluster.Cluster

func TestMain(m *testing.M) {
	if fuzzingOnly() { // see fuzz_test.go
		os.Exit(m.Run())
	}
	os.Exit(testcluster.Main(m, &cluster))
}

var crdsOnce sync.Once

func istioCRDs(t *testing.T) { crdsOnce.Do(func() { cluster.InstallIstioCRDs(t) }) }

// settings are the guide's, in an Istio namespace and VM namespace of the test's own.
func settings(t *testing.T, istioNS, ns string) steps.Settings {
	s := steps.Defaults()
	s.Kubeconfig = cluster.Kubeconfig
	s.IstioNamespace = istioNS
	s.Namespace = ns
	s.WorkDir = filepath.Join(t.TempDir(), "work")
	s.InstallIstio = steps.InstallNever
	s.GatewayAddress = "192.0.2.10"
	return s
}

func prepare(t *testing.T, s steps.Settings) *steps.Env {
	t.Helper()
	env, err := steps.Prepare(context.Background(), s, k8s.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// recorder collects events; steps may emit from the istioctl reader goroutines.
type recorder struct {
	mu     sync.Mutex
	events []steps.Event
}

func (r *recorder) emit(e steps.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) kinds() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if e.Kind != steps.Log {
			out = append(out, e.Step+":"+string(e.Kind))
		}
	}
	return strings.Join(out, " ")
}

func (r *recorder) text(kind steps.EventKind) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if e.Kind == kind {
			out = append(out, e.Text)
		}
	}
	return strings.Join(out, "\n")
}

func run(t *testing.T, env *steps.Env, list ...steps.Step) (*recorder, error) {
	t.Helper()
	rec := &recorder{}
	r := &steps.Runner{Steps: list, Env: env, Emit: rec.emit}
	_, err := r.Run(context.Background())
	return rec, err
}

// istioctlStandIn writes a stand-in for istioctl: it answers `version` with
// version, records the arguments of `install` and the manifest it was given, prints
// a few lines as istioctl does, and fails when the file fail exists beside it. The
// real istioctl is used by the end-to-end tests; here only the runner is tested.
func istioctlStandIn(t *testing.T, version string) (path, record string) {
	dir := t.TempDir()
	path = filepath.Join(dir, "istioctl-standin")
	record = filepath.Join(dir, "record")
	script := fmt.Sprintf(`#!/bin/sh
case "$1" in
version) echo '{"clientVersion":{"version":"%s"}}'; exit 0;;
esac
echo "$@" > %s.args
while [ $# -gt 0 ]; do [ "$1" = -f ] && cp "$2" %s.manifest; shift; done
echo "✔ Istio core installed"
echo "- Processing resources for Istiod." >&2
if [ -e %s/fail ]; then echo "Error: failed to install manifests: deployment istiod is not ready" >&2; exit 1; fi
echo "✔ Installation complete"
`, version, record, record, dir)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, record
}

func TestControlPlaneStreamsIstioctlAndReportsItsFailure(t *testing.T) {
	istioctl, record := istioctlStandIn(t, "1.31.1")
	s := settings(t, "istio-cp", "cp")
	s.InstallIstio = steps.InstallAuto
	s.Istioctl = istioctl
	s.Cluster, s.MeshID = "cluster1", "mesh-cp"
	env := prepare(t, s)

	rec, err := run(t, env, steps.ControlPlane{})
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.kinds(); got != "control-plane:started control-plane:done" {
		t.Errorf("events %s", got)
	}
	logs := rec.text(steps.Log)
	for _, want := range []string{"✔ Istio core installed", "- Processing resources for Istiod.", "✔ Installation complete"} {
		if !strings.Contains(logs, want) {
			t.Errorf("istioctl output line %q not streamed; got\n%s", want, logs)
		}
	}
	args, _ := os.ReadFile(record + ".args")
	want := fmt.Sprintf("install -y -f %s --kubeconfig %s --context %s", filepath.Join(env.WorkDir, "vm-cluster.yaml"), cluster.Kubeconfig, testcluster.ContextName)
	if strings.TrimSpace(string(args)) != want {
		t.Errorf("istioctl args\n%s\nwant\n%s", args, want)
	}
	manifest, _ := os.ReadFile(record + ".manifest")
	for _, want := range []string{"kind: IstioOperator", `meshID: "mesh-cp"`, `clusterName: "cluster1"`, "PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION: true"} {
		if !strings.Contains(string(manifest), want) {
			t.Errorf("manifest lacks %q:\n%s", want, manifest)
		}
	}

	if err := os.WriteFile(filepath.Join(filepath.Dir(istioctl), "fail"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rec, err = run(t, env, steps.ControlPlane{})
	if err == nil {
		t.Fatal("a failing istioctl did not fail the step")
	}
	if !strings.Contains(err.Error(), "deployment istiod is not ready") || steps.HintOf(err) == "" {
		t.Errorf("error %q (hint %q) lacks istioctl's last lines or a hint", err, steps.HintOf(err))
	}
	if got := rec.kinds(); got != "control-plane:started control-plane:failed" {
		t.Errorf("events %s", got)
	}
	state, _ := os.ReadFile(steps.StatePath(env.WorkDir))
	if !strings.Contains(string(state), `"failed"`) {
		t.Errorf("state does not record the failure:\n%s", state)
	}
}

func TestControlPlaneKeepsARunningIstiod(t *testing.T) {
	cluster.CreateIstiodDeploymentStandIn(t, "istio-kept", "istiod", "docker.io/istio/pilot:1.30.2")
	// istiod is looked for in every namespace: the tests after this one start without it.
	t.Cleanup(func() { deleteDeployment(t, "istio-kept", "istiod") })
	s := settings(t, "istio-kept", "kept")
	s.InstallIstio = steps.InstallAuto
	s.GatewayAddress = ""
	cluster.CreateNamespace(t, "istio-kept")
	createGatewayService(t, "istio-kept", "")
	env := prepare(t, s) // istioctl is not needed: istiod and the gateway exist
	if env.Istioctl.Path != "" || !env.Istiod.Found || env.Istiod.Version != "1.30.2" {
		t.Fatalf("env %+v", env)
	}
	st, err := steps.ControlPlane{}.Check(context.Background(), env)
	if err != nil || !st.Skip || !strings.Contains(st.Reason, "istiod 1.30.2 already runs") {
		t.Errorf("check %+v %v", st, err)
	}
}

// createGatewayService is called from goroutines too: it reports with t.Error.
func createGatewayService(t *testing.T, ns, ip string) {
	t.Helper()
	var ingress []corev1.LoadBalancerIngress
	if ip != "" {
		ingress = []corev1.LoadBalancerIngress{{IP: ip}}
	}
	if err := cluster.GatewayServiceStandIn(ns, steps.EastWestService, ingress, nil); err != nil {
		t.Error(err)
	}
}

// eastWestEnv prepares an install of the east-west gateway into istioNS with a
// stand-in istioctl, waiting at most wait for the gateway's address.
func eastWestEnv(t *testing.T, istioNS string, wait time.Duration, adjust func(*steps.Settings)) (*steps.Env, string) {
	istioctl, record := istioctlStandIn(t, "1.31.1")
	istioNS = testcluster.UniqueName(istioNS)
	s := settings(t, istioNS, "vm")
	s.InstallIstio = steps.InstallAuto
	s.Istioctl = istioctl
	s.GatewayAddress = ""
	if adjust != nil {
		adjust(&s)
	}
	cluster.CreateNamespace(t, istioNS)
	old := steps.GatewayWait
	steps.GatewayWait = wait
	t.Cleanup(func() { steps.GatewayWait = old })
	return prepare(t, s), record
}

func TestEastWestWaitsForTheLoadBalancerAddress(t *testing.T) {
	env, record := eastWestEnv(t, "istio-ew", 20*time.Second, func(s *steps.Settings) {
		s.ClusterNetwork, s.VMNetwork = "kube-network", "vm-network"
	})
	ns := env.Settings.IstioNamespace

	// istioctl would create the Service; the cloud gives it an address later.
	go func() {
		time.Sleep(time.Second)
		createGatewayService(t, ns, "")
		time.Sleep(time.Second)
		if err := cluster.SetLoadBalancerIngress(ns, steps.EastWestService, []corev1.LoadBalancerIngress{{IP: "192.0.2.77"}}); err != nil {
			t.Error(err)
		}
	}()
	rec, err := run(t, env, steps.EastWestGateway{})
	if err != nil {
		t.Fatal(err)
	}
	if done := rec.text(steps.Done); !strings.Contains(done, "gateway address 192.0.2.77 (LoadBalancer IP)") {
		t.Errorf("done: %s", done)
	}
	manifest, _ := os.ReadFile(record + ".manifest")
	for _, want := range []string{"name: istio-eastwestgateway", `topology.istio.io/network: "kube-network"`, "ISTIO_META_REQUESTED_NETWORK_VIEW", "port: 15012", "port: 15017", "injectionTemplate: gateway"} {
		if !strings.Contains(string(manifest), want) {
			t.Errorf("eastwest manifest lacks %q:\n%s", want, manifest)
		}
	}
	st, err := steps.EastWestGateway{}.Check(context.Background(), env)
	if err != nil || !st.Skip {
		t.Errorf("after install: %+v %v", st, err)
	}
}

func TestEastWestWithoutAddressOffersGatewayAddress(t *testing.T) {
	env, _ := eastWestEnv(t, "istio-noaddr", 2*time.Second, nil)
	go func() { time.Sleep(500 * time.Millisecond); createGatewayService(t, env.Settings.IstioNamespace, "") }()
	_, err := run(t, env, steps.EastWestGateway{})
	if err == nil || !strings.Contains(steps.HintOf(err), "set gatewayAddress in the answers file") {
		t.Errorf("err %v hint %q", err, steps.HintOf(err))
	}
}

func TestExposeIstiodMultiNetworkAppliesOnceAndKeepsNamespaceLabels(t *testing.T) {
	istioCRDs(t)
	ctx := context.Background()
	k := cluster.Kube(t)
	cluster.CreateNamespace(t, "istio-multi")
	ns, err := k.CoreV1().Namespaces().Get(ctx, "istio-multi", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns.Labels["owner"] = "platform-team"
	if _, err := k.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	s := settings(t, "istio-multi", "multi")
	s.ClusterNetwork, s.VMNetwork = "kube-network", "vm-network"
	env := prepare(t, s)

	acts, err := steps.ExposeIstiod{}.Plan(env)
	if err != nil || len(acts) != 4 {
		t.Fatalf("plan: %d actions, %v", len(acts), err)
	}
	rec, err := run(t, env, steps.ExposeIstiod{})
	if err != nil {
		t.Fatal(err)
	}
	if logs := rec.text(steps.Log); !strings.Contains(logs, "applied Gateway/cross-network-gateway in istio-multi") || !strings.Contains(logs, "applied Namespace/istio-multi") {
		t.Errorf("logs:\n%s", logs)
	}
	ns, _ = k.CoreV1().Namespaces().Get(ctx, "istio-multi", metav1.GetOptions{})
	if ns.Labels["topology.istio.io/network"] != "kube-network" || ns.Labels["owner"] != "platform-team" {
		t.Errorf("namespace labels %v", ns.Labels)
	}
	dyn, _ := dynamic.NewForConfig(cluster.Config)
	vs, err := dyn.Resource(schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1alpha3", Resource: "virtualservices"}).
		Namespace("istio-multi").Get(ctx, "istiod-vs", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(vs.Object["spec"]) == "" || !strings.Contains(fmt.Sprint(vs.Object["spec"]), "istiod.istio-multi.svc.cluster.local") {
		t.Errorf("istiod-vs routes elsewhere: %v", vs.Object["spec"])
	}
	rec, err = run(t, env, steps.ExposeIstiod{})
	if err != nil || rec.kinds() != "expose-istiod:skipped" {
		t.Errorf("second run: %s %v", rec.kinds(), err)
	}
}

func TestWorkloadGroupWithoutAutoregistrationIsWrittenNotApplied(t *testing.T) {
	istioCRDs(t)
	s := settings(t, "istio-system", "noauto")
	s.Autoregister = false
	env := prepare(t, s)
	rec, err := run(t, env, steps.Namespace{}, steps.WorkloadGroup{})
	if err != nil {
		t.Fatal(err)
	}
	if w := rec.text(steps.Warning); !strings.Contains(w, "no WorkloadEntry will exist") {
		t.Errorf("warnings: %q", w)
	}
	if _, err := os.Stat(filepath.Join(env.WorkDir, "workloadgroup.yaml")); err != nil {
		t.Error(err)
	}
	dyn, _ := dynamic.NewForConfig(cluster.Config)
	_, err = dyn.Resource(schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1alpha3", Resource: "workloadgroups"}).
		Namespace("noauto").Get(context.Background(), "demo", metav1.GetOptions{})
	if err == nil {
		t.Error("the WorkloadGroup was applied with autoregistration off")
	}
	rec, _ = run(t, env, steps.Namespace{}, steps.WorkloadGroup{})
	if got := rec.kinds(); got != "namespace:skipped workloadgroup:skipped" {
		t.Errorf("second run: %s", got)
	}
}

func TestVMFilesFollowTheRootCertAndTheTokenLifetime(t *testing.T) {
	cluster.CreateConfigMap(t, "istio-files", "istio", map[string]string{"mesh": "defaultConfig:\n  meshId: mesh1\n"})
	s := settings(t, "istio-files", "files")
	env := prepare(t, s)
	cluster.RootCertWriterStandIn(t, "CERT-1", "files")
	if _, err := run(t, env, steps.Namespace{}, steps.VMFiles{}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := steps.VMFiles{}.Check(ctx, env)
	if err != nil || !st.Skip || !strings.Contains(st.Reason, "istio-token valid for") {
		t.Fatalf("after generation: %+v %v", st, err)
	}

	// istiod rotated its root: the files are out of date, and regenerating keeps
	// the old cert beside the new one.
	cluster.CreateConfigMap(t, "files", "istio-ca-root-cert", map[string]string{"root-cert.pem": "CERT-2"})
	st, _ = steps.VMFiles{}.Check(ctx, env)
	if st.Skip || !strings.Contains(st.Reason, "root-cert.pem") {
		t.Fatalf("after rotation: %+v", st)
	}
	if _, err := run(t, env, steps.VMFiles{}); err != nil {
		t.Fatal(err)
	}
	cur, _ := os.ReadFile(filepath.Join(env.WorkDir, "root-cert.pem"))
	bak, _ := os.ReadFile(filepath.Join(env.WorkDir, "root-cert.pem.bak"))
	if string(cur) != "CERT-2" || string(bak) != "CERT-1" {
		t.Errorf("root-cert.pem %q, backup %q", cur, bak)
	}

	// A token about to expire is replaced.
	claims := fmt.Sprintf(`{"aud":["istio-ca"],"sub":"system:serviceaccount:files:vm","exp":%d}`, time.Now().Add(time.Minute).Unix())
	expiring := "e30." + base64.RawURLEncoding.EncodeToString([]byte(claims)) + ".sig"
	if err := os.WriteFile(filepath.Join(env.WorkDir, "istio-token"), []byte(expiring), 0o600); err != nil {
		t.Fatal(err)
	}
	st, _ = steps.VMFiles{}.Check(ctx, env)
	if st.Skip || !strings.Contains(st.Reason, "istio-token expires at") {
		t.Fatalf("expiring token: %+v", st)
	}
}

func TestDryRunChecksButDoesNotRun(t *testing.T) {
	istioctl, record := istioctlStandIn(t, "1.31.1")
	s := settings(t, "istio-dry", "dryrun")
	s.InstallIstio = steps.InstallAlways
	s.Istioctl = istioctl
	env := prepare(t, s)
	r := &steps.Runner{Steps: steps.ClusterSteps(), Env: env}
	files, err := r.DryRun(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 5 {
		t.Errorf("files %v", files)
	}
	if _, err := os.Stat(record + ".args"); err == nil {
		t.Error("dry run ran istioctl install")
	}
	if _, err := os.Stat(filepath.Join(env.WorkDir, "istio-token")); err == nil {
		t.Error("dry run minted a token")
	}
	if ok, _ := cluster.Kube(t).CoreV1().Namespaces().Get(context.Background(), "dryrun", metav1.GetOptions{}); ok != nil && ok.Name == "dryrun" {
		t.Error("dry run created the namespace")
	}
}

func TestSavedProgressBelongsToItsSettings(t *testing.T) {
	dir := t.TempDir()
	s := steps.Defaults()
	st := steps.LoadState(dir, s)
	st.Mark("vm-files", "failed", "boom")
	if err := st.Save(); err != nil {
		t.Fatal(err)
	}
	if name, ok := steps.LoadState(dir, s).Failed(); !ok || name != "vm-files" {
		t.Errorf("reloaded: %s %v", name, ok)
	}
	s.App = "other"
	if _, ok := steps.LoadState(dir, s).Failed(); ok {
		t.Error("progress of other settings was kept")
	}
	info, _ := os.Stat(steps.StatePath(dir))
	if info.Mode().Perm() != 0o600 {
		t.Errorf("state mode %v", info.Mode().Perm())
	}
}

// TestVMFilesFromTheRealIstiod generates the VM's files with the real istiod
// publishing its root certificate (no stand-in): pilot-discovery as the harness
// builds it from the istio.io/istio module (hack/tools/istio).
func TestVMFilesFromTheRealIstiod(t *testing.T) {
	bin, err := testcluster.PilotDiscovery.Path()
	if err != nil {
		t.Fatal(err)
	}
	istioCRDs(t)
	cluster.CreateConfigMap(t, "istio-system", "istio", map[string]string{"mesh": "trustDomain: cluster.local\ndefaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n  meshId: mesh1\n"})
	cluster.StartIstiod(t, bin, "")
	s := settings(t, "istio-system", testcluster.UniqueName("real-istiod"))
	env := prepare(t, s)
	if _, err := run(t, env, steps.Namespace{}, steps.VMFiles{}); err != nil {
		t.Fatal(err)
	}
	pemBytes, err := os.ReadFile(filepath.Join(env.WorkDir, "root-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		t.Fatalf("root-cert.pem is not PEM: %q", pemBytes)
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !ca.IsCA {
		t.Fatalf("root-cert.pem: CA=%v %v", ca != nil && ca.IsCA, err)
	}
	cm, err := cluster.Kube(t).CoreV1().ConfigMaps("istio-system").Get(context.Background(), "istio-ca-root-cert", metav1.GetOptions{})
	if err != nil || cm.Data["root-cert.pem"] != string(pemBytes) {
		t.Errorf("root-cert.pem is not istiod's root (%v)", err)
	}
	t.Logf("istiod's CA: %s, valid until %s", ca.Subject, ca.NotAfter.Format(time.DateOnly))
}
