package remote_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vm2mesh/vm2mesh/internal/testvm"
	"github.com/vm2mesh/vm2mesh/remote"
)

func options(t *testing.T, vm *testvm.VM, user string) remote.Options {
	return remote.Options{
		Host:         vm.Addr,
		User:         user,
		IdentityFile: vm.ClientKey,
		SSHConfig:    filepath.Join(t.TempDir(), "no-ssh-config"),
		HostKeys:     remote.HostKeyPolicy{KnownHostsFile: filepath.Join(t.TempDir(), "known_hosts"), Pinned: vm.Fingerprint},
		Timeout:      10 * time.Second,
	}
}

func dial(t *testing.T, o remote.Options) *remote.Client {
	t.Helper()
	c, err := remote.Dial(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRootDirectAndThroughSudo(t *testing.T) {
	vm := testvm.Start(t, testvm.Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		user, password, how string
	}{
		{"root", "", "logged in as root"},
		{testvm.UserNoPasswordSudo, "", "sudo without a password"},
		{testvm.UserPasswordSudo, testvm.SudoPassword, "sudo with a password"},
	} {
		t.Run(tc.user, func(t *testing.T) {
			c := dial(t, options(t, vm, tc.user))
			asked := false
			err := c.Root(ctx, func() (string, error) { asked = true; return tc.password, nil })
			if err != nil {
				t.Fatal(err)
			}
			if c.AsRoot() != tc.how || asked != (tc.password != "") {
				t.Errorf("root %q (asked %v), want %q", c.AsRoot(), asked, tc.how)
			}
			out, err := c.RunRoot(ctx, "id -u; echo $HOME")
			if err != nil || !strings.HasPrefix(out, "0\n") {
				t.Errorf("as root: %q %v", out, err)
			}
		})
	}

	t.Run("wrong sudo password", func(t *testing.T) {
		c := dial(t, options(t, vm, testvm.UserPasswordSudo))
		err := c.Root(ctx, func() (string, error) { return "not-the-password", nil })
		if !errors.Is(err, remote.ErrSudoPassword) {
			t.Errorf("wrong password: %v", err)
		}
	})
	t.Run("no sudo rights", func(t *testing.T) {
		c := dial(t, options(t, vm, testvm.UserNoSudo))
		err := c.Root(ctx, func() (string, error) { return testvm.PlainPassword, nil })
		if !errors.Is(err, remote.ErrNoRoot) || !strings.Contains(err.Error(), "grant it sudo rights or log in as root") {
			t.Errorf("no sudo: %v", err)
		}
	})
	t.Run("password never on a command line", func(t *testing.T) {
		c := dial(t, options(t, vm, testvm.UserPasswordSudo))
		if err := c.Root(ctx, func() (string, error) { return testvm.SudoPassword, nil }); err != nil {
			t.Fatal(err)
		}
		out, err := c.RunRoot(ctx, "ps -eo args")
		if err != nil || strings.Contains(out, testvm.SudoPassword) {
			t.Errorf("process list shows the password or failed: %v\n%s", err, out)
		}
	})
}

func TestHostKeys(t *testing.T) {
	vm := testvm.Start(t, testvm.Options{})
	ctx := context.Background()

	t.Run("unknown host refused without a pin or a prompt", func(t *testing.T) {
		o := options(t, vm, "root")
		o.HostKeys.Pinned = ""
		_, err := remote.Dial(ctx, o)
		var unknown *remote.UnknownHostError
		if !errors.As(err, &unknown) || unknown.Fingerprint != vm.Fingerprint || !strings.Contains(err.Error(), "vm.hostKeyFingerprint") {
			t.Errorf("unknown host: %v", err)
		}
		if _, err := os.Stat(o.HostKeys.KnownHostsFile); !os.IsNotExist(err) {
			t.Error("a refused key was written to known_hosts")
		}
	})
	t.Run("pinned fingerprint accepted and remembered", func(t *testing.T) {
		o := options(t, vm, "root")
		dial(t, o).Close()
		data, _ := os.ReadFile(o.HostKeys.KnownHostsFile)
		if !strings.Contains(string(data), vm.Addr+" ssh-ed25519 ") {
			t.Errorf("known_hosts: %q", data)
		}
		o.HostKeys.Pinned = "" // now known: no pin needed
		dial(t, o)
	})
	t.Run("wrong pin refused", func(t *testing.T) {
		o := options(t, vm, "root")
		o.HostKeys.Pinned = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		var mismatch *remote.FingerprintMismatchError
		if _, err := remote.Dial(ctx, o); !errors.As(err, &mismatch) {
			t.Errorf("wrong pin: %v", err)
		}
	})
	t.Run("prompt decides", func(t *testing.T) {
		o := options(t, vm, "root")
		o.HostKeys.Pinned = ""
		var shown string
		o.HostKeys.Ask = func(host, keyType, fp string) (remote.HostKeyDecision, error) {
			shown = keyType + " " + fp
			return remote.AcceptOnce, nil
		}
		dial(t, o)
		if shown != "ssh-ed25519 "+vm.Fingerprint {
			t.Errorf("prompt showed %q", shown)
		}
		if _, err := os.Stat(o.HostKeys.KnownHostsFile); !os.IsNotExist(err) {
			t.Error("accept once wrote known_hosts")
		}
	})
	t.Run("changed key refused", func(t *testing.T) {
		o := options(t, vm, "root")
		other := testvm.Start(t, testvm.Options{})
		// known_hosts says this address has the other VM's key.
		line := vm.Addr + " " + strings.SplitN(other.KnownHostsLine(), " ", 2)[1] + "\n"
		if err := os.WriteFile(o.HostKeys.KnownHostsFile, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		var changed *remote.HostKeyChangedError
		_, err := remote.Dial(ctx, o)
		if !errors.As(err, &changed) || !strings.Contains(err.Error(), "REMOTE HOST IDENTIFICATION HAS CHANGED") {
			t.Errorf("changed key: %v", err)
		}
	})
}

func TestCancelStopsTheRemoteProcess(t *testing.T) {
	vm := testvm.Start(t, testvm.Options{})
	c := dial(t, options(t, vm, testvm.UserNoPasswordSudo))
	if err := c.Root(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := c.RunRoot(ctx, "sleep 987")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if out := vm.MustExec(t, "pgrep -f '^sleep 987$' || true"); strings.TrimSpace(out) == "" {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Error("sleep 987 still runs on the VM after the command was cancelled")
}
