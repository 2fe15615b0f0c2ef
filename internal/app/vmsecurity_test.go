package app_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vm2mesh/vm2mesh/remote"

	"github.com/vm2mesh/vm2mesh/internal/testvm"
)

// asIstioProxy runs a script on the VM as the agent's user would: the attacker
// in these tests, who owns the agent's directories.
func asIstioProxy(t *testing.T, vm *testvm.VM, script string) string {
	t.Helper()
	return vm.MustExec(t, `setpriv --reuid="$(id -u istio-proxy)" --regid="$(id -g istio-proxy)" --clear-groups -- sh -c '`+
		strings.ReplaceAll(script, "'", `'"'"'`)+`'`)
}

// rootFiles are the VM's files that only root may change or read, as
// fingerprints (content hash, owner, mode, type).
const rootFiles = "/root/.bashrc /root/victim /root/secret /etc/shadow /root/tokdir"

func fingerprints(t *testing.T, vm *testvm.VM) string {
	t.Helper()
	return vm.MustExec(t, `for f in `+rootFiles+`; do printf '%s ' "$f"; stat -c '%U %a %F' "$f" | tr '\n' ' '; if [ -f "$f" ]; then sha256sum < "$f"; else ls -A "$f"; echo; fi; done`)
}

// An istio-proxy that has been compromised plants links where vm2mesh, as root,
// used to write, copy and read: the backups beside the files, the package
// marker, the files themselves, the token's directory and the agent's logs. A
// routine re-run must not write, chown or show any root file through them, and
// must still leave the VM onboarded. Then a log line with escape sequences must
// reach the operator's screen without them.
func TestIstioProxyCannotTurnARerunAgainstRoot(t *testing.T) {
	testvm.Skip(t)
	vm := testvm.Start(t, testvm.Options{})
	path, workDir, _ := onboardingAnswers(t, vm, vmCase{family: testvm.Debian, user: "root"})
	if r := run(t, nil, "apply", "-f", path, "--yes", "--only", "vm"); r.code != 0 {
		t.Fatalf("first run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	const secret = "ROOT-ONLY-SECRET-4711"
	vm.MustExec(t, `echo `+secret+` > /root/secret; echo victim > /root/victim; mkdir -m 700 /root/tokdir; chmod 600 /root/secret /root/victim
# As the guide's chown -R left it: the token's parent belongs to istio-proxy.
chown istio-proxy /var/run/secrets`)
	before := fingerprints(t, vm)
	asIstioProxy(t, vm, `set -e
cd /etc/certs; ln -sf /root/.bashrc root-cert.pem.vm2mesh-prev
cd /var/lib/istio/envoy; ln -sf /root/.bashrc cluster.env.vm2mesh-prev
echo "ISTIO_META_TAMPERED='yes'" >> cluster.env
ln -sf /root/victim /var/lib/istio/.vm2mesh-package
rm -f /etc/istio/config/mesh; ln -s /etc/shadow /etc/istio/config/mesh
mv /var/run/secrets/tokens /var/run/secrets/tokens.moved; ln -s /root/tokdir /var/run/secrets/tokens
rm -f /var/log/istio/istio.err.log; ln -s /root/secret /var/log/istio/istio.err.log`)

	r := run(t, nil, "apply", "-f", path, "--yes", "--only", "vm")
	t.Log(r.stdout)
	if r.code != 0 {
		t.Errorf("re-run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if after := fingerprints(t, vm); after != before {
		t.Errorf("root's files changed through istio-proxy's links:\nbefore\n%s\nafter\n%s", before, after)
	}
	state, _ := os.ReadFile(filepath.Join(workDir, ".vm2mesh-state.json"))
	if strings.Contains(r.stdout+r.stderr+string(state), secret) {
		t.Error("a root-only file's content reached the operator's screen or the state file")
	}
	// The VM is onboarded all the same: real files where the links were.
	assertOnboarded(t, vm, workDir)
	if got := vm.MustExec(t, `stat -c '%U %a %F' /var/lib/vm2mesh /var/lib/vm2mesh/prev /var/run/secrets /var/run/secrets/tokens /etc/istio/config/mesh`); got !=
		"root 700 directory\nroot 700 directory\nistio-proxy 755 directory\nistio-proxy 755 directory\nistio-proxy 644 regular file\n" {
		t.Errorf("owners and modes:\n%s", got)
	}
	// What was replaced is kept where only root can reach it; what istio-proxy
	// could not read is said, not kept.
	if got := vm.MustExec(t, "cat /var/lib/vm2mesh/prev/cluster.env; stat -c '%U %a' /var/lib/vm2mesh/prev/cluster.env"); !strings.Contains(got, "ISTIO_META_TAMPERED='yes'\nroot 600\n") {
		t.Errorf("the replaced cluster.env kept as:\n%s", got)
	}
	if !strings.Contains(r.stdout, "/var/run/secrets/tokens was a link or a file where the agent needs a directory: replaced") {
		t.Error("the output does not say the token's directory was a link")
	}
	if !strings.Contains(r.stdout, "/etc/istio/config/mesh was replaced but not kept") {
		t.Error("the output does not say the mesh file behind a link was not kept")
	}

	// A log line with escape sequences (a new title, a cleared screen) is shown
	// without them when the next run quotes it.
	// (The stand-in agent writes its log as root; istio-proxy owns the directory.)
	asIstioProxy(t, vm, `cd /var/log/istio && { cat istio.log; printf '2026-11-22T00:00:00Z\tinfo\tcache\tgenerated new workload certificate \033]0;PWNED\007\033[2J\033[31mred\033[0m\r\n'; } > .forged && mv -f .forged istio.log`)
	r = run(t, nil, "apply", "-f", path, "--yes", "--only", "vm")
	if r.code != 0 {
		t.Fatalf("third run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if strings.ContainsAny(r.stdout+r.stderr, "\x1b\x07\r") {
		t.Errorf("escape sequences reached the screen: %q", r.stdout)
	}
	if !strings.Contains(r.stdout, "generated new workload certificate red") {
		t.Errorf("the log line is not quoted, cleaned:\n%s", r.stdout)
	}
}

// The files in workDir may have been edited since the cluster half wrote them;
// what in them reaches root's shell on the VM (the gateway address in hosts,
// cluster.env, which istio-start.sh sources as root) is parsed first, and a run
// that finds them wrong stops before the VM changes.
func TestTamperedWorkDirFilesNeverReachRootsShell(t *testing.T) {
	testvm.Skip(t)
	vm := testvm.Start(t, testvm.Options{})
	path, workDir, _ := onboardingAnswers(t, vm, vmCase{family: testvm.Debian, user: "root"})
	hosts, _ := os.ReadFile(filepath.Join(workDir, "hosts"))
	env, _ := os.ReadFile(filepath.Join(workDir, "cluster.env"))
	for _, tc := range []struct {
		name, file, content, want string
	}{
		{"hosts: a command for the address", "hosts", "$(touch${IFS}/tmp/pwned) istiod.istio-system.svc\n", `is not an IP address`},
		{"hosts: a second line", "hosts", string(hosts) + "192.0.2.9 x;touch /tmp/pwned\n", `expected one line`},
		{"cluster.env: a command for a key", "cluster.env", string(env) + "touch /tmp/pwned;X=1\n", `is not KEY=value with an environment variable name`},
		{"cluster.env: a command in a value", "cluster.env", string(env) + "X=$(touch /tmp/pwned)\n", `the value of X is not plain text to a shell`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(workDir, tc.file), []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			r := run(t, nil, "apply", "-f", path, "--yes", "--only", "vm")
			if r.code != 1 || !strings.Contains(r.stdout+r.stderr, tc.want) || !strings.Contains(r.stdout+r.stderr, "apply --only cluster") {
				t.Errorf("exit %d, want 1 and %q with the fix\n%s\n%s", r.code, tc.want, r.stdout, r.stderr)
			}
			if out := vm.MustExec(t, "ls /tmp/pwned 2>/dev/null; dpkg -s istio-sidecar >/dev/null 2>&1 && echo installed; ls /etc/certs 2>/dev/null; true"); out != "" {
				t.Errorf("the VM changed: %s", out)
			}
		})
		// The next case starts from the files as the cluster half wrote them.
		_ = os.WriteFile(filepath.Join(workDir, "hosts"), hosts, 0o600)
		_ = os.WriteFile(filepath.Join(workDir, "cluster.env"), env, 0o600)
	}
}

// httpsPackageServer serves the stand-in packages over HTTPS on the host end of
// the VM's veth, with a certificate from a CA made here that the VM is made to
// trust; the .sha256 files only when sums is set. /plain/ redirects to the same
// files over plain HTTP (a second listener), as a downgrade would.
func httpsPackageServer(t *testing.T, vm *testvm.VM, sums bool) string {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vm2mesh test package CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2),
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP(vm.HostAddr)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	vm.MustExec(t, "mkdir -p /etc/ssl/certs && printf '%s' '"+string(caPEM)+"' >> /etc/ssl/certs/ca-certificates.crt")

	pkgs := standInPackages(t)
	files := map[string]string{"/istio-sidecar.deb": pkgs.Deb, "/istio-sidecar.rpm": pkgs.RPM}
	serve := func(w http.ResponseWriter, r *http.Request) {
		name, sum := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/plain"), ".sha256")
		local, ok := files[name]
		if !ok || (sum && !sums) {
			http.NotFound(w, r)
			return
		}
		if sum {
			s, _, _ := remote.FileSHA256(local)
			fmt.Fprintf(w, "%s  %s\n", s, strings.TrimPrefix(name, "/"))
			return
		}
		http.ServeFile(w, r, local)
	}
	plainL, err := net.Listen("tcp", net.JoinHostPort(vm.HostAddr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	plain := &http.Server{Handler: http.HandlerFunc(serve)}
	go func() { _ = plain.Serve(plainL) }()
	l, err := net.Listen("tcp", net.JoinHostPort(vm.HostAddr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/plain/") {
				http.Redirect(w, r, "http://"+plainL.Addr().String()+r.URL.Path, http.StatusFound)
				return
			}
			serve(w, r)
		}),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}}},
	}
	go func() { _ = srv.ServeTLS(l, "", "") }()
	t.Cleanup(func() { srv.Close(); plain.Close() })
	return "https://" + l.Addr().String() + "/"
}

// vm.packageURL: https only (http only when allowInsecurePackageURL says so, a
// redirect to http refused too), and never installed unchecked unless
// allowUnverifiedPackage says so.
func TestPackageURLIsHTTPSAndChecksummed(t *testing.T) {
	testvm.Skip(t)
	installed := func(vm *testvm.VM) bool {
		return vm.MustExec(t, "dpkg -s istio-sidecar >/dev/null 2>&1 && echo yes || echo no") == "yes\n"
	}
	t.Run("published checksum", func(t *testing.T) {
		t.Parallel()
		vm := testvm.Start(t, testvm.Options{})
		base := httpsPackageServer(t, vm, true)
		path, workDir, _ := onboardingAnswers(t, vm, vmCase{user: "root"})
		rewrite(t, path, "  package: "+standInPackages(t).Deb, "  packageURL: "+base)
		r := run(t, nil, "apply", "-f", path, "--yes", "--only", "vm")
		if r.code != 0 {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		assertOnboarded(t, vm, workDir)
	})
	t.Run("refusals", func(t *testing.T) {
		t.Parallel()
		vm := testvm.Start(t, testvm.Options{})
		base := httpsPackageServer(t, vm, false)
		path, _, _ := onboardingAnswers(t, vm, vmCase{user: "root"})
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			url  string
			keys []string
			want []string
		}{
			{"http" + strings.TrimPrefix(base, "https"), nil, []string{"vm.packageURL", "allowInsecurePackageURL"}},
			{base + "plain/", []string{"  allowUnverifiedPackage: true"}, []string{"the VM could not download the package"}},
			{base, nil, []string{"no checksum", "vm.packageSHA256", "vm.allowUnverifiedPackage: true"}},
		} {
			rewrite(t, path, "  package: "+standInPackages(t).Deb, strings.Join(append([]string{"  packageURL: " + tc.url}, tc.keys...), "\n"))
			r := run(t, nil, "apply", "-f", path, "--yes", "--only", "vm")
			for _, w := range tc.want {
				if r.code != 1 || !strings.Contains(r.stdout+r.stderr, w) {
					t.Errorf("%s: exit %d, want 1 and %q\n%s\n%s", tc.url, r.code, w, r.stdout, r.stderr)
				}
			}
			if installed(vm) {
				t.Fatalf("%s: installed", tc.url)
			}
			if err := os.WriteFile(path, orig, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		// Waived: installed unchecked, and said so.
		rewrite(t, path, "  package: "+standInPackages(t).Deb, "  packageURL: "+base+"\n  allowUnverifiedPackage: true")
		r := run(t, nil, "apply", "-f", path, "--yes", "--only", "vm")
		if r.code != 0 || !strings.Contains(r.stdout, "installing the package unchecked") || !installed(vm) {
			t.Errorf("waived: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
	})
}
