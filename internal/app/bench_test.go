package app_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vm2mesh/vm2mesh/internal/testcluster"
)

// BenchmarkGenerate times the whole command, process start to exit, for
// `vm2mesh generate` and the harness's istioctl (`istioctl x workload entry
// configure`), on the same WorkloadGroup and cluster.
// hack/bench-generate runs it and prints the medians and their ratio.
func BenchmarkGenerate(b *testing.B) {
	ns := testcluster.UniqueName("bench")
	cluster.CreateServiceAccount(b, ns, "vm")
	cluster.CreateConfigMap(b, ns, "istio-ca-root-cert", map[string]string{"root-cert.pem": "-----BEGIN CERTIFICATE-----\nbench\n-----END CERTIFICATE-----\n"})
	cluster.CreateConfigMap(b, "istio-system", "istio", map[string]string{"mesh": meshConfig})
	wg := filepath.Join(b.TempDir(), "workloadgroup.yaml")
	if err := os.WriteFile(wg, []byte("apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata:\n  name: demo\n  namespace: "+ns+
		"\nspec:\n  metadata:\n    labels:\n      app: demo\n  template:\n    serviceAccount: vm\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	args := []string{"-f", wg, "--clusterID", "cluster1", "--ingressIP", "192.0.2.7", "--kubeconfig", cluster.Kubeconfig}
	out := b.TempDir()
	bench := func(b *testing.B, program string, argv []string) {
		for range b.N {
			if r := runCmdEnv(b, nil, program, argv...); r.code != 0 {
				b.Fatalf("%s: exit %d: %s", program, r.code, r.stderr)
			}
		}
	}
	b.Run("vm2mesh", func(b *testing.B) { bench(b, binary, append([]string{"generate", "-o", out}, args...)) })
	istioctl, err := testcluster.Istioctl.Path()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("istioctl", func(b *testing.B) {
		bench(b, istioctl, append([]string{"x", "workload", "entry", "configure", "-o", out}, args...))
	})
}
