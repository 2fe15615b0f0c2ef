package app_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/vm2mesh/vm2mesh/internal/testcluster"
)

// TestGenerateByNameReadsTheWorkloadGroupFromTheAPIServer: `generate --name
// NAME -n NAMESPACE` writes what `generate -f` of the same WorkloadGroup writes,
// and what the real `istioctl x workload entry configure --name -n` writes (the
// token by its claims).
func TestGenerateByNameReadsTheWorkloadGroupFromTheAPIServer(t *testing.T) {
	istioctl, err := testcluster.Istioctl.Path()
	if err != nil {
		t.Fatal(err)
	}
	istioInstalled(t)
	ns := testcluster.UniqueName("by-name")
	cluster.CreateServiceAccount(t, ns, "vm")
	cluster.CreateConfigMap(t, ns, "istio-ca-root-cert", map[string]string{"root-cert.pem": "-----BEGIN CERTIFICATE-----\nby name\n-----END CERTIFICATE-----\n"})
	wgYAML := `apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata:
  name: demo
  namespace: ` + ns + `
spec:
  metadata:
    labels:
      app: demo
      version: v2
  template:
    serviceAccount: vm
    network: vm-network
    ports:
      grpc: 9090
  probe:
    tcpSocket:
      port: 9090
`
	wgFile := filepath.Join(t.TempDir(), "workloadgroup.yaml")
	if err := os.WriteFile(wgFile, []byte(wgYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	obj := map[string]any{}
	if err := yaml.Unmarshal([]byte(wgYAML), &obj); err != nil {
		t.Fatal(err)
	}
	dyn, _ := dynamic.NewForConfig(cluster.Config)
	gvr := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "workloadgroups"}
	if _, err := dyn.Resource(gvr).Namespace(ns).Create(context.Background(), &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	common := []string{"--clusterID", "cluster1", "--ingressIP", "192.0.2.8", "--autoregister", "--kubeconfig", cluster.Kubeconfig}
	byFile, byName, theirs := filepath.Join(t.TempDir(), "file"), filepath.Join(t.TempDir(), "name"), filepath.Join(t.TempDir(), "istioctl")
	if r := run(t, nil, append([]string{"generate", "-f", wgFile, "-o", byFile}, common...)...); r.code != 0 {
		t.Fatalf("generate -f: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r := run(t, nil, append([]string{"generate", "--name", "demo", "-n", ns, "-o", byName}, common...)...)
	if r.code != 0 {
		t.Fatalf("generate --name: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "Configuration generation into directory "+byName+" was successful") {
		t.Errorf("stdout: %s", r.stdout)
	}
	if r := runCmd(t, istioctl, append([]string{"x", "workload", "entry", "configure", "--name", "demo", "-n", ns, "-o", theirs}, common...)...); r.code != 0 {
		t.Fatalf("istioctl: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	testcluster.SameVMFiles(t, byFile, byName)
	testcluster.SameVMFiles(t, theirs, byName)

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-f", wgFile, "--name", "demo", "-n", ns}, "the flags -f and --name/-n are mutually exclusive"},
		{[]string{"-f", wgFile, "-n", ns}, "the flags -f and --name/-n are mutually exclusive"},
		{[]string{"--name", "demo"}, "--name demo: give the WorkloadGroup's namespace too (-n NAMESPACE"},
		{[]string{"-n", ns}, "give the WorkloadGroup's name too (--name NAME)"},
		{[]string{}, "expecting a WorkloadGroup: -f workloadgroup.yaml, or --name NAME -n NAMESPACE"},
		{[]string{"--name", "missing", "-n", ns}, "workloadgroup missing not found in namespace " + ns},
	} {
		out := filepath.Join(t.TempDir(), "out")
		r := run(t, nil, append(append([]string{"generate", "-o", out}, tc.args...), common...)...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("generate %v: exit %d, want 1 and %q:\n%s", tc.args, r.code, tc.want, r.stderr)
		}
	}
}
