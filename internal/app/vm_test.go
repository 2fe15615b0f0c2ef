package app_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vm2mesh/vm2mesh/internal/testcluster"
	"github.com/vm2mesh/vm2mesh/internal/testvm"
	"github.com/vm2mesh/vm2mesh/remote"
)

var (
	packagesOnce sync.Once
	packages     *testvm.StandInPackages
	packagesErr  error
)

func standInPackages(t testing.TB) *testvm.StandInPackages {
	packagesOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vm2mesh-standin-packages-")
		if err != nil {
			packagesErr = err
			return
		}
		packages, packagesErr = testvm.BuildStandInPackages(dir)
	})
	if packagesErr != nil {
		t.Fatal(packagesErr)
	}
	return packages
}

type vmCase struct {
	family testvm.Family
	user   string
	extra  []string // more vm: keys, indented
}

// onboardingAnswers runs the cluster half for a namespace of its own (the
// gateway address is the host end of the VM's veth) and returns answers for the
// VM half.
func onboardingAnswers(t *testing.T, vm *testvm.VM, c vmCase) (path, workDir, ns string) {
	t.Helper()
	istioInstalled(t)
	ns = testcluster.UniqueName("vmns")
	cluster.RootCertWriterStandIn(t, "ROOT CERT OF THE MESH", ns)
	pkg := standInPackages(t).Deb
	if c.family == testvm.RHEL {
		pkg = standInPackages(t).RPM
	}
	vmKeys := append([]string{
		"vm:",
		"  host: " + vm.Addr,
		"  user: " + c.user,
		"  identityFile: " + vm.ClientKey,
		"  sshConfig: " + filepath.Join(t.TempDir(), "no-ssh-config"),
		"  knownHostsFile: " + filepath.Join(t.TempDir(), "known_hosts"),
		"  hostKeyFingerprint: " + vm.Fingerprint,
		"  package: " + pkg,
		"  agentWait: 30",
	}, c.extra...)
	path, workDir = answers(t, ns, append([]string{"gatewayAddress: " + vm.HostAddr}, vmKeys...)...)
	r := run(t, nil, "apply", "-f", path, "--yes", "--only", "cluster")
	if r.code != 0 {
		t.Fatalf("cluster half: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	testvm.GatewayWithoutIstiodStandInFor(t, vm) // the preflight probes it; no istiod in these tests
	return path, workDir, ns
}

// assertOnboarded reads the VM's file system: the files in place with their modes
// and owners, one hosts entry, the agent running.
func assertOnboarded(t *testing.T, vm *testvm.VM, workDir string) {
	t.Helper()
	got := vm.MustExec(t, `stat -c '%n %U %a' /etc/certs/root-cert.pem /var/run/secrets/tokens/istio-token /var/lib/istio/envoy/cluster.env /etc/istio/config/mesh; readlink /etc/istio`)
	want := "/etc/certs/root-cert.pem istio-proxy 644\n/var/run/secrets/tokens/istio-token istio-proxy 600\n/var/lib/istio/envoy/cluster.env istio-proxy 644\n/etc/istio/config/mesh istio-proxy 644\n/var/lib/istio\n"
	if got != want {
		t.Errorf("files on the VM:\n%s\nwant\n%s", got, want)
	}
	for file, target := range map[string]string{"istio-token": "/var/run/secrets/tokens/istio-token", "cluster.env": "/var/lib/istio/envoy/cluster.env", "mesh.yaml": "/etc/istio/config/mesh"} {
		local, _ := os.ReadFile(filepath.Join(workDir, file))
		if remote := vm.MustExec(t, "cat "+target); remote != string(local) {
			t.Errorf("%s on the VM differs from %s", target, file)
		}
	}
	hosts := vm.MustExec(t, "grep -c 'istiod.istio-system.svc' /etc/hosts; grep 'istiod.istio-system.svc' /etc/hosts")
	if want := fmt.Sprintf("1\n%s istiod.istio-system.svc # managed by vm2mesh\n", vm.HostAddr); hosts != want {
		t.Errorf("/etc/hosts entries for istiod:\n%s\nwant\n%s", hosts, want)
	}
	if out := vm.MustExec(t, "pgrep -f '^/bin/sh /usr/local/bin/istio-start[.]sh' >/dev/null && echo running || echo stopped"); out != "running\n" {
		t.Errorf("agent %s", out)
	}
}

func TestOnboardDebianVMAsRootAndRerunChangesNothing(t *testing.T) {
	testvm.Skip(t)
	vm := testvm.Start(t, testvm.Options{})
	path, workDir, _ := onboardingAnswers(t, vm, vmCase{family: testvm.Debian, user: "root"})
	r := run(t, nil, "apply", "-f", path, "--yes", "--only", "vm")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Log(r.stdout)
	for _, want := range []string{"Check the VM: Debian GNU/Linux 12", "root: logged in as root", "installed istio-sidecar.deb",
		"started /usr/local/bin/istio-start.sh detached from /", "joined:", "generated new workload certificate"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	assertOnboarded(t, vm, workDir)
	if strings.Contains(r.stdout+r.stderr, vm.MustExec(t, "cat /var/run/secrets/tokens/istio-token")) {
		t.Error("the token was printed")
	}
	if left := vm.MustExec(t, "ls -d /tmp/vm2mesh.* 2>/dev/null || true"); left != "" {
		t.Errorf("upload directories left on the VM: %s", left)
	}

	r = run(t, nil, "apply", "-f", path, "--yes", "--only", "vm")
	if r.code != 0 || !strings.Contains(r.stdout, "nothing changed") {
		t.Fatalf("second run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertOnboarded(t, vm, workDir)
}

func TestOnboardRHELVMWithPasswordlessSudo(t *testing.T) {
	testvm.Skip(t)
	vm := testvm.Start(t, testvm.Options{Family: testvm.RHEL, ProvidesRPM: standInPackages(t).BaseProvidesRPM})
	path, workDir, _ := onboardingAnswers(t, vm, vmCase{family: testvm.RHEL, user: testvm.UserNoPasswordSudo})
	r := run(t, nil, "apply", "-f", path, "--yes", "--only", "vm")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"Rocky Linux 9.4", "(rpm, amd64)", "sudo without a password", "installed istio-sidecar.rpm", "joined:"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	assertOnboarded(t, vm, workDir)
	if out := vm.MustExec(t, "rpm -q istio-sidecar"); !strings.HasPrefix(out, "istio-sidecar-1.31.1") {
		t.Errorf("rpm -q: %s", out)
	}
}

func TestOnboardWithSudoPasswordKeepsOtherHostsEntries(t *testing.T) {
	testvm.Skip(t)
	vm := testvm.Start(t, testvm.Options{})
	// The VM's /etc/hosts has entries of its own and an older line for istiod,
	// as a manual run of the guide leaves it.
	original := "127.0.0.1\tlocalhost\n10.1.2.3 db.internal db   # the database\n203.0.113.9 istiod.istio-system.svc\n::1 localhost ip6-localhost\n"
	vm.MustExec(t, "printf '%s' '"+original+"' > /etc/hosts")
	pwFile := filepath.Join(t.TempDir(), "sudo-pw")
	if err := os.WriteFile(pwFile, []byte(testvm.SudoPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path, workDir, _ := onboardingAnswers(t, vm, vmCase{user: testvm.UserPasswordSudo, extra: []string{"  sudoPasswordFile: " + pwFile}})
	r := run(t, nil, "apply", "-f", path, "--yes", "--only", "vm")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "sudo with a password") || !strings.Contains(r.stdout, `replaced an older line for istiod.istio-system.svc: "203.0.113.9 istiod.istio-system.svc"`) {
		t.Errorf("output:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout+r.stderr, testvm.SudoPassword) {
		t.Error("the sudo password was printed")
	}
	assertOnboarded(t, vm, workDir)
	want := "127.0.0.1\tlocalhost\n10.1.2.3 db.internal db   # the database\n::1 localhost ip6-localhost\n" + vm.HostAddr + " istiod.istio-system.svc # managed by vm2mesh\n"
	if got := vm.MustExec(t, "cat /etc/hosts"); got != want {
		t.Errorf("/etc/hosts:\n%q\nwant\n%q", got, want)
	}
	if got := vm.MustExec(t, "cat /etc/hosts.vm2mesh.orig"); got != original {
		t.Errorf("backup of /etc/hosts: %q", got)
	}
}

func TestVMHalfRefusalsChangeNothing(t *testing.T) {
	testvm.Skip(t)
	vm := testvm.Start(t, testvm.Options{})
	other := testvm.Start(t, testvm.Options{})
	wrongPW := filepath.Join(t.TempDir(), "wrong")
	plainPW := filepath.Join(t.TempDir(), "plain")
	_ = os.WriteFile(wrongPW, []byte("not-it\n"), 0o600)
	_ = os.WriteFile(plainPW, []byte(testvm.PlainPassword+"\n"), 0o600)
	for _, tc := range []struct {
		name  string
		c     vmCase
		setup func(t *testing.T, answers string)
		want  []string
	}{
		{name: "wrong sudo password", c: vmCase{user: testvm.UserPasswordSudo, extra: []string{"  sudoPasswordFile: " + wrongPW}},
			want: []string{"sudo refused the password for admin"}},
		{name: "no sudo rights", c: vmCase{user: testvm.UserNoSudo, extra: []string{"  sudoPasswordFile: " + plainPW}},
			want: []string{"plain may not use sudo", "grant it sudo rights or log in as root"}},
		{name: "unknown host without a pin", c: vmCase{user: "root"}, setup: func(t *testing.T, answers string) {
			rewrite(t, answers, "  hostKeyFingerprint: "+vm.Fingerprint, "")
		}, want: []string{"is not in known_hosts", vm.Fingerprint, "vm.hostKeyFingerprint"}},
		{name: "changed host key", c: vmCase{user: "root"}, setup: func(t *testing.T, answers string) {
			kh := filepath.Join(t.TempDir(), "known_hosts")
			line := vm.Addr + " " + strings.SplitN(other.KnownHostsLine(), " ", 2)[1] + "\n"
			if err := os.WriteFile(kh, []byte(line), 0o600); err != nil {
				t.Fatal(err)
			}
			rewrite(t, answers, "  knownHostsFile: ", "  knownHostsFile: "+kh+"\n  #")
		}, want: []string{"REMOTE HOST IDENTIFICATION HAS CHANGED", "refuses to connect"}},
		{name: "package for the other family", c: vmCase{user: "root"}, setup: func(t *testing.T, answers string) {
			rewrite(t, answers, "  package: "+standInPackages(t).Deb, "  package: "+standInPackages(t).RPM)
		}, want: []string{"does not fit the VM, which installs .deb packages", "give istio-sidecar.deb"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, _, _ := onboardingAnswers(t, vm, tc.c)
			if tc.setup != nil {
				tc.setup(t, path)
			}
			r := run(t, nil, "apply", "-f", path, "--yes", "--only", "vm")
			if r.code != 1 {
				t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stdout+r.stderr, w) {
					t.Errorf("output lacks %q:\n%s\n%s", w, r.stdout, r.stderr)
				}
			}
			if out := vm.MustExec(t, "ls -d /tmp/vm2mesh.* /var/lib/istio 2>/dev/null || true"); out != "" {
				t.Errorf("something changed on the VM: %s", out)
			}
		})
	}
}

func TestFailingAgentGivesAFailedVerdictQuotingTheLine(t *testing.T) {
	testvm.Skip(t)
	vm := testvm.Start(t, testvm.Options{})
	path, workDir, _ := onboardingAnswers(t, vm, vmCase{user: "root"})
	// An empty token: the agent cannot ask for its certificate.
	if err := os.WriteFile(filepath.Join(workDir, "istio-token"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := run(t, nil, "apply", "-f", path, "--yes", "--only", "vm")
	if r.code != 1 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"✗ Confirm the agent got its certificate: the agent failed:", "failed to start: /var/run/secrets/tokens/istio-token is missing",
		"hint: a file the agent needs is missing"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
}

func rewrite(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s lacks %q", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// packageServerStandIn serves the stand-in packages and their .sha256 files over
// HTTP on the host end of the VM's veth, as a release mirror would.
func packageServerStandIn(t *testing.T, vm *testvm.VM, pkgs *testvm.StandInPackages) string {
	l, err := net.Listen("tcp", net.JoinHostPort(vm.HostAddr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"/istio-sidecar.deb": pkgs.Deb, "/istio-sidecar.rpm": pkgs.RPM}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, sum := strings.CutSuffix(r.URL.Path, ".sha256")
		local, ok := files[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if sum {
			s, _, _ := remote.FileSHA256(local)
			fmt.Fprintf(w, "%s  %s\n", s, strings.TrimPrefix(name, "/"))
			return
		}
		http.ServeFile(w, r, local)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String() + "/"
}

func TestPackageDownloadedOnTheVMAndChecked(t *testing.T) {
	testvm.Skip(t)
	vm := testvm.Start(t, testvm.Options{})
	base := packageServerStandIn(t, vm, standInPackages(t))
	path, workDir, _ := onboardingAnswers(t, vm, vmCase{user: "root"})
	rewrite(t, path, "  package: "+standInPackages(t).Deb, "  packageURL: "+base+"\n  allowInsecurePackageURL: true") // the stand-in server is plain http
	r := run(t, nil, "apply", "-f", path, "--yes", "--only", "vm")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "downloading "+base+"istio-sidecar.deb on the VM") {
		t.Errorf("output:\n%s", r.stdout)
	}
	assertOnboarded(t, vm, workDir)

	// A checksum that does not match stops before installing.
	other := testvm.Start(t, testvm.Options{})
	base = packageServerStandIn(t, other, standInPackages(t))
	path, _, _ = onboardingAnswers(t, other, vmCase{user: "root", extra: []string{"  packageSHA256: " + strings.Repeat("ab", 32)}})
	rewrite(t, path, "  package: "+standInPackages(t).Deb, "  packageURL: "+base+"\n  allowInsecurePackageURL: true") // the stand-in server is plain http
	r = run(t, nil, "apply", "-f", path, "--yes", "--only", "vm")
	if r.code != 1 || !strings.Contains(r.stdout, "computed checksum did NOT match") || !strings.Contains(r.stdout, "checksum did not match") {
		t.Errorf("bad checksum: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if out := other.MustExec(t, "dpkg -s istio-sidecar >/dev/null 2>&1 && echo installed || echo absent"); out != "absent\n" {
		t.Errorf("package %s after a checksum mismatch", out)
	}
}
