package steps_test

import (
	"strings"
	"testing"

	"github.com/vm2mesh/vm2mesh/steps"
)

func TestDefaultsAreTheGuidesAndValid(t *testing.T) {
	s := steps.Defaults()
	if errs := s.Validate(); len(errs) > 0 {
		t.Fatal(errs)
	}
	if s.App != "demo" || s.Namespace != "vm" || s.ServiceAccount != "vm" || s.Cluster != "Kubernetes" || s.MeshID != "mesh1" || s.TokenDuration != 3600 {
		t.Errorf("defaults %+v", s)
	}
}

func TestAnswersErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want []string
	}{
		{"app: Demo", []string{"app:", `"Demo" is not a valid name`}},
		{"serviceAccount: vm.sa", []string{"serviceAccount:"}},
		{"namespace: \"\"", []string{"namespace: must not be empty"}},
		{"tokenDuration: -1", []string{"tokenDuration: -1 is negative"}},
		{"tokenDuration: 60", []string{"tokenDuration: 60 seconds is shorter"}},
		{"installIstio: maybe", []string{"installIstio:"}},
		{"eastwestInstall: helm", []string{`eastwestInstall: "helm" must be auto, istioctl, manifests or none`}},
		{"installIstio: never\neastwestInstall: istioctl", []string{"eastwestInstall: istioctl runs istioctl, which installIstio: never rules out"}},
		{"clusterNetwork: kube-network", []string{"vmNetwork: set clusterNetwork and vmNetwork together"}},
		{"gatewayAddress: not_a_host!", []string{"gatewayAddress:"}},
		{"app: demo\ncolour: blue\nsize: 3", []string{`unknown key "colour" (line 2), "size" (line 3)`}},
		{"app: [1, 2]", []string{"answers.yaml:", "line 1"}},
		{"app: Demo\nnamespace: Vm", []string{"app:", "namespace:"}},
	} {
		_, err := steps.ParseAnswers("answers.yaml", []byte(tc.yaml))
		if err == nil {
			t.Errorf("%q: no error", tc.yaml)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q lacks %q", tc.yaml, err, w)
			}
		}
	}
}

func TestAnswersFileFromTheIssue(t *testing.T) {
	s, err := steps.ParseAnswers("answers.yaml", []byte(`kubeContext: ""          # empty = current context
cluster: Kubernetes      # CLUSTER
clusterNetwork: ""       # CLUSTER_NETWORK
meshID: mesh1
revision: ""
installIstio: auto       # auto | always | never
app: demo                # VM_APP
namespace: vm            # VM_NAMESPACE
serviceAccount: vm       # SERVICE_ACCOUNT
vmNetwork: ""            # VM_NETWORK
workDir: ./vmintegration # WORK_DIR
autoregister: true
tokenDuration: 3600
gatewayAddress: ""       # manual east-west gateway address when the cluster has no load balancer
`))
	if err != nil {
		t.Fatal(err)
	}
	if s != steps.Defaults() {
		t.Errorf("the issue's example differs from the defaults: %+v", s)
	}
	if s, err := steps.ParseAnswers("empty.yaml", nil); err != nil || s != steps.Defaults() {
		t.Errorf("an empty answers file: %+v %v", s, err)
	}
	multi, err := steps.ParseAnswers("multi.yaml", []byte("clusterNetwork: kube-network\nvmNetwork: vm-network\ncluster: cluster1\n"))
	if err != nil || !multi.MultiNetwork() {
		t.Errorf("multi-network: %+v %v", multi, err)
	}
}

func TestShellJoinQuotesWhatTheShellWouldSplit(t *testing.T) {
	got := steps.ShellJoin([]string{"istioctl", "install", "-f", "/a dir/x.yaml", "it's", ""})
	want := `istioctl install -f '/a dir/x.yaml' 'it'"'"'s' ''`
	if got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}
