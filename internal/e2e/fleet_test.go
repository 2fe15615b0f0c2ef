package e2e

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vm2mesh/vm2mesh/internal/testcluster"
	"github.com/vm2mesh/vm2mesh/internal/testvm"
)

// The fleet's namespace (of its own: the stack's remove test expects the
// stack's namespace to go) and its second WorkloadGroup's app and service
// account; the first is the stack's app and service account.
const (
	fleetNamespace      = "vm-e2e-fleet"
	fleetApp            = "e2e-fleet"
	fleetServiceAccount = "vm-e2e-fleet-sa"
)

// fleetVM is one VM of the fleet test and what it should become.
type fleetVM struct {
	name   string
	opts   testvm.Options
	sa     string // the service account its certificate names
	keys   []string
	vm     *testvm.VM
	failed bool // its sudo password is wrong in the first full run
}

// fleet onboards five fresh VMs (three deb, two rpm, in two WorkloadGroups)
// with one answers file, against the stack's cluster and istiod. First
// --limit runs one VM alone; then every VM runs side by side, and the one
// whose sudo password is wrong fails while the others join; with the
// password fixed, the third run resumes that VM only.
func (s *stack) fleet(t *testing.T) {
	routes := []string{s.gateway}
	deb := testvm.Options{Family: testvm.Debian, Routes: routes}
	rpm := testvm.Options{Family: testvm.RHEL, ProvidesRPM: os.Getenv(providesRPMEnv), Routes: routes}
	groupB := []string{"    app: " + fleetApp, "    serviceAccount: " + fleetServiceAccount}
	sudoPW := filepath.Join(t.TempDir(), "sudo-password")
	if err := os.WriteFile(sudoPW, []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fleet := []*fleetVM{
		{name: "deb-a1", opts: deb, sa: vmServiceAccount},
		{name: "rpm-a2", opts: rpm, sa: vmServiceAccount, keys: []string{"    package: " + os.Getenv(packageRPMEnv)}},
		{name: "deb-b1", opts: deb, sa: fleetServiceAccount, keys: groupB},
		{name: "rpm-b2", opts: rpm, sa: fleetServiceAccount, keys: append([]string{"    package: " + os.Getenv(packageRPMEnv)}, groupB...)},
		{name: "deb-sudo", opts: deb, sa: vmServiceAccount, failed: true,
			keys: []string{"    user: " + testvm.UserPasswordSudo, "    sudoPasswordFile: " + sudoPW}},
	}
	start := time.Now()
	var opts []testvm.Options
	for _, f := range fleet {
		opts = append(opts, f.opts)
	}
	for i, vm := range testvm.StartAll(t, opts) {
		fleet[i].vm = vm
	}
	t.Logf("five VMs up in %s", time.Since(start).Round(time.Millisecond))
	answers := s.writeFleetAnswers(t, filepath.Join(t.TempDir(), "fleet"), fleet)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dump := func() {
		for _, f := range fleet {
			t.Logf("== %s", f.name)
			dumpAgent(t, f.vm)
		}
		s.dumpIstiod(t)
	}

	// --limit: one VM alone; the others are not contacted.
	start = time.Now()
	out, code := s.vm2mesh(t, ctx, "apply", "-f", answers, "--yes", "--limit", "deb-a1")
	if code != 0 {
		dump()
		t.Fatalf("apply --limit deb-a1: exit %d", code)
	}
	t.Logf("apply --limit deb-a1: %s", time.Since(start).Round(time.Second))
	expect(t, out, "deb-a1", "✓ Confirm the agent got its certificate", "done: all 1 VMs are in the mesh")
	for _, f := range fleet[1:] {
		if strings.Contains(out, f.name) {
			t.Errorf("apply --limit deb-a1 named %s", f.name)
		}
		if got := f.vm.MustExec(t, "ls /etc/certs 2>/dev/null | wc -l"); got != "0\n" {
			t.Errorf("%s changed in a run limited to deb-a1: /etc/certs has %s", f.name, got)
		}
	}
	s.fleetCertificate(t, fleet[0])

	// Every VM: deb-a1 is done, deb-sudo fails at its login, the others join.
	start = time.Now()
	out, code = s.vm2mesh(t, ctx, "apply", "-f", answers, "--yes", "--parallel", "5")
	t.Logf("apply, five VMs side by side: %s", time.Since(start).Round(time.Second))
	if code != 1 {
		dump()
		t.Fatalf("apply with a wrong sudo password: exit %d, want 1", code)
	}
	expect(t, out, "deb-a1   │ • done in an earlier run", "sudo refused the password for admin",
		"1 of 5 VMs failed: deb-sudo", "--limit deb-sudo", "group "+fleetNamespace+"/"+fleetApp+" │ ✓ Create the WorkloadGroup")
	for _, f := range fleet[1:4] {
		expect(t, out, f.name+" "+strings.Repeat(" ", len("deb-sudo")-len(f.name))+"│ ✓ Confirm the agent got its certificate")
		s.fleetCertificate(t, f)
	}
	if got := fleet[4].vm.MustExec(t, "dpkg -s istio-sidecar >/dev/null 2>&1 && echo installed || echo absent"); got != "absent\n" {
		t.Errorf("the VM whose login failed changed: istio-sidecar %s", got)
	}

	// The password fixed: only deb-sudo runs.
	if err := os.WriteFile(sudoPW, []byte(testvm.SudoPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	out, code = s.vm2mesh(t, ctx, "apply", "-f", answers, "--yes")
	t.Logf("apply again, the password fixed: %s", time.Since(start).Round(time.Second))
	if code != 0 {
		dump()
		t.Fatalf("apply with the password fixed: exit %d", code)
	}
	for _, f := range fleet[:4] {
		expect(t, out, f.name+" "+strings.Repeat(" ", len("deb-sudo")-len(f.name))+"│ • done in an earlier run")
	}
	expect(t, out, "deb-sudo │ ✓ Confirm the agent got its certificate", "done: all 5 VMs are in the mesh")
	if strings.Contains(out, "group "+fleetNamespace+"/"+fleetApp) {
		t.Error("the cluster half of " + fleetApp + " ran again though its VMs were done")
	}
	s.fleetCertificate(t, fleet[4])
	if strings.Contains(out, testvm.SudoPassword) {
		t.Error("the sudo password was printed")
	}
}

// writeFleetAnswers writes a vms: answers file for the fleet, what the VMs
// share under vmDefaults:.
func (s *stack) writeFleetAnswers(t *testing.T, workDir string, fleet []*fleetVM) string {
	t.Helper()
	istioctl, err := testcluster.Istioctl.Path()
	if err != nil {
		t.Fatal(err)
	}
	lines := []string{
		"kubeconfig: " + s.cluster.Kubeconfig,
		"kubeContext: \"\"",
		"cluster: cluster1",
		"clusterNetwork: kube-network",
		"vmNetwork: vm-network",
		"meshID: mesh1",
		"installIstio: auto",
		"istioctl: " + istioctl,
		"app: e2e-app",
		"namespace: " + fleetNamespace,
		"serviceAccount: " + vmServiceAccount,
		"workDir: " + workDir,
		"vmDefaults:",
		"  user: root",
		"  identityFile: " + fleet[0].vm.ClientKey,
		"  sshConfig: " + filepath.Join(t.TempDir(), "no-ssh-config"),
		"  knownHostsFile: " + filepath.Join(t.TempDir(), "known_hosts"),
		"  package: " + os.Getenv(packageEnv),
		"  agentWait: 120",
		"vms:",
	}
	for _, f := range fleet {
		lines = append(lines, "  - name: "+f.name, "    host: "+f.vm.Addr, "    hostKeyFingerprint: "+f.vm.Fingerprint)
		lines = append(lines, f.keys...)
	}
	path := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// fleetCertificate checks the certificate f's agent holds: signed by the
// mesh's CA for f's service account.
func (s *stack) fleetCertificate(t *testing.T, f *fleetVM) {
	t.Helper()
	rest := []byte(f.vm.MustExec(t, "cat /etc/certs/cert-chain.pem"))
	var chain []*x509.Certificate
	for {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, cert)
	}
	if len(chain) == 0 {
		t.Fatalf("%s: no certificate in /etc/certs/cert-chain.pem", f.name)
	}
	want := fmt.Sprintf("spiffe://cluster.local/ns/%s/sa/%s", fleetNamespace, f.sa)
	if leaf := chain[0]; len(leaf.URIs) != 1 || leaf.URIs[0].String() != want {
		t.Fatalf("%s: the certificate's SPIFFE ID is %v, want %s", f.name, leaf.URIs, want)
	}
	cm, err := s.cluster.Kube(t).CoreV1().ConfigMaps(fleetNamespace).Get(context.Background(), "istio-ca-root-cert", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(cm.Data["root-cert.pem"]))
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("%s: the certificate does not verify with the mesh's root cert: %v", f.name, err)
	}
	t.Logf("%s: istiod signed its certificate for %s", f.name, want)
}
