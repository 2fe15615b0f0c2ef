package app_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/vm2mesh/vm2mesh/internal/testvm"
	"github.com/vm2mesh/vm2mesh/k8s"
	"github.com/vm2mesh/vm2mesh/steps"
)

// doctorLine is the line doctor printed for a check, and the hint line after it.
func doctorLine(t *testing.T, out, name string) (line, hint string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, " ") && !strings.HasPrefix(l, "   hint: ") && strings.Contains(l, " "+name+": ") {
			if i+1 < len(lines) && strings.HasPrefix(lines[i+1], "   hint: ") {
				hint = lines[i+1]
			}
			return l, hint
		}
	}
	t.Fatalf("doctor printed no line for %s:\n%s", name, out)
	return "", ""
}

// throwawayCA is a self-signed CA certificate no mesh uses, as PEM.
func throwawayCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "another CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// standInGaps are the checks an onboarded sandbox VM fails because its agent is
// a stand-in: it gets no certificate and sets no iptables rules. Doctor fails
// them, as it must on a real VM; the end-to-end test, with the real agent and
// istiod, has doctor pass them all.
var standInGaps = []string{"vm-agent-cert", "vm-iptables"}

// failingChecks are the names of the checks doctor's text output fails.
func failingChecks(stdout string) []string {
	var names []string
	for _, l := range strings.Split(stdout, "\n") {
		if rest, ok := strings.CutPrefix(l, " ✗ "); ok {
			name, _, _ := strings.Cut(rest, ":")
			names = append(names, name)
		}
	}
	return names
}

// onlyStandInGaps: doctor failed the stand-in's gaps and nothing else (plus
// extra, the fault a test made).
func onlyStandInGaps(t *testing.T, r result, extra ...string) {
	t.Helper()
	want := append(slices.Clone(standInGaps), extra...)
	slices.Sort(want)
	got := failingChecks(r.stdout)
	slices.Sort(got)
	if r.code != 1 || !slices.Equal(got, want) {
		t.Errorf("doctor: exit %d, failing %v, want exit 1 and %v\n%s%s", r.code, got, want, r.stdout, r.stderr)
	}
}

// An onboarded sandbox VM (the stand-in agent, istiod's WorkloadEntry stood in)
// passes every doctor check but the stand-in's gaps; then one fault at a time
// makes it fail that check too, naming it and its hint, and apply puts it back.
func TestDoctorPassesThenNamesEachFault(t *testing.T) {
	testvm.Skip(t)
	vm := testvm.Start(t, testvm.Options{})
	path, _, ns := onboardingAnswers(t, vm, vmCase{family: testvm.Debian, user: "root"})
	if r := run(t, nil, "apply", "-f", path, "--yes", "--only", "vm"); r.code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	autoregisteredEntryStandIn(t, ns, vm.Addr)
	knownHosts := vmKey(t, path, "knownHostsFile")
	before, err := os.ReadFile(knownHosts)
	if err != nil {
		t.Fatal(err)
	}

	// What doctor could change: the cluster's objects, and on the VM the files
	// apply placed, its own directory and /etc/hosts; /tmp by its entries only
	// (the connection's private directory comes and goes there).
	const vmState = "cd / && ls -la --time-style=full-iso /etc/hosts /etc/certs /var/run/secrets/tokens /var/lib/istio/envoy /etc/istio/config /var/lib/vm2mesh && ls -A /tmp && md5sum /etc/hosts"
	objects, files := snapshot(t), vm.MustExec(t, vmState)

	r := run(t, nil, "doctor", "-f", path)
	t.Log(r.stdout)
	onlyStandInGaps(t, r)
	for _, name := range steps.DoctorCheckNames() {
		doctorLine(t, r.stdout, name)
	}
	for name, want := range map[string]string{
		"cluster-api":         " ✓ ",
		"istiod":              "istiod 1.31.1, revision default",
		"workloadgroup":       " ✓ ",
		"vm-ssh":              "Debian GNU/Linux 12",
		"vm-package":          "istio-sidecar 1.31.1-vm2mesh",
		"vm-file-istio-token": "/var/run/secrets/tokens/istio-token, istio-proxy, mode 600",
		"vm-root-cert":        " ✓ ",
		"vm-token":            "audience istio-ca",
		"vm-agent":            " ✓ vm-agent: running",
		"vm-hosts":            "istiod.istio-system.svc # managed by vm2mesh",
		"vm-istiod-port":      " ✓ ",
		"vm-agent-log":        " ✓ ",
		// The stand-in's gaps, failed with the reason.
		"vm-agent-cert": " ✗ vm-agent-cert: no certificate at /etc/certs/cert-chain.pem",
		"vm-iptables":   " ✗ vm-iptables: no ISTIO_* chains",
		// istiod's entry, stood in.
		"workloadentry": " ✓ workloadentry: ",
	} {
		if line, _ := doctorLine(t, r.stdout, name); !strings.Contains(line, want) {
			t.Errorf("%s: %q lacks %q", name, line, want)
		}
	}
	if after, _ := os.ReadFile(knownHosts); string(after) != string(before) {
		t.Error("doctor changed known_hosts")
	}
	if left := vm.MustExec(t, "ls -d /tmp/vm2mesh.* 2>/dev/null || true"); left != "" {
		t.Errorf("doctor left %s on the VM", left)
	}
	assertUnchanged(t, objects)
	if after := vm.MustExec(t, vmState); after != files {
		t.Errorf("doctor changed the VM:\n%s\nwas\n%s", after, files)
	}

	t.Run("json", func(t *testing.T) {
		r := run(t, nil, "doctor", "-f", path, "-o", "json")
		if r.code != 1 {
			t.Fatalf("exit %d (the stand-in's gaps fail)\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		var doc map[string]json.RawMessage
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, r.stdout)
		}
		if string(doc["ok"]) != "false" {
			t.Errorf("ok is %s", doc["ok"])
		}
		var checks []map[string]any
		if err := json.Unmarshal(doc["checks"], &checks); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range checks {
			var keys []string
			for k := range c {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if want := []string{"found", "hint", "name", "section", "status"}; !slices.Equal(keys, want) {
				t.Errorf("check %v has keys %v, want %v", c["name"], keys, want)
			}
			if !slices.Contains([]any{"ok", "fail", "warn", "skip"}, c["status"]) || !slices.Contains([]any{"cluster", "vm"}, c["section"]) || c["found"] == "" {
				t.Errorf("check %v", c)
			}
			names = append(names, c["name"].(string))
		}
		if !slices.Equal(names, steps.DoctorCheckNames()) {
			t.Errorf("checks %v, want %v", names, steps.DoctorCheckNames())
		}
	})

	restore := func(t *testing.T, only string) {
		t.Helper()
		if r := run(t, nil, "apply", "-f", path, "--yes", "--only", only); r.code != 0 {
			t.Fatalf("restoring: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
	}
	for _, f := range []struct {
		fault      string
		do         func(t *testing.T)
		check      string
		found      string
		hint       string
		restoreVia string
	}{
		{"agent stopped", func(t *testing.T) {
			vm.MustExec(t, "pkill -f '^/bin/sh /usr/local/bin/istio-start[.]sh'; sleep 0.5")
		}, "vm-agent", "the agent is not running", "start it", "vm"},
		{"token removed", func(t *testing.T) {
			vm.MustExec(t, "rm /var/run/secrets/tokens/istio-token")
		}, "vm-file-istio-token", "/var/run/secrets/tokens/istio-token is missing", "--only vm", "vm"},
		{"hosts line removed", func(t *testing.T) {
			// In place: /etc/hosts may be a mount point.
			vm.MustExec(t, "grep -v 'managed by vm2mesh' /etc/hosts > /root/hosts.new; cat /root/hosts.new > /etc/hosts; rm /root/hosts.new")
		}, "vm-hosts", "/etc/hosts has no line for istiod.istio-system.svc", "--only vm", "vm"},
		{"another CA's root cert", func(t *testing.T) {
			vm.MustExec(t, "cat > /etc/certs/root-cert.pem <<'EOF'\n"+throwawayCA(t)+"EOF\n")
		}, "vm-root-cert", "is not the cluster's CA (it holds a certificate of CN=another CA)", "fetches the current root cert", "vm"},
		{"WorkloadGroup deleted", func(t *testing.T) {
			c, err := k8s.New(k8s.Options{Kubeconfig: cluster.Kubeconfig})
			if err != nil {
				t.Fatal(err)
			}
			gvr := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "workloadgroups"}
			if err := c.Dynamic.Resource(gvr).Namespace(ns).Delete(context.Background(), "demo", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}, "workloadgroup", "WorkloadGroup " + ns + "/demo not found", "--only cluster", "cluster"},
	} {
		t.Run(f.fault, func(t *testing.T) {
			f.do(t)
			r := run(t, nil, "doctor", "-f", path)
			line, hint := doctorLine(t, r.stdout, f.check)
			if r.code != 1 || !strings.HasPrefix(line, " ✗ ") || !strings.Contains(line, f.found) || !strings.Contains(hint, f.hint) {
				t.Errorf("exit %d; %s line:\n%s\n%s\nwant ✗, %q and a hint with %q; all:\n%s%s", r.code, f.check, line, hint, f.found, f.hint, r.stdout, r.stderr)
			}
			onlyStandInGaps(t, r, f.check)
			if f.restoreVia == "cluster" {
				// The same failure as JSON: ok false, the check's status and hint.
				r := run(t, nil, "doctor", "-f", path, "-o", "json")
				var doc struct {
					OK     bool                `json:"ok"`
					Checks []steps.CheckResult `json:"checks"`
				}
				if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != 1 || doc.OK {
					t.Errorf("json: exit %d, ok %v, %v\n%s", r.code, doc.OK, err, r.stdout)
				}
				for _, c := range doc.Checks {
					if c.Name == f.check && (c.Status != steps.CheckFail || !strings.Contains(c.Hint, f.hint)) {
						t.Errorf("json: %+v", c)
					}
				}
			}
			restore(t, f.restoreVia)
			onlyStandInGaps(t, run(t, nil, "doctor", "-f", path))
		})
	}
}

// Doctor never remembers a host key: an unknown host is refused (and no VM
// check runs), a pinned one is trusted for the run only; known_hosts is never
// written.
func TestDoctorNeverRemembersAHostKey(t *testing.T) {
	testvm.Skip(t)
	vm := testvm.Start(t, testvm.Options{})
	path, _, ns := onboardingAnswers(t, vm, vmCase{family: testvm.Debian, user: "root"})
	if r := run(t, nil, "apply", "-f", path, "--yes", "--only", "vm"); r.code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	autoregisteredEntryStandIn(t, ns, vm.Addr)
	// No cluster (a kubeconfig whose server refuses): the cluster's checks after
	// the first are skipped, the VM's still run, the root cert compared with
	// the work directory's copy.
	kc, err := os.ReadFile(cluster.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(t.TempDir(), "kubeconfig")
	writeTestFile(t, dead, regexp.MustCompile(`server: \S+`).ReplaceAllString(string(kc), "server: https://127.0.0.1:1"))
	r := run(t, nil, "doctor", "-f", path, "--kubeconfig", dead)
	for name, want := range map[string]string{
		"cluster-api":   " ✗ cluster-api: ",
		"istiod":        " - istiod: skipped: needs cluster-api, which failed",
		"workloadentry": " - workloadentry: skipped: needs workloadgroup, which was skipped",
		"vm-agent":      " ✓ vm-agent: running",
		"vm-root-cert":  " ! vm-root-cert: the same as the work directory's (the cluster was not reached",
	} {
		if line, _ := doctorLine(t, r.stdout, name); r.code != 1 || !strings.HasPrefix(line, want) {
			t.Errorf("no cluster: exit %d, %s: %q, want %q", r.code, name, line, want)
		}
	}

	fresh := filepath.Join(t.TempDir(), "known_hosts")
	setVMKey(t, path, "knownHostsFile", fresh)

	onlyStandInGaps(t, run(t, nil, "doctor", "-f", path)) // pinned: the VM's checks run
	if _, err := os.Stat(fresh); err == nil {
		t.Error("doctor wrote known_hosts for a pinned key")
	}

	setVMKey(t, path, "hostKeyFingerprint", "\"\"\n  acceptNewHostKey: true")
	r = run(t, nil, "doctor", "-f", path)
	line, hint := doctorLine(t, r.stdout, "vm-ssh")
	if r.code != 1 || !strings.Contains(line, "not in known_hosts") || !strings.Contains(hint, "never remembers a host key") {
		t.Errorf("unknown host: exit %d\n%s", r.code, r.stdout)
	}
	if l, _ := doctorLine(t, r.stdout, "vm-agent"); !strings.Contains(l, "skipped: needs vm-package, which was skipped") {
		t.Errorf("VM checks after a failed SSH: %s", l)
	}
	if _, err := os.Stat(fresh); err == nil {
		t.Error("doctor wrote known_hosts with acceptNewHostKey")
	}
}

// Flags are checked before anything is read or contacted.
func TestDoctorRefusesBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"doctor"}, "expecting an answers file: -f answers.yaml"},
		{[]string{"doctor", "-f", "answers.yaml", "-o", "yaml"}, `-o takes text or json, not "yaml"`},
		{[]string{"doctor", "-f", "answers.yaml", "extra"}, "takes no arguments"},
	} {
		r := run(t, nil, c.args...)
		if r.code != 1 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 1 and %q", c.args, r.code, r.stderr, c.want)
		}
	}
}

// On a RHEL-like VM reached as a user with sudo, doctor reads the rpm database
// and the agent's files the same way, and passes (but for the stand-in's gaps).
func TestDoctorOnRHELThroughSudo(t *testing.T) {
	testvm.Skip(t)
	vm := testvm.Start(t, testvm.Options{Family: testvm.RHEL, ProvidesRPM: standInPackages(t).BaseProvidesRPM})
	path, _, ns := onboardingAnswers(t, vm, vmCase{family: testvm.RHEL, user: testvm.UserNoPasswordSudo})
	if r := run(t, nil, "apply", "-f", path, "--yes", "--only", "vm"); r.code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	autoregisteredEntryStandIn(t, ns, vm.Addr)
	r := run(t, nil, "doctor", "-f", path)
	onlyStandInGaps(t, r)
	for name, want := range map[string]string{
		"vm-ssh":              "(rpm, amd64), root: sudo without a password",
		"vm-package":          " ✓ vm-package: istio-sidecar 1.31.1",
		"vm-file-istio-token": " ✓ ",
		"vm-agent":            " ✓ ",
	} {
		if line, _ := doctorLine(t, r.stdout, name); !strings.Contains(line, want) {
			t.Errorf("%s: %q lacks %q", name, line, want)
		}
	}
}
