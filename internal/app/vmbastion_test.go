package app_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/vm2mesh/vm2mesh/internal/testvm"
)

// A VM that only a bastion reaches is onboarded the way `ssh target` reaches
// it: by ProxyJump, and by a ProxyCommand running OpenSSH's ssh -W. The plan
// says how before anything connects.
func TestOnboardAVMBehindABastion(t *testing.T) {
	testvm.Skip(t)
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("needs the OpenSSH client (hack/test installs it)")
	}
	for _, tc := range []struct {
		name, via, route string
	}{
		{"ProxyJump", "ProxyJump bastion", "vm target: root@%s:22, via bastion"},
		{"ProxyCommand", "ProxyCommand ssh -F {cfg} -W %h:%p bastion", `vm target: root@%s:22, ProxyCommand "ssh -F`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bastion := testvm.Start(t, testvm.Options{})
			target := testvm.Start(t, testvm.Options{Behind: bastion})
			path, workDir, _ := onboardingAnswers(t, target, vmCase{family: testvm.Debian, user: "root"})
			dir := t.TempDir()
			cfg := filepath.Join(dir, "ssh_config")
			bastionKnown := filepath.Join(dir, "bastion_known_hosts")
			writeTestFile(t, bastionKnown, bastion.KnownHostsLine()+"\n")
			writeTestFile(t, cfg, fmt.Sprintf(`Host bastion
	HostName %[2]s
	User root
	IdentityFile %[3]s
	UserKnownHostsFile %[4]s
	StrictHostKeyChecking yes
	BatchMode yes

Host target
	HostName %[5]s
	User root
	%[6]s
`, cfg, bastion.Addr, bastion.ClientKey, bastionKnown, target.Addr, strings.ReplaceAll(tc.via, "{cfg}", cfg)))
			setVMKey(t, path, "host", "target")
			setVMKey(t, path, "sshConfig", cfg)
			// vm2mesh keeps the host keys it learns in vm.knownHostsFile, for every
			// hop: the bastion's is there, as the operator's would be.
			writeTestFile(t, vmKey(t, path, "knownHostsFile"), bastion.KnownHostsLine()+"\n")
			r := run(t, nil, "apply", "-f", path, "--yes", "--only", "vm")
			if r.code != 0 {
				t.Fatalf("%s: exit %d\n%s\n%s", tc.via, r.code, r.stdout, r.stderr)
			}
			want := fmt.Sprintf(tc.route, target.Addr)
			connecting := strings.Index(r.stdout, "vm: connecting as ssh would:")
			if connecting < 0 || !strings.Contains(r.stdout, want) || connecting > strings.Index(r.stdout, "Check the VM") {
				t.Errorf("%s: the route (%q) is not shown before connecting:\n%s", tc.via, want, r.stdout)
			}
			assertOnboarded(t, target, workDir)
		})
	}
}

func writeTestFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// vmKey reads a key of the answers file's vm: block.
func vmKey(t *testing.T, path, key string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "  "+key+": "); ok {
			return v
		}
	}
	t.Fatalf("%s has no vm.%s", path, key)
	return ""
}

// setVMKey sets a key of the answers file's vm: block.
func setVMKey(t *testing.T, path, key, value string) {
	t.Helper()
	rewrite(t, path, "  "+key+": "+vmKey(t, path, key), "  "+key+": "+value)
}

// A VM with the usual three host keys, pinned by the fingerprint ssh-keygen -lf
// shows for its RSA key (not the one negotiated first), is onboarded; the
// known_hosts entry is that key.
func TestOnboardAVMPinnedByItsRSAKey(t *testing.T) {
	testvm.Skip(t)
	vm := testvm.Start(t, testvm.Options{HostKeyTypes: []string{"rsa", "ecdsa", "ed25519"}})
	path, workDir, _ := onboardingAnswers(t, vm, vmCase{family: testvm.Debian, user: "root"})
	rsa := ssh.FingerprintSHA256(vm.HostKeys["rsa"])
	setVMKey(t, path, "hostKeyFingerprint", rsa)
	r := run(t, nil, "apply", "-f", path, "--yes", "--only", "vm")
	if r.code != 0 {
		t.Fatalf("pinned by the RSA key %s: exit %d\n%s\n%s", rsa, r.code, r.stdout, r.stderr)
	}
	assertOnboarded(t, vm, workDir)
	known, err := os.ReadFile(vmKey(t, path, "knownHostsFile"))
	if err != nil || !strings.Contains(string(known), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(vm.HostKeys["rsa"])))) {
		t.Errorf("known_hosts after pinning the RSA key (%v):\n%s", err, known)
	}
}
