package vmconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// istio-start.sh sources cluster.env as root: a proxyMetadata key that is not a
// variable name would be a command there.
func TestProxyMetadataKeysMustBeVariableNames(t *testing.T) {
	wg, err := ParseWorkloadGroup([]byte(`apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata:
  name: demo
  namespace: vm
  annotations:
    proxy.istio.io/config: |
      proxyMetadata:
        "touch /tmp/pwned; X": "1"
spec:
  template:
    serviceAccount: vm
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Render(Inputs{Group: wg, Mesh: "defaultConfig: {}\n", IstioNamespace: "istio-system", ClusterID: "Kubernetes", IngressIP: "192.0.2.1"})
	if err == nil || !strings.Contains(err.Error(), `"touch /tmp/pwned; X" is not an environment variable name`) || !strings.Contains(err.Error(), ProxyConfigAnnotation) {
		t.Fatalf("Render: %v", err)
	}
}

func TestCheckClusterEnv(t *testing.T) {
	good := []string{
		"",
		"# a comment\n\nISTIO_NAMESPACE='vm'\n",
		"CANONICAL_REVISION='latest'\nISTIO_LOCAL_EXCLUDE_PORTS=22,15090,15021,15020\nISTIO_SERVICE_CIDR='*'\n",
		`ISTIO_METAJSON_LABELS='{"app":"demo","it'"'"'s":"x"}'` + "\n",
		"PATHLIKE=/var/lib/istio\nWITH_ESCAPE=a\\$b\n",
	}
	for _, g := range good {
		if err := CheckClusterEnv([]byte(g)); err != nil {
			t.Errorf("%q: %v", g, err)
		}
	}
	bad := map[string]string{
		"touch /tmp/x\n":                "line 1",
		"$(reboot)=1\n":                 "line 1",
		"lower=1\n":                     "line 1",
		"OK=1\nX=$(reboot)\n":           "line 2: the value of X",
		"X=`reboot`\n":                  "the value of X",
		"X='unterminated\n":             "the value of X",
		"X=a;reboot\n":                  "the value of X",
		"X=a b\n":                       "the value of X",
		"X=\"$HOME\"\n":                 "the value of X",
		"X=ends-in-backslash\\\nY=1\n":  "the value of X",
		"X=ok\n ISTIO_NAMESPACE='vm'\n": "line 2",
		"X='a'\"'\"'b'\"$(reboot)\"\n":  "the value of X",
		"X=1 # comment after a value\n": "the value of X",
		"X=$'\\x41'\n":                  "the value of X",
		"X=~root\n":                     "the value of X",
		"X=a|b\n":                       "the value of X",
		"X=a&b\n":                       "the value of X",
		"X=a>b\n":                       "the value of X",
		"X=\x1b[31m\n":                  "the value of X",
		"NOEQUALS\n":                    "line 1",
		"=value\n":                      "line 1",
		"X='a'\nY=b\rZ=c\n":             "the value of Y",
		"X=${PATH}\n":                   "the value of X",
		"X=*\n":                         "the value of X",
		"X=?\n":                         "the value of X",
		"X=a\"'\"\n\"'\"\n":             "line 2",
		"X=(subshell)\n":                "the value of X",
		"X={a,b}\n":                     "the value of X",
		"X=a\tb\n":                      "the value of X",
		"X=!event\n":                    "the value of X",
		"X='ok'; touch /tmp/pwned #\n":  "the value of X",
		"1X=1\n":                        "line 1",
		"X-Y=1\n":                       "line 1",
		"X =1\n":                        "line 1",
		"export X=1\n":                  "line 1",
		"X=\"'\"$(reboot)\n":            "the value of X",
		"X='a'$(reboot)'b'\n":           "the value of X",
		"X=a\\\n":                       "the value of X",
		"X=[ab]\n":                      "the value of X",
		"X=a^b\n":                       "the value of X",
	}
	for in, want := range bad {
		err := CheckClusterEnv([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", in, err, want)
		}
	}
}

// Every cluster.env istioctl and vm2mesh write passes the check.
func TestGoldenClusterEnvsPassTheCheck(t *testing.T) {
	files, _ := filepath.Glob("testdata/*/cluster.env.golden")
	peer, _ := filepath.Glob("../../shared/peer/istioctl-workload-configure/*/cluster.env.golden")
	peer2, _ := filepath.Glob("../../shared/peer/istioctl-workload-configure/*/*/cluster.env.golden")
	files = append(append(files, peer...), peer2...)
	if len(files) == 0 {
		t.Fatal("no golden cluster.env files")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckClusterEnv(data); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	t.Logf("%d files checked", len(files))
}
