package remote_test

import (
	"context"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/vm2mesh/vm2mesh/internal/testvm"
	"github.com/vm2mesh/vm2mesh/remote"
)

func TestLoginByAgentPassphraseAndPassword(t *testing.T) {
	vm := testvm.Start(t, testvm.Options{})
	ctx := context.Background()
	raw, err := os.ReadFile(vm.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.ParseRawPrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("ssh-agent", func(t *testing.T) {
		// An agent of the test's own, on a socket in its temp dir.
		keyring := agent.NewKeyring()
		if err := keyring.Add(agent.AddedKey{PrivateKey: key}); err != nil {
			t.Fatal(err)
		}
		sock := filepath.Join(t.TempDir(), "agent.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go agent.ServeAgent(keyring, c)
			}
		}()
		t.Setenv("SSH_AUTH_SOCK", sock)
		t.Setenv("HOME", t.TempDir()) // no default keys to fall back on
		o := options(t, vm, "root")
		o.IdentityFile = ""
		out, err := dial(t, o).Run(ctx, "id -un")
		if err != nil || out != "root\n" {
			t.Errorf("agent login: %q %v", out, err)
		}
	})

	t.Run("encrypted key asks for its passphrase", func(t *testing.T) {
		block, err := ssh.MarshalPrivateKeyWithPassphrase(key, "", []byte("open sesame"))
		if err != nil {
			t.Fatal(err)
		}
		encrypted := filepath.Join(t.TempDir(), "id_ed25519")
		if err := os.WriteFile(encrypted, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("SSH_AUTH_SOCK", "")
		o := options(t, vm, "root")
		o.IdentityFile = encrypted
		asked := ""
		o.Passphrase = func(file string) (string, error) { asked = file; return "open sesame", nil }
		out, err := dial(t, o).Run(ctx, "id -un")
		if err != nil || out != "root\n" || asked != encrypted {
			t.Errorf("passphrase login: %q %v (asked for %q)", out, err, asked)
		}
	})

	t.Run("password", func(t *testing.T) {
		t.Setenv("SSH_AUTH_SOCK", "")
		t.Setenv("HOME", t.TempDir())
		o := options(t, vm, testvm.UserPasswordSudo)
		o.IdentityFile = filepath.Join(t.TempDir(), "none")
		o.Password = func(user, host string) (string, error) { return testvm.SudoPassword, nil }
		out, err := dial(t, o).Run(ctx, "id -un")
		if err != nil || out != "admin\n" {
			t.Errorf("password login: %q %v", out, err)
		}
		o.Password = func(user, host string) (string, error) { return "wrong", nil }
		_, err = remote.Dial(ctx, o)
		if err == nil || !strings.Contains(err.Error(), "refused our credentials") {
			t.Errorf("wrong password: %v", err)
		}
		o.Password = func(user, host string) (string, error) { return "", errors.New("no terminal to ask") }
		if _, err := remote.Dial(ctx, o); err == nil {
			t.Error("logged in without a password")
		}
	})
}
