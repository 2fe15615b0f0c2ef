package remote

import (
	"context"
	"crypto"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/vm2mesh/vm2mesh/internal/testvm"
)

// These tests log in to a sandbox VM's OpenSSH sshd, with OpenSSH's own
// ssh-agent and ssh-add: what `ssh` does with the same settings must work.

// startSSHAgent runs `ssh-agent -D` on a socket of the test's; it is killed
// when the test ends.
func startSSHAgent(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	cmd := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := cmd.Start(); err != nil {
		t.Skipf("ssh-agent (openssh-client) is needed: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	// Ready when it accepts: the socket file appears before it listens.
	for range 250 {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("ssh-agent does not listen on %s", sock)
	return ""
}

// sshAdd loads a key file (and the KEY-cert.pub beside it, as ssh-add does)
// into the agent at sock, giving its passphrase through SSH_ASKPASS.
func sshAdd(t *testing.T, sock, file, passphrase string) {
	t.Helper()
	dir := t.TempDir()
	pass := filepath.Join(dir, "passphrase")
	askpass := filepath.Join(dir, "askpass")
	if err := os.WriteFile(pass, []byte(passphrase+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(askpass, []byte("#!/bin/sh\ncat '"+pass+"'\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh-add", file)
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock, "SSH_ASKPASS="+askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add %s: %v: %s", file, err, out)
	}
}

// vmKey is the private key every user of the sandbox VMs accepts.
func vmKey(t *testing.T, vm *testvm.VM) crypto.PrivateKey {
	t.Helper()
	raw, err := os.ReadFile(vm.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.ParseRawPrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestAuthAgainstOpenSSH(t *testing.T) {
	ca := newKey(t)
	vm := testvm.Start(t, testvm.Options{
		SSHDConfig: "TrustedUserCAKeys /etc/ssh/vm2mesh_user_ca.pub",
		Files: map[string]testvm.File{
			"/etc/ssh/vm2mesh_user_ca.pub": {Data: string(ssh.MarshalAuthorizedKey(pubOf(t, ca)))},
		},
	})
	home := t.TempDir()
	t.Setenv("HOME", home) // no default keys
	key := vmKey(t, vm)
	// The VM's key, where ssh-add takes it (0600, not in the image).
	writeKey(t, filepath.Join(home, "vm_key"), key, "")
	// $SSH_AUTH_SOCK: an agent with a key the VM does not know, so that nothing
	// gets in through it by accident.
	defaultAgent := startSSHAgent(t)
	writeKey(t, filepath.Join(home, "unrelated"), newKey(t), "")
	sshAdd(t, defaultAgent, filepath.Join(home, "unrelated"), "")
	t.Setenv("SSH_AUTH_SOCK", defaultAgent)

	target := func(user string) Hop {
		return Hop{Alias: vm.Addr, HostName: vm.Addr, Port: vm.Port, User: user}
	}
	headless := Options{Timeout: 10 * time.Second}
	noPassphrase := headless
	noPassphrase.Passphrase = func(file string) (string, error) {
		t.Errorf("asked for the passphrase of %s although the agent holds the key", file)
		return "", errors.New("no passphrase here")
	}

	t.Run("IdentityAgent names a second agent", func(t *testing.T) {
		second := startSSHAgent(t)
		sshAdd(t, second, filepath.Join(home, "vm_key"), "")
		t.Setenv("SECOND_AGENT", second)
		if err := os.Symlink(second, filepath.Join(home, "second.sock")); err != nil {
			t.Fatal(err)
		}
		for _, setting := range []string{second, "$SECOND_AGENT", "~/second.sock"} {
			hop := target("root")
			hop.IdentityAgent = setting
			if err := login(hop, headless, vm.HostKey); err != nil {
				t.Errorf("IdentityAgent %s: the key only that agent holds did not get in: %v", setting, err)
			}
		}
		// The agent is asked even when IdentityFile applies (OpenSSH asks both).
		hop := target("root")
		hop.IdentityAgent = second
		hop.IdentityFiles = []string{filepath.Join(home, "unrelated")}
		if err := login(hop, headless, vm.HostKey); err != nil {
			t.Errorf("IdentityAgent %s with an IdentityFile the VM refuses: %v", second, err)
		}
		// Controls: the default agent lacks the key; none means no agent.
		if err := login(target("root"), headless, vm.HostKey); err == nil {
			t.Error("IdentityAgent unset: logged in through $SSH_AUTH_SOCK, whose agent lacks the key; the test proves nothing")
		}
		t.Setenv("SSH_AUTH_SOCK", second)
		hop = target("root")
		hop.IdentityAgent = "none"
		err := login(hop, headless, vm.HostKey)
		if err == nil {
			t.Error("IdentityAgent none: the agent at $SSH_AUTH_SOCK was used")
		} else if !strings.Contains(err.Error(), "no agent (IdentityAgent none)") {
			t.Errorf("IdentityAgent none: the error should say no agent was asked: %v", err)
		}
		hop.IdentityAgent = "SSH_AUTH_SOCK"
		if err := login(hop, headless, vm.HostKey); err != nil {
			t.Errorf("IdentityAgent SSH_AUTH_SOCK: %v", err)
		}
	})

	t.Run("user certificate", func(t *testing.T) {
		// A fresh key: in no authorized_keys, only the certificate gets it in.
		fresh := newKey(t)
		dir := t.TempDir()
		keyFile := filepath.Join(dir, "id_fresh")
		writeKey(t, keyFile, fresh, "")
		certFile := filepath.Join(dir, "issued", "deploy.pub")
		writeCert(t, certFile, ca, pubOf(t, fresh), testvm.UserNoPasswordSudo)

		hop := target(testvm.UserNoPasswordSudo)
		hop.IdentityFiles = []string{keyFile}
		if err := login(hop, headless, vm.HostKey); err == nil {
			t.Fatal("the fresh key got in without its certificate; the test proves nothing")
		}
		hop.CertificateFiles = []string{certFile}
		if err := login(hop, headless, vm.HostKey); err != nil {
			t.Errorf("CertificateFile %s with IdentityFile %s: %v", certFile, keyFile, err)
		}

		// KEY-cert.pub beside the key, through Dial with vm.identityFile.
		beside := filepath.Join(t.TempDir(), "id_ed25519")
		writeKey(t, beside, fresh, "")
		writeCert(t, beside+"-cert.pub", ca, pubOf(t, fresh), testvm.UserNoPasswordSudo)
		c, err := Dial(context.Background(), Options{
			Host: vm.Addr, User: testvm.UserNoPasswordSudo, IdentityFile: beside,
			SSHConfig: filepath.Join(t.TempDir(), "no-ssh-config"),
			HostKeys:  HostKeyPolicy{KnownHostsFile: filepath.Join(t.TempDir(), "known_hosts"), Pinned: vm.Fingerprint},
			Timeout:   10 * time.Second,
		})
		if err != nil {
			t.Errorf("IdentityFile %s with %s-cert.pub beside it: %v", beside, beside, err)
		} else {
			c.Close()
		}

		// Encrypted key, certificate beside it: the passphrase asked once.
		encrypted := filepath.Join(t.TempDir(), "id_locked")
		writeKey(t, encrypted, fresh, "cert pass")
		writeCert(t, encrypted+"-cert.pub", ca, pubOf(t, fresh), testvm.UserNoPasswordSudo)
		hop = target(testvm.UserNoPasswordSudo)
		hop.IdentityFiles = []string{encrypted}
		o := headless
		asked := 0
		o.Passphrase = func(string) (string, error) { asked++; return "cert pass", nil }
		if err := login(hop, o, vm.HostKey); err != nil || asked != 1 {
			t.Errorf("IdentityFile %s (encrypted) with its -cert.pub: passphrase asked %d times (want 1): %v", encrypted, asked, err)
		}

		// The agent holds the key and its certificate (ssh-add loads both).
		certAgent := startSSHAgent(t)
		sshAdd(t, certAgent, beside, "")
		hop = target(testvm.UserNoPasswordSudo)
		hop.IdentityAgent = certAgent
		if err := login(hop, headless, vm.HostKey); err != nil {
			t.Errorf("IdentityAgent %s holding a certificate: %v", certAgent, err)
		}

		// A certificate whose key is nowhere is skipped, and said to be.
		hop = target(testvm.UserNoPasswordSudo)
		hop.IdentityFiles = []string{filepath.Join(home, "unrelated")}
		hop.CertificateFiles = []string{certFile}
		err = login(hop, headless, vm.HostKey)
		if err == nil || !strings.Contains(err.Error(), "its key is in no IdentityFile and not in the agent") {
			t.Errorf("CertificateFile %s without its key: want the error to say the key is missing, got %v", certFile, err)
		}
	})

	t.Run("passphrase key held by the agent, headless", func(t *testing.T) {
		// The encrypted file alone, no .pub: its public half is read from the
		// file's OpenSSH header and matched with the agent's key.
		locked := filepath.Join(t.TempDir(), "id_locked")
		writeKey(t, locked, key, "agent pass")
		holder := startSSHAgent(t)
		sshAdd(t, holder, locked, "agent pass")
		for _, only := range []bool{false, true} {
			hop := target("root")
			hop.IdentityFiles = []string{locked}
			hop.IdentityAgent = holder
			hop.IdentitiesOnly = only
			if err := login(hop, noPassphrase, vm.HostKey); err != nil {
				t.Errorf("IdentityFile %s (encrypted, in IdentityAgent's agent), IdentitiesOnly %v, no Passphrase: %v", locked, only, err)
			}
		}
	})

	t.Run("IdentitiesOnly with an unrelated agent key fails and says what was tried", func(t *testing.T) {
		// The agent's key would get in; IdentitiesOnly must keep it back.
		holder := startSSHAgent(t)
		sshAdd(t, holder, filepath.Join(home, "vm_key"), "")
		refused := filepath.Join(home, "refused")
		writeKey(t, refused, newKey(t), "")
		hop := target("root")
		hop.IdentityAgent = holder
		hop.IdentityFiles = []string{refused, filepath.Join(home, "missing")}
		if err := login(hop, headless, vm.HostKey); err != nil {
			t.Fatalf("IdentitiesOnly no: the agent's key should get in: %v", err)
		}
		hop.IdentitiesOnly = true
		err := login(hop, headless, vm.HostKey)
		if err == nil {
			t.Fatal("IdentitiesOnly yes: logged in with an agent key no IdentityFile names")
		}
		for _, want := range []string{"ssh: unable to authenticate", "tried: ~/refused, ~/missing (no such file), agent " + holder + " (1 key left out by IdentitiesOnly)"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("IdentitiesOnly yes: the error lacks %q: %v", want, err)
			}
		}
	})

	t.Run("ssh_config: where ssh gets in, Dial gets in", func(t *testing.T) {
		if _, err := exec.LookPath("ssh"); err != nil {
			t.Skip("needs OpenSSH's ssh to compare with")
		}
		// A fresh key, encrypted, that only its certificate lets in; the
		// agent IdentityAgent names holds it. $SSH_AUTH_SOCK's agent holds
		// the VM's own key, which IdentitiesOnly must keep back.
		dir := t.TempDir()
		fresh := newKey(t)
		keyFile := filepath.Join(dir, "id_fresh")
		writeKey(t, keyFile, fresh, "fresh pass")
		certFile := filepath.Join(dir, "issued", "fresh.pub")
		writeCert(t, certFile, ca, pubOf(t, fresh), testvm.UserNoPasswordSudo)
		holder := startSSHAgent(t)
		sshAdd(t, holder, keyFile, "fresh pass")
		vmKeyAgent := startSSHAgent(t)
		sshAdd(t, vmKeyAgent, filepath.Join(home, "vm_key"), "")
		t.Setenv("SSH_AUTH_SOCK", vmKeyAgent)
		knownHosts := filepath.Join(dir, "known_hosts")
		if err := os.WriteFile(knownHosts, []byte(vm.KnownHostsLine()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		config := func(agent string) string {
			cfg := filepath.Join(t.TempDir(), "config")
			// Absolute paths: ssh reads ~ from the password database, not $HOME.
			text := "Host myvm\n\tHostName " + vm.Addr + "\n\tUser " + testvm.UserNoPasswordSudo +
				"\n\tIdentityAgent " + agent + "\n\tIdentitiesOnly yes\n\tIdentityFile " + keyFile +
				"\n\tCertificateFile " + certFile + "\n\tUserKnownHostsFile " + knownHosts +
				"\n\tStrictHostKeyChecking yes\n"
			if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			return cfg
		}
		ssh := func(cfg string) (string, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, "ssh", "-F", cfg, "-o", "BatchMode=yes", "myvm", "id", "-un").CombinedOutput()
			return string(out), err
		}
		dial := func(cfg string, passphrase func(string) (string, error)) (*Client, error) {
			return Dial(context.Background(), Options{
				Host: "myvm", SSHConfig: cfg,
				HostKeys:   HostKeyPolicy{KnownHostsFile: knownHosts, Pinned: vm.Fingerprint},
				Passphrase: passphrase,
				Timeout:    10 * time.Second,
			})
		}

		cfg := config(holder)
		if out, err := ssh(cfg); err != nil || strings.TrimSpace(out) != testvm.UserNoPasswordSudo {
			t.Fatalf("ssh itself does not get in with this config (%v): %s", err, out)
		}
		c, err := dial(cfg, noPassphrase.Passphrase)
		if err != nil {
			t.Fatalf("ssh gets in with IdentityAgent, IdentitiesOnly yes, IdentityFile (encrypted, in the agent) and CertificateFile; Dial does not: %v", err)
		}
		defer c.Close()
		if out, err := c.Run(context.Background(), "id -un"); err != nil || strings.TrimSpace(out) != testvm.UserNoPasswordSudo {
			t.Errorf("logged in as %q (%v), want %s", out, err, testvm.UserNoPasswordSudo)
		}

		// Without the agent neither gets in, and Dial says why.
		cfg = config("none")
		if out, err := ssh(cfg); err == nil {
			t.Fatalf("ssh gets in without the agent; the test proves nothing: %s", out)
		}
		_, err = dial(cfg, nil)
		if err == nil {
			t.Fatal("IdentityAgent none: Dial got in where ssh does not")
		}
		for _, want := range []string{"certificate " + certFile + " (encrypted, no passphrase given)", "no agent (IdentityAgent none)", "ssh-add " + keyFile} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("IdentityAgent none: the error lacks %q: %v", want, err)
			}
		}
	})

	t.Run("Dial: an encrypted key and no passphrase, as the operator sees it", func(t *testing.T) {
		locked := filepath.Join(home, "id_vm_locked")
		writeKey(t, locked, key, "never told")
		_, err := Dial(context.Background(), Options{
			Host: vm.Addr, User: "root", IdentityFile: locked,
			SSHConfig: filepath.Join(t.TempDir(), "no-ssh-config"),
			HostKeys:  HostKeyPolicy{KnownHostsFile: filepath.Join(t.TempDir(), "known_hosts"), Pinned: vm.Fingerprint},
			Timeout:   10 * time.Second,
		})
		if err == nil {
			t.Fatal("vm.identityFile (encrypted) without a passphrase: logged in")
		}
		for _, want := range []string{"refused our credentials", "tried: agent (1 key), ~/id_vm_locked (encrypted, no passphrase given)", "ssh-add ~/id_vm_locked"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("vm.identityFile (encrypted) without a passphrase: the error lacks %q: %v", want, err)
			}
		}
		if strings.Contains(err.Error(), "never told") {
			t.Errorf("the error shows the passphrase: %v", err)
		}
	})
}
