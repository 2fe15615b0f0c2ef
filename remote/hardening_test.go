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

// With timestamp_type=global, sudo remembers a password across sessions: a root
// command run after the first is not asked for it, and whatever was sent on its
// stdin for sudo reaches the command instead.
func TestSudoPasswordReachesSudoOnly(t *testing.T) {
	vm := testvm.Start(t, testvm.Options{})
	vm.MustExec(t, "echo 'Defaults timestamp_type=global' > /etc/sudoers.d/zz-global && chmod 440 /etc/sudoers.d/zz-global")
	ctx := context.Background()
	c := dial(t, options(t, vm, testvm.UserPasswordSudo))
	if err := c.Root(ctx, func() (string, error) { return testvm.SudoPassword, nil }); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // the first run fills sudo's cache
		out, err := c.RunRoot(ctx, "timeout 2 cat; true")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, testvm.SudoPassword) {
			t.Fatalf("run %d: the root command read the sudo password from its stdin: %q", i+1, out)
		}
	}
	// What a command is given on stdin still reaches it, after the password.
	out, err := c.Exec(ctx, remote.Cmd{Line: "cat", Root: true, Stdin: strings.NewReader("for the command\n")})
	if err != nil || out != "for the command\n" {
		t.Errorf("stdin through sudo: %q, %v", out, err)
	}
}

func TestCommandsRunAsAnotherUser(t *testing.T) {
	vm := testvm.Start(t, testvm.Options{})
	ctx := context.Background()
	for _, login := range []string{"root", testvm.UserPasswordSudo} {
		t.Run(login, func(t *testing.T) {
			c := dial(t, options(t, vm, login))
			if err := c.Root(ctx, func() (string, error) { return testvm.SudoPassword, nil }); err != nil {
				t.Fatal(err)
			}
			out, err := c.Exec(ctx, remote.Cmd{Line: "id -un; id -Gn; cat", As: testvm.UserNoSudo, Stdin: strings.NewReader("given\n")})
			if err != nil || out != testvm.UserNoSudo+"\n"+testvm.UserNoSudo+"\ngiven\n" {
				t.Errorf("as %s: %q, %v", testvm.UserNoSudo, out, err)
			}
			// The user cannot read what only root may.
			if _, err := c.Exec(ctx, remote.Cmd{Line: "cat /etc/shadow", As: testvm.UserNoSudo}); err == nil {
				t.Error("read /etc/shadow as a plain user")
			}
			_, err = c.Exec(ctx, remote.Cmd{Line: "true", As: "no-such-user"})
			var exit *remote.ExitError
			if !errors.As(err, &exit) || exit.Code != remote.ExitNoUser || !strings.Contains(exit.Stderr, "no user no-such-user") {
				t.Errorf("a missing user: %v", err)
			}
		})
	}
}

// A run that is cut off leaves its upload directory (perhaps with istio-token in
// it): the next connection removes it and says so; a live connection's stays.
// Nothing is written to /tmp by a guessable name.
func TestPrivateDirectoryAndCutOffRuns(t *testing.T) {
	vm := testvm.Start(t, testvm.Options{})
	ctx := context.Background()
	first := dial(t, options(t, vm, testvm.UserNoPasswordSudo))
	if err := first.Root(ctx, nil); err != nil {
		t.Fatal(err)
	}
	dir, err := first.TempDir(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := vm.MustExec(t, "stat -c '%U %a' "+dir); got != testvm.UserNoPasswordSudo+" 700\n" {
		t.Errorf("private dir %s: %s", dir, got)
	}
	token := filepath.Join(t.TempDir(), "istio-token")
	if err := os.WriteFile(token, []byte("a token"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := first.Upload(ctx, token, dir+"/istio-token", nil); err != nil {
		t.Fatal(err)
	}

	// A command's pid file is in the private directory while it runs.
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := first.RunRoot(cctx, "sleep 30"); done <- err }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(vm.MustExec(t, "ls -A "+dir), ".pid") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if tmp := vm.MustExec(t, "ls -A /tmp"); strings.Contains(tmp, ".pid") {
		t.Errorf("a pid file in /tmp: %s", tmp)
	}
	cancel()
	<-done

	live := dial(t, options(t, vm, testvm.UserNoPasswordSudo))
	liveDir, err := live.TempDir(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Another user's directory is not ours to judge.
	vm.MustExec(t, "mkdir -m 700 /tmp/vm2mesh.OTHERUSR && chown "+testvm.UserNoSudo+" /tmp/vm2mesh.OTHERUSR")

	if err := vm.DropConnections(); err != nil { // cuts first and live
		t.Fatal(err)
	}
	next := dial(t, options(t, vm, testvm.UserNoPasswordSudo))
	if err := next.Root(ctx, nil); err != nil {
		t.Fatal(err)
	}
	nextDir, err := next.TempDir(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cleaned := next.Cleaned()
	if len(cleaned) != 2 || !containsAll(cleaned, dir, liveDir) {
		t.Errorf("cleaned %v, want %s and %s (both connections were cut)", cleaned, dir, liveDir)
	}
	if left := vm.MustExec(t, "ls -d /tmp/vm2mesh.* | sort"); left != strings.Join(sortedTwo("/tmp/vm2mesh.OTHERUSR", nextDir), "\n")+"\n" {
		t.Errorf("left in /tmp:\n%s", left)
	}

	// A connection that is alive keeps its directory through another's start,
	// and one that reconnects keeps its own.
	other := dial(t, options(t, vm, testvm.UserNoPasswordSudo))
	if _, err := other.TempDir(ctx); err != nil {
		t.Fatal(err)
	}
	if c := other.Cleaned(); len(c) != 0 {
		t.Errorf("a live connection's directory was removed: %v", c)
	}
	if err := next.Reconnect(ctx); err != nil {
		t.Fatal(err)
	}
	third := dial(t, options(t, vm, testvm.UserNoPasswordSudo))
	if _, err := third.TempDir(ctx); err != nil {
		t.Fatal(err)
	}
	if c := third.Cleaned(); len(c) != 0 {
		t.Errorf("removed after a reconnect: %v", c)
	}
	if err := next.RemoveTempDir(ctx); err != nil {
		t.Fatal(err)
	}
	if out := vm.MustExec(t, "[ -e "+nextDir+" ] && echo there || echo gone"); out != "gone\n" {
		t.Errorf("RemoveTempDir: %s", out)
	}
}

func containsAll(list []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, l := range list {
			found = found || l == w
		}
		if !found {
			return false
		}
	}
	return true
}

func sortedTwo(a, b string) []string {
	if a > b {
		a, b = b, a
	}
	return []string{a, b}
}
