package vmconfig_test

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/vm2mesh/vm2mesh/internal/testcluster"
	"github.com/vm2mesh/vm2mesh/k8s"
	"github.com/vm2mesh/vm2mesh/vmconfig"
)

var (
	cluster *testcluster.Cluster
	update  = flag.Bool("update", false, "rewrite testdata goldens from the current output")
)

func TestMain(m *testing.M) { os.Exit(testcluster.Main(m, &cluster)) }

func client(t *testing.T) *k8s.Client {
	t.Helper()
	c, err := k8s.New(k8s.Options{Kubeconfig: cluster.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// istiodState creates what istiod and istioctl install would have made: the mesh
// ConfigMap and the root cert ConfigMap (no istiod runs in this test).
func istiodState(t *testing.T, ns, sa, meshCM, mesh string) {
	cluster.CreateServiceAccount(t, ns, sa)
	cluster.CreateConfigMap(t, ns, "istio-ca-root-cert", map[string]string{"root-cert.pem": "fake-CA-cert"})
	cluster.CreateConfigMap(t, "istio-system", meshCM, map[string]string{"mesh": mesh})
}

type genCase struct {
	name     string
	dir      string // holds workloadgroup.yaml, meshconfig.yaml (optional) and *.golden
	meshCM   string
	mesh     string // used when dir has no meshconfig.yaml
	opts     vmconfig.Options
	setup    func(t *testing.T)
	goldenOK func(name string) bool
	noDNS    bool // --capture-dns=false
}

func defaults(o vmconfig.Options) vmconfig.Options {
	o.IstioNamespace = "istio-system"
	if o.IngressService == "" {
		o.IngressService = "istio-eastwestgateway"
	}
	if o.TokenDuration == 0 {
		o.TokenDuration = 3600
	}
	o.CaptureDNS = true
	o.ClusterIDSet = true
	return o
}

func runCase(t *testing.T, tc genCase) {
	ctx := context.Background()
	wgYAML, err := os.ReadFile(filepath.Join(tc.dir, "workloadgroup.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	wg, err := vmconfig.ParseWorkloadGroup(wgYAML)
	if err != nil {
		t.Fatal(err)
	}
	mesh := tc.mesh
	if b, err := os.ReadFile(filepath.Join(tc.dir, "meshconfig.yaml")); err == nil {
		mesh = string(b)
	}
	istiodState(t, wg.Namespace, wg.Spec.GetTemplate().GetServiceAccount(), tc.meshCM, mesh)
	if tc.setup != nil {
		tc.setup(t)
	}
	opts := defaults(tc.opts)
	opts.CaptureDNS = !tc.noDNS
	files, err := vmconfig.Generate(ctx, client(t), wg, opts)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := files.Write(out); err != nil {
		t.Fatal(err)
	}
	for _, name := range vmconfig.FileNames {
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(filepath.Join(out, name))
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, st.Mode().Perm())
		}
		if name == "istio-token" {
			checkToken(t, string(got), wg.Namespace, wg.Spec.GetTemplate().GetServiceAccount(), tc.opts.TokenDuration)
			continue
		}
		golden := filepath.Join(tc.dir, name+".golden")
		if *update && tc.goldenOK == nil {
			if err := os.WriteFile(golden, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s differs from %s\n--- got\n%s\n--- want\n%s", name, golden, got, want)
		}
	}
}

func checkToken(t *testing.T, token, ns, sa string, duration int64) {
	t.Helper()
	if duration == 0 {
		duration = 3600
	}
	claims, err := vmconfig.ParseTokenClaims(token)
	if err != nil {
		t.Fatalf("istio-token: %v", err)
	}
	if !slices.Equal(claims.Audience, []string{"istio-ca"}) {
		t.Errorf("istio-token audience %v, want [istio-ca]", claims.Audience)
	}
	if want := "system:serviceaccount:" + ns + ":" + sa; claims.Subject != want {
		t.Errorf("istio-token subject %q, want %q", claims.Subject, want)
	}
	if got := claims.Expiry - claims.IssuedAt; got != duration {
		t.Errorf("istio-token lifetime %ds, want %ds", got, duration)
	}
}

// TestPeerGoldens checks generate against istioctl's own golden files, when the
// shared reference outputs sit beside the checkout.
func TestPeerGoldens(t *testing.T) {
	root, err := testcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	peer := filepath.Join(root, "..", "shared", "peer", "istioctl-workload-configure")
	if _, err := os.Stat(peer); err != nil {
		t.Skipf("no istioctl reference outputs at %s (they live beside the checkout in the team's workspace)", peer)
	}
	for _, tc := range []genCase{
		{name: "ipv4", dir: filepath.Join(peer, "vmconfig", "ipv4"), meshCM: "istio-rev-1",
			opts: vmconfig.Options{InternalIP: "10.10.10.10", IngressIP: "10.10.10.11", ClusterID: "Kubernetes", Revision: "rev-1"}},
		{name: "ipv6", dir: filepath.Join(peer, "vmconfig", "ipv6"), meshCM: "istio-rev-1",
			opts: vmconfig.Options{InternalIP: "fd00:10:96::1", IngressIP: "fd00:10:96::2", ClusterID: "Kubernetes", Revision: "rev-1"}},
		{name: "nil-proxy-metadata", dir: filepath.Join(peer, "vmconfig-nil-proxy-metadata"), meshCM: "istio", mesh: "defaultConfig: {}",
			opts: vmconfig.Options{InternalIP: "10.10.10.10", ClusterID: "Kubernetes"}},
	} {
		tc.goldenOK = func(string) bool { return true } // never rewrite the peer's files
		t.Run(tc.name, func(t *testing.T) { runCase(t, tc) })
	}
}

// TestGoldens covers the same ground with the project's own cases, so it runs
// without the shared reference outputs, plus what those do not reach: ports,
// autoregistration, an external IP, DNS capture off, a real install's mesh
// config and a gateway address read from the cluster.
func TestGoldens(t *testing.T) {
	for _, tc := range []genCase{
		{name: "revision-annotation", dir: "testdata/revision-annotation", meshCM: "istio-canary",
			opts: vmconfig.Options{InternalIP: "192.0.2.20", IngressIP: "192.0.2.21", ClusterID: "east", Revision: "canary"}},
		{name: "ipv6", dir: "testdata/ipv6", meshCM: "istio-canary",
			opts: vmconfig.Options{InternalIP: "2001:db8::20", IngressIP: "2001:db8::21", ClusterID: "east", Revision: "canary"}},
		{name: "empty-default-config", dir: "testdata/empty-default-config", meshCM: "istio", mesh: "defaultConfig: {}",
			opts: vmconfig.Options{InternalIP: "192.0.2.20", ClusterID: "Kubernetes"}},
		{name: "installed-mesh", dir: "testdata/installed-mesh", meshCM: "istio",
			opts:  vmconfig.Options{ExternalIP: "198.51.100.7", ClusterID: "cluster1", AutoRegister: true, TokenDuration: 7200},
			setup: func(t *testing.T) { gatewayService(t, "istio-system", "istio-eastwestgateway", "198.51.100.1", "") }},
		{name: "no-dns-capture", dir: "testdata/no-dns-capture", meshCM: "istio-nodns",
			opts: vmconfig.Options{ClusterID: "Kubernetes", Revision: "nodns", IngressService: "no-such-gateway"}, noDNS: true},
	} {
		t.Run(tc.name, func(t *testing.T) { runCase(t, tc) })
	}
}

// gatewayService makes the east-west gateway Service with the given LoadBalancer
// status, as a cloud controller would.
func gatewayService(t *testing.T, ns, name, ip, hostname string) {
	t.Helper()
	cluster.CreateNamespace(t, ns)
	var ingress []corev1.LoadBalancerIngress
	if ip != "" || hostname != "" {
		ingress = []corev1.LoadBalancerIngress{{IP: ip, Hostname: hostname}}
	}
	if err := cluster.GatewayServiceStandIn(ns, name, ingress, nil); err != nil {
		t.Fatal(err)
	}
}
