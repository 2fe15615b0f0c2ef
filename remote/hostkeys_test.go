package remote_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vm2mesh/vm2mesh/internal/testvm"
	"github.com/vm2mesh/vm2mesh/remote"
)

// Host keys checked as ssh checks them, against sandbox VMs running sshd.

const wrongPin = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

func fingerprint(vm *testvm.VM, typ string) string { return ssh.FingerprintSHA256(vm.HostKeys[typ]) }

func authorizedKey(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// loggedInAsRoot: the connection really is a login (root, commands run).
func loggedInAsRoot(t *testing.T, c *remote.Client, setting string) {
	t.Helper()
	ctx := context.Background()
	if err := c.Root(ctx, nil); err != nil {
		t.Fatalf("%s: root: %v", setting, err)
	}
	if out, err := c.RunRoot(ctx, "id -u"); err != nil || out != "0\n" {
		t.Fatalf("%s: id -u as root: %q %v", setting, out, err)
	}
}

func writeKnownHosts(t *testing.T, file string, lines ...string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestHostKeyPinMatchesAnyOfTheServersKeys(t *testing.T) {
	// sshd's own order puts RSA first: which key shows is the client's choice.
	vm := testvm.Start(t, testvm.Options{HostKeyTypes: []string{"rsa", "ecdsa", "ed25519"}})
	ctx := context.Background()

	for _, typ := range []string{"ed25519", "ecdsa", "rsa"} {
		t.Run("pinned by its "+typ+" key", func(t *testing.T) {
			o := options(t, vm, "root")
			o.HostKeys.Pinned = fingerprint(vm, typ)
			setting := "vm.hostKeyFingerprint " + o.HostKeys.Pinned + " (the VM's " + typ + " key)"
			c, err := remote.Dial(ctx, o)
			if err != nil {
				t.Fatalf("%s: %v", setting, err)
			}
			defer c.Close()
			loggedInAsRoot(t, c, setting)
			data, _ := os.ReadFile(o.HostKeys.KnownHostsFile)
			if want := vm.Addr + " " + authorizedKey(vm.HostKeys[typ]) + "\n"; string(data) != want {
				t.Errorf("%s: known_hosts should hold the pinned key alone, %q; it has %q", setting, want, data)
			}
			o.HostKeys.Pinned = ""
			if c, err := remote.Dial(ctx, o); err != nil {
				t.Errorf("%s: the remembered key does not let the next Dial in: %v", setting, err)
			} else {
				c.Close()
			}
		})
	}

	t.Run("a wrong pin lists every key the server has", func(t *testing.T) {
		o := options(t, vm, "root")
		o.HostKeys.Pinned = wrongPin
		_, err := remote.Dial(ctx, o)
		var mismatch *remote.FingerprintMismatchError
		if !errors.As(err, &mismatch) {
			t.Fatalf("vm.hostKeyFingerprint %s (no key of the VM's): want a FingerprintMismatchError, got %v", wrongPin, err)
		}
		for _, typ := range []string{"ed25519", "ecdsa", "rsa"} {
			if !strings.Contains(err.Error(), fingerprint(vm, typ)) {
				t.Errorf("vm.hostKeyFingerprint %s: the error lacks the VM's %s key %s:\n%v", wrongPin, typ, fingerprint(vm, typ), err)
			}
		}
		if len(mismatch.Shown) != 3 || !strings.HasPrefix(mismatch.Shown[0], "ssh-ed25519 ") {
			t.Errorf("vm.hostKeyFingerprint %s: shown %q, want the three keys, ED25519 first", wrongPin, mismatch.Shown)
		}
		if _, err := os.Stat(o.HostKeys.KnownHostsFile); !os.IsNotExist(err) {
			t.Errorf("vm.hostKeyFingerprint %s: a refused key was written to known_hosts", wrongPin)
		}
	})

	t.Run("an unknown host shows its ED25519 key, as ssh does", func(t *testing.T) {
		o := options(t, vm, "root")
		o.HostKeys.Pinned = ""
		var asked string
		o.HostKeys.Ask = func(host, keyType, fp string) (remote.HostKeyDecision, error) {
			asked = keyType + " " + fp
			return remote.RejectHost, nil
		}
		_, err := remote.Dial(ctx, o)
		var unknown *remote.UnknownHostError
		if !errors.As(err, &unknown) || unknown.KeyType != ssh.KeyAlgoED25519 || unknown.Fingerprint != fingerprint(vm, "ed25519") {
			t.Errorf("no vm.hostKeyFingerprint, no known_hosts entry: want the ED25519 key %s reported, got %v", fingerprint(vm, "ed25519"), err)
		}
		if asked != "ssh-ed25519 "+fingerprint(vm, "ed25519") {
			t.Errorf("the host key prompt showed %q, want the ED25519 key", asked)
		}
	})

	t.Run("a known RSA key is the one asked for", func(t *testing.T) {
		o := options(t, vm, "root")
		o.HostKeys.Pinned = ""
		writeKnownHosts(t, o.HostKeys.KnownHostsFile, vm.Addr+" "+authorizedKey(vm.HostKeys["rsa"]))
		c, err := remote.Dial(ctx, o)
		if err != nil {
			t.Fatalf("known_hosts with the VM's RSA key only: %v", err)
		}
		c.Close()
	})

	t.Run("a changed RSA key is refused", func(t *testing.T) {
		o := options(t, vm, "root")
		other, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		otherPub, _ := ssh.NewPublicKey(&other.PublicKey)
		writeKnownHosts(t, o.HostKeys.KnownHostsFile, "# the VM before it was reinstalled", vm.Addr+" "+authorizedKey(otherPub))
		_, err = remote.Dial(ctx, o) // the pin is for a first contact, not a changed key
		var changed *remote.HostKeyChangedError
		if !errors.As(err, &changed) || changed.KeyType != ssh.KeyAlgoRSA || changed.Line != 2 {
			t.Fatalf("known_hosts with another RSA key for the VM: want a changed RSA key at line 2, got %v", err)
		}
		if want := "ssh-keygen -R " + vm.Addr + " -f " + o.HostKeys.KnownHostsFile; !strings.Contains(err.Error(), want) {
			t.Errorf("the changed-key error lacks %q:\n%v", want, err)
		}
	})

	t.Run("ssh shows the same key", func(t *testing.T) {
		if _, err := exec.LookPath("ssh"); err != nil {
			t.Skip("no ssh client to compare with")
		}
		kh := filepath.Join(t.TempDir(), "known_hosts")
		out, err := exec.Command("ssh", "-F", "/dev/null", "-i", vm.ClientKey, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
			"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile="+kh,
			"-o", "GlobalKnownHostsFile=/dev/null", "root@"+vm.Addr, "true").CombinedOutput()
		if err != nil {
			t.Fatalf("ssh: %v: %s", err, out)
		}
		data, _ := os.ReadFile(kh)
		if want := vm.Addr + " " + authorizedKey(vm.HostKeys["ed25519"]) + "\n"; string(data) != want {
			t.Errorf("ssh remembered %q; vm2mesh's first choice is %q", data, want)
		}
	})
}

// hostCertificate makes a CA, an ED25519 host key and its host certificate for
// the given principals; it returns the CA's public key and the VM files.
func hostCertificate(t *testing.T, principals []string) (ssh.PublicKey, ssh.PublicKey, map[string]testvm.File) {
	t.Helper()
	_, caPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := ssh.NewSignerFromKey(caPriv)
	if err != nil {
		t.Fatal(err)
	}
	hostPub, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostKey, _ := ssh.NewPublicKey(hostPub)
	block, err := ssh.MarshalPrivateKey(hostPriv, "")
	if err != nil {
		t.Fatal(err)
	}
	cert := &ssh.Certificate{
		Key: hostKey, CertType: ssh.HostCert, KeyId: "vm2mesh test host", ValidPrincipals: principals,
		ValidAfter: uint64(time.Now().Add(-time.Hour).Unix()), ValidBefore: uint64(time.Now().Add(time.Hour).Unix()),
	}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	return ca.PublicKey(), hostKey, map[string]testvm.File{
		"/etc/ssh/ssh_host_cert_ed25519_key":          {Data: string(pem.EncodeToMemory(block)), Mode: 0o600},
		"/etc/ssh/ssh_host_cert_ed25519_key-cert.pub": {Data: string(ssh.MarshalAuthorizedKey(cert))},
	}
}

// sandboxVMAddresses are every address testvm gives a VM (198.51.100.4i+2, 60
// slots): a VM's address is chosen as it starts, after its certificate.
func sandboxVMAddresses() []string {
	var out []string
	for i := 1; i <= 60; i++ {
		out = append(out, fmt.Sprintf("198.51.100.%d", 4*i+2))
	}
	return out
}

func TestHostCertificateFromAKnownCA(t *testing.T) {
	ca, hostKey, files := hostCertificate(t, sandboxVMAddresses())
	vm := testvm.Start(t, testvm.Options{
		HostKeyTypes: []string{"ecdsa"},
		SSHDConfig:   "HostKey /etc/ssh/ssh_host_cert_ed25519_key\nHostCertificate /etc/ssh/ssh_host_cert_ed25519_key-cert.pub\n",
		Files:        files,
	})
	ctx := context.Background()

	for _, pattern := range []string{"*", vm.Addr, "198.51.100.*,!192.0.2.1"} {
		t.Run("@cert-authority "+pattern, func(t *testing.T) {
			o := options(t, vm, "root")
			o.HostKeys.Pinned = ""
			line := "@cert-authority " + pattern + " " + authorizedKey(ca)
			writeKnownHosts(t, o.HostKeys.KnownHostsFile, line)
			c, err := remote.Dial(ctx, o)
			if err != nil {
				t.Fatalf("known_hosts %q alone: %v", line, err)
			}
			defer c.Close()
			loggedInAsRoot(t, c, "known_hosts "+line)
			if data, _ := os.ReadFile(o.HostKeys.KnownHostsFile); string(data) != line+"\n" {
				t.Errorf("known_hosts %q: a host vouched for by its CA was written down: %q", line, data)
			}
		})
	}

	t.Run("a CA for other hosts vouches for nothing", func(t *testing.T) {
		o := options(t, vm, "root")
		o.HostKeys.Pinned = ""
		writeKnownHosts(t, o.HostKeys.KnownHostsFile, "@cert-authority *.example.com "+authorizedKey(ca))
		_, err := remote.Dial(ctx, o)
		var unknown *remote.UnknownHostError
		if !errors.As(err, &unknown) || unknown.Fingerprint != ssh.FingerprintSHA256(hostKey) {
			t.Errorf("@cert-authority *.example.com: want the certified key %s unknown, got %v", ssh.FingerprintSHA256(hostKey), err)
		}
	})

	t.Run("a revoked CA is refused", func(t *testing.T) {
		o := options(t, vm, "root")
		o.HostKeys.Pinned = ""
		writeKnownHosts(t, o.HostKeys.KnownHostsFile, "@cert-authority * "+authorizedKey(ca), "@revoked * "+authorizedKey(ca))
		_, err := remote.Dial(ctx, o)
		var revoked *remote.RevokedHostKeyError
		if !errors.As(err, &revoked) || !revoked.CA || revoked.Line != 2 || !strings.Contains(err.Error(), "@revoked") {
			t.Errorf("@revoked CA at line 2: want it refused, got %v", err)
		}
	})
}

func TestCertAuthorityWildcardKeepsPlainKeyHostsReachable(t *testing.T) {
	vm := testvm.Start(t, testvm.Options{})
	ca, _, _ := hostCertificate(t, []string{"nobody"})
	line := "@cert-authority * " + authorizedKey(ca)
	ctx := context.Background()

	t.Run("pinned", func(t *testing.T) {
		o := options(t, vm, "root")
		writeKnownHosts(t, o.HostKeys.KnownHostsFile, line)
		c, err := remote.Dial(ctx, o)
		if err != nil {
			t.Fatalf("known_hosts %q and vm.hostKeyFingerprint: %v", line, err)
		}
		defer c.Close()
		loggedInAsRoot(t, c, "known_hosts "+line)
	})
	t.Run("unpinned: unknown, not changed", func(t *testing.T) {
		o := options(t, vm, "root")
		o.HostKeys.Pinned = ""
		writeKnownHosts(t, o.HostKeys.KnownHostsFile, line)
		_, err := remote.Dial(ctx, o)
		var unknown *remote.UnknownHostError
		if !errors.As(err, &unknown) || unknown.Fingerprint != vm.Fingerprint {
			t.Errorf("known_hosts %q, no pin: want the VM's key reported unknown, got %v", line, err)
		}
	})
}

func TestRevokedHostKeyRefused(t *testing.T) {
	vm := testvm.Start(t, testvm.Options{})
	ctx := context.Background()
	for name, lines := range map[string][]string{
		"pinned":                    {"@revoked * " + authorizedKey(vm.HostKey)},
		"known and revoked as well": {vm.KnownHostsLine(), "@revoked " + vm.Addr + " " + authorizedKey(vm.HostKey)},
	} {
		t.Run(name, func(t *testing.T) {
			o := options(t, vm, "root")
			writeKnownHosts(t, o.HostKeys.KnownHostsFile, lines...)
			_, err := remote.Dial(ctx, o)
			var revoked *remote.RevokedHostKeyError
			if !errors.As(err, &revoked) || revoked.Fingerprint != vm.Fingerprint || !strings.Contains(err.Error(), o.HostKeys.KnownHostsFile+":") {
				t.Errorf("known_hosts %q: want the @revoked key refused, naming the line, got %v", lines, err)
			}
		})
	}
}

// The host key settings of an ssh_config, through Dial's resolution, and the
// entry vm2mesh writes is one ssh itself then accepts.
func TestHostKeySettingsFromSSHConfig(t *testing.T) {
	vm := testvm.Start(t, testvm.Options{})
	ctx := context.Background()
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	config := func(t *testing.T, settings string) string {
		cfg := filepath.Join(t.TempDir(), "config")
		text := "Host myvm\n\tHostName " + vm.Addr + "\n\tUser root\n\tIdentityFile " + vm.ClientKey +
			"\n\tIdentitiesOnly yes\n\tIdentityAgent none\n\tUserKnownHostsFile " + kh +
			"\n\tGlobalKnownHostsFile " + filepath.Join(dir, "ssh_known_hosts") + "\n" + settings
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	asked := false
	opts := func(cfg string) remote.Options {
		return remote.Options{Host: "myvm", SSHConfig: cfg, Timeout: 10 * time.Second,
			HostKeys: remote.HostKeyPolicy{Ask: func(string, string, string) (remote.HostKeyDecision, error) {
				asked = true
				return remote.AcceptOnce, nil
			}}}
	}

	t.Run("StrictHostKeyChecking yes", func(t *testing.T) {
		asked = false
		_, err := remote.Dial(ctx, opts(config(t, "\tStrictHostKeyChecking yes\n")))
		var unknown *remote.UnknownHostError
		if !errors.As(err, &unknown) || unknown.Strict != "yes" || asked {
			t.Errorf("ssh_config StrictHostKeyChecking yes: want an unknown host refused unasked (asked %v), got %v", asked, err)
		}
	})

	settings := "\tStrictHostKeyChecking accept-new\n\tHashKnownHosts yes\n\tHostKeyAlias vm2mesh-config-alias\n"
	t.Run("StrictHostKeyChecking accept-new, HashKnownHosts, HostKeyAlias", func(t *testing.T) {
		asked = false
		c, err := remote.Dial(ctx, opts(config(t, settings)))
		if err != nil {
			t.Fatalf("ssh_config %q: %v", settings, err)
		}
		defer c.Close()
		loggedInAsRoot(t, c, "ssh_config "+settings)
		data, _ := os.ReadFile(kh)
		if asked || !strings.HasPrefix(string(data), "|1|") || strings.Count(string(data), "\n") != 1 {
			t.Fatalf("ssh_config %q: want one hashed entry written unasked (asked %v): %q", settings, asked, data)
		}
	})

	t.Run("ssh accepts the entry vm2mesh wrote", func(t *testing.T) {
		if _, err := exec.LookPath("ssh"); err != nil {
			t.Skip("no ssh client to compare with")
		}
		cfg := config(t, "\tStrictHostKeyChecking yes\n\tHostKeyAlias vm2mesh-config-alias\n")
		if out, err := exec.Command("ssh", "-F", cfg, "-o", "BatchMode=yes", "myvm", "true").CombinedOutput(); err != nil {
			t.Errorf("ssh with StrictHostKeyChecking yes does not find the hashed HostKeyAlias entry vm2mesh wrote: %v: %s", err, out)
		}
	})
}
