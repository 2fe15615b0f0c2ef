package k8s_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/vm2mesh/vm2mesh/internal/testcluster"
	"github.com/vm2mesh/vm2mesh/k8s"
	"github.com/vm2mesh/vm2mesh/vmconfig"
)

var cluster *testcluster.Cluster

func TestMain(m *testing.M) { os.Exit(testcluster.Main(m, &cluster)) }

func newClient(t *testing.T) *k8s.Client {
	t.Helper()
	c, err := k8s.New(k8s.Options{Kubeconfig: cluster.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestContextsAndPing(t *testing.T) {
	names, current, err := k8s.Contexts(cluster.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if current != testcluster.ContextName || !slices.Contains(names, testcluster.ContextName) {
		t.Fatalf("contexts %v current %q", names, current)
	}
	v, err := newClient(t).Ping(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if v != "v1.34.4" {
		t.Errorf("server version %q, want v1.34.4", v)
	}
}

func TestFirstContactErrorsSayCauseAndFix(t *testing.T) {
	dir := t.TempDir()
	expired := filepath.Join(dir, "expired")
	if err := cluster.WriteKubeconfig(expired, "not-a-valid-token"); err != nil {
		t.Fatal(err)
	}
	c, err := k8s.New(k8s.Options{Kubeconfig: expired})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Ping(context.Background())
	if err == nil || !strings.Contains(err.Error(), "rejected the credentials") || !strings.Contains(err.Error(), "log in again") {
		t.Errorf("wrong credentials: %v", err)
	}

	_, err = k8s.New(k8s.Options{Kubeconfig: cluster.Kubeconfig, Context: "nope"})
	if err == nil || !strings.Contains(err.Error(), `context "nope" is not in the kubeconfig`) {
		t.Errorf("unknown context: %v", err)
	}
}

func TestEnsureNamespaceAndServiceAccountCreateOnce(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	for i, want := range []bool{true, false} {
		created, err := c.EnsureNamespace(ctx, "ensure-ns")
		if err != nil || created != want {
			t.Fatalf("run %d: namespace created=%v err=%v, want created=%v", i, created, err, want)
		}
		created, err = c.EnsureServiceAccount(ctx, "ensure-ns", "vm")
		if err != nil || created != want {
			t.Fatalf("run %d: service account created=%v err=%v, want created=%v", i, created, err, want)
		}
	}
}

func TestTokenRequestAudienceAndExpiry(t *testing.T) {
	ctx := context.Background()
	cluster.CreateServiceAccount(t, "token-ns", "vm")
	tok, err := newClient(t).Token(ctx, "token-ns", "vm", k8s.IstioCAAudience, 1200)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := vmconfig.ParseTokenClaims(tok)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(claims.Audience, []string{"istio-ca"}) || claims.Subject != "system:serviceaccount:token-ns:vm" {
		t.Errorf("claims %+v", claims)
	}
	if d := claims.Expiry - claims.IssuedAt; d != 1200 {
		t.Errorf("lifetime %d, want 1200", d)
	}
	if _, err := newClient(t).Token(ctx, "token-ns", "missing", k8s.IstioCAAudience, 1200); err == nil || !strings.Contains(err.Error(), "service account missing in namespace token-ns") {
		t.Errorf("missing service account: %v", err)
	}
}

const configMapYAML = `
apiVersion: v1
kind: ConfigMap
metadata:
  name: applied
  namespace: apply-ns
data:
  a: "1"
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: applied-sa
  namespace: apply-ns
`

func TestServerSideApplyIsIdempotentAndRefusesForeignFields(t *testing.T) {
	ctx := context.Background()
	cluster.CreateNamespace(t, "apply-ns")
	c := newClient(t)
	objs, err := k8s.ParseObjects([]byte(configMapYAML))
	if err != nil || len(objs) != 2 {
		t.Fatalf("parse: %d objects, %v", len(objs), err)
	}
	for _, o := range objs {
		if ok, err := c.UpToDate(ctx, o); err != nil || ok {
			t.Fatalf("before apply: up to date=%v err=%v", ok, err)
		}
	}
	var versions []string
	for _, o := range objs {
		out, err := c.Apply(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, out.GetResourceVersion())
	}
	for i, o := range objs {
		if ok, err := c.UpToDate(ctx, o); err != nil || !ok {
			t.Fatalf("after apply: up to date=%v err=%v", ok, err)
		}
		out, err := c.Apply(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if out.GetResourceVersion() != versions[i] {
			t.Errorf("re-applying %s changed it", k8s.Describe(o))
		}
	}

	// Someone else changes our field: we see it, and do not take it back by force.
	k := cluster.Kube(t)
	cm, err := k.CoreV1().ConfigMaps("apply-ns").Get(ctx, "applied", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["a"] = "2"
	if _, err := k.CoreV1().ConfigMaps("apply-ns").Update(ctx, cm, metav1.UpdateOptions{FieldManager: "someone-else"}); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.UpToDate(ctx, objs[0]); err == nil && ok {
		t.Error("UpToDate after a foreign change says up to date")
	}
	if _, err := c.Apply(ctx, objs[0]); err == nil || !strings.Contains(err.Error(), "another tool manages fields") {
		t.Errorf("apply over a foreign field: %v", err)
	}
}

func TestApplyWithoutCRDSaysInstallIstio(t *testing.T) {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.vm2mesh.test/v1", "kind": "Nothing",
		"metadata": map[string]any{"name": "x", "namespace": "default"},
	}}
	_, err := newClient(t).Apply(context.Background(), obj)
	if err == nil || !strings.Contains(err.Error(), "no Nothing in example.vm2mesh.test/v1") {
		t.Errorf("apply of an unknown kind: %v", err)
	}
}

// gateway makes the gateway Service and sets its status as a cloud's load
// balancer controller would.
func gateway(t *testing.T, ns string, ingress []corev1.LoadBalancerIngress, externalIPs []string) {
	t.Helper()
	cluster.CreateNamespace(t, ns)
	if err := cluster.GatewayServiceStandIn(ns, "istio-eastwestgateway", ingress, externalIPs); err != nil {
		t.Fatal(err)
	}
}

func TestGatewayAddress(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	gateway(t, "gw-ip", []corev1.LoadBalancerIngress{{IP: "192.0.2.10"}}, nil)
	// "localhost" resolves from /etc/hosts: a hostname-only load balancer without
	// leaving the machine.
	gateway(t, "gw-hostname", []corev1.LoadBalancerIngress{{Hostname: "localhost"}}, nil)
	gateway(t, "gw-external", nil, []string{"192.0.2.30"})
	gateway(t, "gw-none", nil, nil)
	for _, tc := range []struct{ ns, ip, source string }{
		{"gw-ip", "192.0.2.10", "LoadBalancer IP"},
		{"gw-hostname", "127.0.0.1", "LoadBalancer hostname localhost"},
		{"gw-external", "192.0.2.30", "externalIPs"},
	} {
		addr, err := c.GatewayAddress(ctx, tc.ns, "istio-eastwestgateway", nil)
		if err != nil || addr.IP != tc.ip || addr.Source != tc.source {
			t.Errorf("%s: %+v %v, want %s from %s", tc.ns, addr, err, tc.ip, tc.source)
		}
	}
	if _, err := c.GatewayAddress(ctx, "gw-none", "istio-eastwestgateway", nil); !errors.Is(err, k8s.ErrNoGatewayAddress) {
		t.Errorf("no address: %v", err)
	}
	if _, err := c.GatewayAddress(ctx, "gw-missing", "istio-eastwestgateway", nil); !errors.Is(err, k8s.ErrNoGatewayAddress) {
		t.Errorf("no service: %v", err)
	}

	// The address arrives while we wait.
	go func() {
		time.Sleep(1500 * time.Millisecond)
		if err := cluster.SetLoadBalancerIngress("gw-none", "istio-eastwestgateway", []corev1.LoadBalancerIngress{{IP: "192.0.2.40"}}); err != nil {
			t.Error(err)
		}
	}()
	addr, err := c.WaitGatewayAddress(ctx, "gw-none", "istio-eastwestgateway", nil, 20*time.Second)
	if err != nil || addr.IP != "192.0.2.40" {
		t.Errorf("wait: %+v %v", addr, err)
	}
}

func TestIstiodVersionFromImage(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	info, err := c.Istiod(ctx, "no-istio-here", "")
	if err != nil || info.Found {
		t.Fatalf("no istiod: %+v %v", info, err)
	}
	cluster.CreateNamespace(t, "istio-version")
	cluster.CreateIstiodDeploymentStandIn(t, "istio-version", "istiod-canary", "docker.io/istio/pilot:1.24.2-distroless")
	info, err = c.Istiod(ctx, "istio-version", "canary")
	if err != nil || !info.Found || info.Version != "1.24.2" || info.Env["PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION"] != "true" {
		t.Errorf("istiod: %+v %v", info, err)
	}
	for image, want := range map[string]string{
		"gcr.io/istio-release/pilot:1.26.0":           "1.26.0",
		"registry:5000/istio/pilot:1.25.1@sha256:abc": "1.25.1",
		"pilot": "",
	} {
		if got := k8s.ImageTagVersion(image); got != want {
			t.Errorf("ImageTagVersion(%q) = %q, want %q", image, got, want)
		}
	}
}

func TestMinorSkew(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		skew int
		ok   bool
	}{
		{"1.24.2", "1.24.0", 0, true},
		{"1.25.0", "1.24.3", 1, true},
		{"1.22.1", "1.24.3", 2, true},
		{"v1.24", "1.26.0", 2, true},
		{"unknown", "1.24.0", 0, false},
	} {
		skew, ok := k8s.MinorSkew(tc.a, tc.b)
		if skew != tc.skew || ok != tc.ok {
			t.Errorf("MinorSkew(%s, %s) = %d, %v", tc.a, tc.b, skew, ok)
		}
	}
}
