package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/vm2mesh/vm2mesh/internal/testcluster"
	"github.com/vm2mesh/vm2mesh/internal/testvm"
)

const (
	vmNamespace      = "vm-e2e"
	vmServiceAccount = "vm-e2e-sa"
)

// stack is the cluster, istiod and the first VM; the failure cases reuse the
// cluster, istiod and the first run's files, each with a fresh VM.
type stack struct {
	cluster       *testcluster.Cluster
	vm            *testvm.VM
	istiod        *testcluster.Istiod
	istiodOptions testcluster.IstiodOptions
	gateway       string // the east-west gateway's load-balancer address: the host end of the VM's veth
	answers       string
	workDir       string
	vmBefore      string // vmSnapshot before the onboarding
}

// TestOnboardingEndToEnd is the product in one run: `vm2mesh apply --yes` takes
// an empty cluster and a fresh VM to a VM whose agent holds a certificate istiod
// signed for its service account. Then: a second run changes nothing; after the
// mesh's CA changes, a run gets the VM a certificate of the new CA; doctor names
// five faults; five ways the onboarding must fail, each named; and remove takes
// the VM out again. The subtests run in order: the failures stop istiod.
func TestOnboardingEndToEnd(t *testing.T) {
	skipUnlessIsolated(t)
	s := onboard(t)
	t.Run("second run changes nothing on the VM", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, code := s.vm2mesh(t, ctx, "apply", "-f", s.answers, "--yes", "--only", "vm")
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		expect(t, out, "nothing changed: all 5 steps were done already or skipped", "the agent runs and its log shows its certificate")
	})
	t.Run("doctor passes every check with the real agent and istiod", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, code := s.vm2mesh(t, ctx, "doctor", "-f", s.answers)
		if code != 0 || strings.Contains(out, " ✗ ") {
			out, _ := s.vm.Exec(ctx, "for b in iptables-legacy iptables-nft; do echo \"== $b\"; $b -t nat -S; done; nft list ruleset | head -40; update-alternatives --display iptables; ls -la /etc/certs")
			t.Fatalf("doctor: exit %d; on the VM:\n%s", code, out)
		}
		// What the sandbox tests' stand-in agent cannot show, the real one does.
		expect(t, out, " ✓ vm-agent-cert: spiffe://cluster.local/ns/vm-e2e/sa/vm-e2e-sa", " ✓ vm-iptables: ", " ✓ vm-dns-capture: ",
			" ✓ workloadentry: ", " ✓ istiod: ")
	})
	t.Run("generate matches istioctl on the real install", func(t *testing.T) {
		s.sideBySide(t)
	})
	t.Run("istiod registered the VM's WorkloadEntry, and removes it when the agent stops", func(t *testing.T) {
		s.checkWorkloadEntry(t) // the next run starts the agent again
	})
	t.Run("the mesh's CA changed: run vm2mesh again", func(t *testing.T) {
		s.rotateCA(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		answers := s.writeAnswers(t, s.vm, s.workDir, "installIstio: auto")
		out, code := s.vm2mesh(t, ctx, "apply", "-f", answers, "--yes")
		if code != 0 {
			dumpAgent(t, s.vm)
			t.Fatalf("exit %d", code)
		}
		expect(t, out, "✓ Confirm the agent got its certificate")
		s.checkCertificate(t) // against the new root: a certificate of the old CA fails here
	})
	t.Run("doctor names each fault and its hint; apply mends it", func(t *testing.T) {
		s.doctorFaults(t)
	})
	t.Run("a fleet of five VMs in two WorkloadGroups (deb and rpm) with one failing", s.fleet)
	t.Run("token for another audience", func(t *testing.T) {
		token := s.mintToken(t, "vm2mesh-wrong-audience")
		out := s.agentFails(t, map[string][]byte{"istio-token": token})
		expect(t, out, "Unauthenticated", "hint: istio-token is for audience vm2mesh-wrong-audience; istiod accepts only istio-ca")
	})
	t.Run("expired token", func(t *testing.T) {
		issued := string(s.mintToken(t, "istio-ca"))
		// The re-signed token is the API server's own but for its age: accepted
		// when not moved back, refused as expired when it is.
		if fresh, err := s.cluster.BackdatedToken(issued, 0); err != nil || s.tokenReview(t, fresh) != "" {
			t.Fatalf("re-signed, not backdated: %v %q", err, s.tokenReview(t, fresh))
		}
		token, err := s.cluster.BackdatedToken(issued, 2*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if why := s.tokenReview(t, token); !strings.Contains(why, "expired") {
			t.Fatalf("the API server's TokenReview of the backdated token: %q, want expired", why)
		}
		out := s.agentFails(t, map[string][]byte{"istio-token": []byte(token)})
		expect(t, out, "Unauthenticated", "hint: istio-token expired at ")
	})
	t.Run("root cert of another CA", func(t *testing.T) {
		out := s.agentFails(t, map[string][]byte{"root-cert.pem": otherCA(t)})
		expect(t, out, "x509: certificate signed by unknown authority", "hint: istiod's certificate does not verify with /etc/certs/root-cert.pem")
	})
	t.Run("istiod not behind the gateway", func(t *testing.T) {
		s.istiod.Stop()
		testvm.GatewayWithoutIstiodStandIn(t, s.gateway)
		out := s.agentFails(t, nil)
		expect(t, out, "hint: the agent cannot reach istiod through the gateway")
	})
	t.Run("nothing answers at the gateway", func(t *testing.T) {
		// istiod stopped (above) and no gateway: the preflight stops before
		// anything changes on the VM.
		out, vm := s.onboardAnotherVM(t, nil)
		expect(t, out, "✗ Check the VM: the VM cannot reach the east-west gateway at "+s.gateway+":15012", "hint: the agent reaches istiod there")
		if got := vm.MustExec(t, "dpkg -s istio-sidecar >/dev/null 2>&1 && echo installed || echo absent; ls /etc/certs 2>&1 | head -1"); !strings.HasPrefix(got, "absent\n") {
			t.Errorf("the VM changed after a failed preflight: %q", got)
		}
	})
	t.Run("remove takes the VM out: the VM as before, the cluster without what vm2mesh made for it", func(t *testing.T) {
		s.removeAll(t)
	})
}

// onboard starts the stack and runs the whole onboarding with installIstio:
// always, playing the cloud load balancer and starting istiod as the install
// goes, then checks the certificate the VM's agent holds.
func onboard(t *testing.T) *stack {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	dir := t.TempDir()
	s := startStack(t, ctx, dir)
	vm := s.vm

	// The harness's part of the install: the cloud's load balancer gives the
	// gateway the VM-facing address, and istiod runs there, outside the cluster.
	harness, stopHarness := context.WithCancel(ctx)
	defer stopHarness()
	lb := make(chan error, 1)
	go func() { lb <- s.playLoadBalancer(harness) }()
	started := make(chan error, 1)
	go func() { started <- s.startIstiodWhenInstalled(harness, dir) }()
	t.Cleanup(func() {
		if s.istiod != nil {
			s.istiod.Stop()
		}
	})

	s.vmBefore = vmSnapshot(t, vm)
	s.workDir = filepath.Join(dir, "work")
	s.answers = s.writeAnswers(t, vm, s.workDir)
	out, code := s.vm2mesh(t, ctx, "apply", "-f", s.answers, "--yes")
	if code != 0 {
		stopHarness() // what the install never got to, it will not get to now
	}
	for _, ch := range []chan error{lb, started} {
		if err := <-ch; err != nil && code == 0 {
			t.Error(err)
		}
	}
	if code != 0 {
		dumpAgent(t, vm)
		s.dumpIstiod(t)
		t.Fatalf("vm2mesh apply: exit %d", code)
	}
	expect(t, out, "✓ Confirm the agent got its certificate", "generated new workload certificate")
	t.Logf("vm2mesh apply: exit 0 after %s", time.Since(start).Round(time.Second))
	s.checkCertificate(t)
	return s
}

// startStack starts the cluster with its workloads (kwok's fake node) and a
// fresh VM, whose veth's host end is the gateway's address.
func startStack(t *testing.T, ctx context.Context, dir string) *stack {
	t.Helper()
	start := time.Now()
	c, err := testcluster.Start(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	if err := c.StartWorkloads(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("control plane up in %s: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok with node %s",
		time.Since(start).Round(time.Millisecond), testcluster.FakeNode)
	vm := testvm.Start(t, testvm.Options{Family: testvm.Debian})
	return &stack{cluster: c, vm: vm, gateway: vm.HostAddr}
}

// writeAnswers writes the answers for vm; overrides ("key: value") replace
// top-level keys, or are added.
func (s *stack) writeAnswers(t *testing.T, vm *testvm.VM, workDir string, overrides ...string) string {
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
		"installIstio: always",
		"istioctl: " + istioctl,
		"app: e2e-app",
		"namespace: " + vmNamespace,
		"serviceAccount: " + vmServiceAccount,
		"workDir: " + workDir,
		"vm:",
		"  host: " + vm.Addr,
		"  user: root",
		"  identityFile: " + vm.ClientKey,
		"  sshConfig: " + filepath.Join(t.TempDir(), "no-ssh-config"),
		"  knownHostsFile: " + filepath.Join(t.TempDir(), "known_hosts"),
		"  hostKeyFingerprint: " + vm.Fingerprint,
		"  package: " + os.Getenv(packageEnv),
		"  agentWait: 60",
	}
	for _, o := range overrides {
		key, _, _ := strings.Cut(o, ":")
		replaced := false
		for i, l := range lines {
			if strings.HasPrefix(l, key+":") {
				lines[i], replaced = o, true
			}
		}
		if !replaced {
			lines = append(lines, o)
		}
	}
	path := filepath.Join(t.TempDir(), "answers.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// vm2mesh runs the binary built before the namespace was made, and logs its
// output as it goes.
func (s *stack) vm2mesh(t *testing.T, ctx context.Context, args ...string) (string, int) {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Getenv(binaryEnv), args...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	t.Logf("$ vm2mesh %s\n%s", strings.Join(args, " "), out.String())
	return out.String(), code
}

// checkCertificate reads the certificate the agent wrote to /etc/certs
// (istio-start.sh's OUTPUT_CERTS) and checks istiod's CA signed it for the VM's
// service account.
func (s *stack) checkCertificate(t *testing.T) {
	t.Helper()
	chainPEM := s.vm.MustExec(t, "cat /etc/certs/cert-chain.pem")
	var chain []*x509.Certificate
	rest := []byte(chainPEM)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, cert)
	}
	if len(chain) == 0 {
		t.Fatalf("no certificate in the VM's /etc/certs/cert-chain.pem:\n%s", chainPEM)
	}
	leaf := chain[0]
	want := fmt.Sprintf("spiffe://cluster.local/ns/%s/sa/%s", vmNamespace, vmServiceAccount)
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != want {
		t.Fatalf("certificate's SPIFFE ID is %v, want %s", leaf.URIs, want)
	}
	cm, err := s.cluster.Kube(t).CoreV1().ConfigMaps(vmNamespace).Get(context.Background(), "istio-ca-root-cert", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(cm.Data["root-cert.pem"])) {
		t.Fatal("istio-ca-root-cert holds no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("the VM's certificate does not verify with the mesh's root cert: %v", err)
	}
	t.Logf("istiod signed the VM's certificate: SPIFFE ID %s, issuer %q, valid until %s",
		leaf.URIs[0], leaf.Issuer.String(), leaf.NotAfter.UTC().Format(time.RFC3339))
}

// playLoadBalancer does what a cloud does for a LoadBalancer Service: once
// istioctl creates the east-west gateway's Service, give it an address.
func (s *stack) playLoadBalancer(ctx context.Context) error {
	kube, err := kubernetes.NewForConfig(s.cluster.Config)
	if err != nil {
		return err
	}
	if err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := kube.CoreV1().Services("istio-system").Get(ctx, "istio-eastwestgateway", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		return fmt.Errorf("the east-west gateway's Service never appeared: %w", err)
	}
	return s.cluster.SetLoadBalancerIngress("istio-system", "istio-eastwestgateway", []corev1.LoadBalancerIngress{{IP: s.gateway}})
}

// startIstiodWhenInstalled starts the real istiod once `istioctl install` has
// written the mesh config. XDS and CA listen where the gateway's address points
// (15012 on the host end of the VM's veth); everything else on loopback.
func (s *stack) startIstiodWhenInstalled(ctx context.Context, dir string) error {
	kube, err := kubernetes.NewForConfig(s.cluster.Config)
	if err != nil {
		return err
	}
	if err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := kube.CoreV1().ConfigMaps("istio-system").Get(ctx, "istio", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		return fmt.Errorf("istioctl install never wrote the istio ConfigMap: %w", err)
	}
	return s.startIstiodAs(ctx, dir, "istiod")
}

// startIstiodAs starts the real istiod as the istiod Deployment named deployment
// says (kwok runs only its pod object): CLUSTER_ID above all, which the CA checks
// the agent's claim against, and REVISION, which names its mesh config. XDS and
// CA listen on the gateway's address.
func (s *stack) startIstiodAs(ctx context.Context, dir, deployment string) error {
	var env []string
	var envErr error
	if err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		env, envErr = s.cluster.IstiodDeploymentEnv(ctx, "istio-system", deployment)
		return envErr == nil, nil
	}); err != nil {
		return fmt.Errorf("reading istiod's Deployment %s: %w", deployment, envErr)
	}
	bin, err := testcluster.PilotDiscovery.Path()
	if err != nil {
		return err
	}
	s.istiodOptions = testcluster.IstiodOptions{Bin: bin, SecureGRPC: net.JoinHostPort(s.gateway, "15012"), Dir: dir, Env: env}
	is, err := s.cluster.RunIstiod(s.istiodOptions)
	if err != nil {
		return err
	}
	s.istiod = is
	return nil
}

// sideBySide runs `istioctl x workload entry configure` and `vm2mesh generate`
// on the WorkloadGroup the onboarding wrote, against the cluster istioctl
// installed (clusterID from the injector, the gateway's address from its
// Service, the real root cert): the files must be the same, the token by its
// claims (each run mints its own).
func (s *stack) sideBySide(t *testing.T) {
	t.Helper()
	istioctl, err := testcluster.Istioctl.Path()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-f", filepath.Join(s.workDir, "workloadgroup.yaml"), "--autoregister", "--kubeconfig", s.cluster.Kubeconfig}
	theirs, ours := filepath.Join(t.TempDir(), "istioctl"), filepath.Join(t.TempDir(), "vm2mesh")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if b, err := exec.CommandContext(ctx, istioctl, append([]string{"x", "workload", "entry", "configure", "-o", theirs}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("istioctl: %v\n%s", err, b)
	}
	if out, code := s.vm2mesh(t, ctx, append([]string{"generate", "-o", ours}, args...)...); code != 0 {
		t.Fatalf("vm2mesh generate: exit %d\n%s", code, out)
	}
	testcluster.SameVMFiles(t, theirs, ours)
	hosts, _ := os.ReadFile(filepath.Join(ours, "hosts"))
	t.Logf("istioctl and vm2mesh wrote the same cluster.env, mesh.yaml, root-cert.pem and hosts (%s), and tokens with the same claims", strings.TrimSpace(string(hosts)))
}

// agentFails onboards a fresh VM (onboardAnotherVM) and expects the verdict to
// be the agent's failure.
func (s *stack) agentFails(t *testing.T, replace map[string][]byte) string {
	t.Helper()
	out, _ := s.onboardAnotherVM(t, replace)
	expect(t, out, "✗ Confirm the agent got its certificate: the agent failed:")
	return out
}

// rotateCA does what reinstalling istiod with a new self-signed CA does: istiod
// stops, its CA secret goes, and istiod starts again with a new CA and writes the
// new root into every namespace.
func (s *stack) rotateCA(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kube := s.cluster.Kube(t)
	rootNow := func() string {
		cm, err := kube.CoreV1().ConfigMaps(vmNamespace).Get(ctx, "istio-ca-root-cert", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return cm.Data["root-cert.pem"]
	}
	old := rootNow()
	s.istiod.Stop()
	if err := kube.CoreV1().Secrets("istio-system").Delete(ctx, "istio-ca-secret", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	is, err := s.cluster.RunIstiod(s.istiodOptions)
	if err != nil {
		t.Fatal(err)
	}
	s.istiod = is
	if err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(context.Context) (bool, error) {
		return rootNow() != old, nil
	}); err != nil {
		t.Fatal("the restarted istiod did not write a new root cert")
	}
	t.Logf("istiod restarted with a new CA; istio-ca-root-cert in %s changed", vmNamespace)
}

// onboardAnotherVM runs the VM half to a fresh VM with the first run's files,
// some replaced; it must fail. It returns vm2mesh's output and the VM.
func (s *stack) onboardAnotherVM(t *testing.T, replace map[string][]byte) (string, *testvm.VM) {
	t.Helper()
	vm := testvm.Start(t, testvm.Options{Family: testvm.Debian, Routes: []string{s.gateway}})
	workDir := filepath.Join(t.TempDir(), "work")
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cluster.env", "hosts", "istio-token", "mesh.yaml", "root-cert.pem"} {
		data, err := os.ReadFile(filepath.Join(s.workDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if r, ok := replace[name]; ok {
			data = r
		}
		if err := os.WriteFile(filepath.Join(workDir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, code := s.vm2mesh(t, ctx, "apply", "-f", s.writeAnswers(t, vm, workDir), "--yes", "--only", "vm")
	if code != 1 {
		dumpAgent(t, vm)
		t.Fatalf("vm2mesh apply --only vm: exit %d, want 1", code)
	}
	return out, vm
}

// mintToken asks the API server for a token of the VM's service account with
// another audience.
func (s *stack) mintToken(t *testing.T, audience string) []byte {
	t.Helper()
	exp := int64(3600)
	tr, err := s.cluster.Kube(t).CoreV1().ServiceAccounts(vmNamespace).CreateToken(context.Background(), vmServiceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return []byte(tr.Status.Token)
}

// tokenReview is why the API server refuses token for audience istio-ca, as
// istiod asks it; "" when it accepts it.
func (s *stack) tokenReview(t *testing.T, token string) string {
	t.Helper()
	tr, err := s.cluster.Kube(t).AuthenticationV1().TokenReviews().Create(context.Background(),
		&authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{"istio-ca"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Status.Authenticated {
		return ""
	}
	return "refused: " + tr.Status.Error
}

func expect(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("vm2mesh's output lacks %q", w)
		}
	}
}

// dumpAgent logs what the VM's agent left, for a failed run.
func dumpAgent(t *testing.T, vm *testvm.VM) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := vm.Exec(ctx, "ps -eo pid,user,args; for f in /var/log/istio/*; do echo \"== $f\"; tail -n 40 \"$f\"; done; ls -la /etc/certs")
	t.Logf("on the VM:\n%s%v", out, err)
}

// dumpIstiod logs the end of istiod's log, for a failed run.
func (s *stack) dumpIstiod(t *testing.T) {
	t.Helper()
	if s.istiod == nil {
		return
	}
	b, _ := os.ReadFile(s.istiod.Log)
	t.Logf("istiod's log ends:\n%s", testcluster.LastLines(string(b), 40))
}
