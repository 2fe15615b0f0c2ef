package app_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vm2mesh/vm2mesh/internal/testcluster"
)

// TestGenerateMatchesTheRealIstioctl runs `istioctl x workload entry configure`
// and `vm2mesh generate` on the same WorkloadGroup and cluster and compares the
// files (the token by its claims: each run mints its own), with the istioctl the
// harness builds from the istio.io/istio module (hack/tools/istio).
// No proxy.istio.io/config annotation here: with a mesh config whose defaultConfig
// has no proxyMetadata (as istioctl install leaves it), istioctl panics on one
// (assignment to entry in nil map); vm2mesh's own goldens cover that case.
func TestGenerateMatchesTheRealIstioctl(t *testing.T) {
	istioctl, err := testcluster.Istioctl.Path()
	if err != nil {
		t.Fatal(err)
	}
	istioInstalled(t)
	ns := testcluster.UniqueName("side")
	cluster.CreateServiceAccount(t, ns, "vm")
	cluster.CreateConfigMap(t, ns, "istio-ca-root-cert", map[string]string{"root-cert.pem": "-----BEGIN CERTIFICATE-----\nside by side\n-----END CERTIFICATE-----\n"})
	wg := filepath.Join(t.TempDir(), "workloadgroup.yaml")
	if err := os.WriteFile(wg, []byte(`apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata:
  name: demo
  namespace: `+ns+`
spec:
  metadata:
    labels:
      app: demo
      version: v1
  template:
    serviceAccount: vm
    network: vm-network
    ports:
      http: 8080
  probe:
    httpGet:
      port: 8080
      path: /ready
`), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-f", wg, "--clusterID", "cluster1", "--ingressIP", "192.0.2.7", "--internalIP", "10.0.0.7", "--autoregister", "--kubeconfig", cluster.Kubeconfig}
	theirs, ours := filepath.Join(t.TempDir(), "istioctl"), filepath.Join(t.TempDir(), "vm2mesh")
	r := runCmd(t, istioctl, append([]string{"x", "workload", "entry", "configure", "-o", theirs}, args...)...)
	if r.code != 0 {
		t.Fatalf("istioctl: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r = run(t, nil, append([]string{"generate", "-o", ours}, args...)...); r.code != 0 {
		t.Fatalf("vm2mesh: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	testcluster.SameVMFiles(t, theirs, ours)
}
