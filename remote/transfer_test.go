package remote_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vm2mesh/vm2mesh/internal/testvm"
	"github.com/vm2mesh/vm2mesh/remote"
)

func randomFile(t testing.TB, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "payload.bin")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUploadProgressChecksumAndDroppedConnection(t *testing.T) {
	vm := testvm.Start(t, testvm.Options{})
	ctx := context.Background()
	c := dial(t, options(t, vm, testvm.UserNoPasswordSudo))
	if err := c.Root(ctx, nil); err != nil {
		t.Fatal(err)
	}
	dir, err := c.TempDir(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if mode := vm.MustExec(t, "stat -c %a "+dir); mode != "700\n" {
		t.Errorf("temp dir mode %s", mode)
	}
	local := randomFile(t, 64<<20)
	sum, _, _ := remote.FileSHA256(local)
	target := dir + "/istio-sidecar.deb"

	// Drop the connection once a third has arrived: the upload redials and starts
	// over, and the file never appears half-written under its name.
	var dropped atomic.Bool
	var last atomic.Int64
	err = c.Upload(ctx, local, target, func(done, total int64) {
		last.Store(done)
		if !dropped.Load() && done > total/3 {
			dropped.Store(true)
			if out := vm.MustExec(t, "ls "+dir); strings.Contains(out, "istio-sidecar.deb\n") {
				t.Error("the file is visible under its name before it is complete")
			}
			if err := vm.DropConnections(); err != nil {
				t.Error(err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !dropped.Load() || last.Load() != 64<<20 {
		t.Errorf("dropped=%v, last progress %d", dropped.Load(), last.Load())
	}
	if got := strings.Fields(vm.MustExec(t, "sha256sum "+target))[0]; got != sum {
		t.Errorf("sha256 on the VM %s, want %s", got, sum)
	}
	if out := vm.MustExec(t, "ls "+dir); out != "istio-sidecar.deb\n" {
		t.Errorf("upload dir holds %q", out)
	}
	// The same file again: nothing to send.
	var calls int
	if err := c.Upload(ctx, local, target, func(done, total int64) { calls++ }); err != nil || calls != 1 {
		t.Errorf("re-upload: %d progress calls, %v", calls, err)
	}
}

func TestSSHConfigAliasAndProxyJump(t *testing.T) {
	vm := testvm.Start(t, testvm.Options{})
	ctx := context.Background()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config")
	// "bastion" and "hop" are jump hosts (the VM itself: it can reach its own
	// address), "target" is reached through both, as OpenSSH would.
	err := os.WriteFile(cfg, []byte(fmt.Sprintf(`Host bastion
	HostName %[1]s
	User deploy
	IdentityFile %[2]s

Host hop
	HostName %[1]s
	Port 22
	User admin
	IdentityFile %[2]s

Host target
	HostName %[1]s
	User root
	IdentityFile %[2]s
	ProxyJump bastion,hop

Host *
	User nobody
`, vm.Addr, vm.ClientKey)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	route, err := remote.Describe(ctx, remote.Options{Host: "target", SSHConfig: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if h := route.Hops; len(h) != 3 || h[2].User != "root" || h[2].HostName != vm.Addr || h[2].Port != 22 || h[0].User != "deploy" || h[1].User != "admin" {
		t.Fatalf("resolved route:\n%s", route)
	}
	kh := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(kh, []byte(vm.KnownHostsLine()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := remote.Dial(ctx, remote.Options{Host: "target", SSHConfig: cfg, HostKeys: remote.HostKeyPolicy{KnownHostsFile: kh}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out, err := c.Run(ctx, "id -un")
	if err != nil || out != "root\n" {
		t.Errorf("through two jumps: %q %v", out, err)
	}
	// The jumps are real: the VM saw deploy and admin log in.
	if who := vm.MustExec(t, "ps -eo args | grep -c '^sshd: \\(deploy\\|admin\\) \\[priv\\]' || true"); strings.TrimSpace(who) != "2" {
		t.Errorf("jump sessions on the VM: %s", who)
	}
}

func TestTailFollowsFromAnOffsetAndStops(t *testing.T) {
	vm := testvm.Start(t, testvm.Options{})
	ctx := context.Background()
	c := dial(t, options(t, vm, "root"))
	if err := c.Root(ctx, nil); err != nil {
		t.Fatal(err)
	}
	vm.MustExec(t, "mkdir -p /var/log/istio && printf 'old line\\n' > /var/log/istio/istio.log && : > /var/log/istio/istio.err.log")
	go func() {
		time.Sleep(time.Second)
		vm.MustExec(t, "echo 'first new' >> /var/log/istio/istio.log; sleep 0.3; echo 'to stderr' >> /var/log/istio/istio.err.log; sleep 0.8; echo 'the verdict' >> /var/log/istio/istio.log")
	}()
	var got []string
	err := c.Tail(ctx, "", []remote.TailFile{{Path: "/var/log/istio/istio.log", Offset: 9}, {Path: "/var/log/istio/istio.err.log"}}, 20*time.Second,
		func(l remote.Line) bool {
			got = append(got, filepath.Base(l.File)+": "+l.Text)
			return l.Text == "the verdict"
		})
	if err != nil {
		t.Fatal(err)
	}
	want := "istio.log: first new|istio.err.log: to stderr|istio.log: the verdict"
	if strings.Join(got, "|") != want {
		t.Errorf("lines %q, want %q", got, want)
	}
	time.Sleep(time.Second)
	if out := vm.MustExec(t, "pgrep -f '^tail -s' || true"); out != "" {
		t.Errorf("tail still runs on the VM: %s", out)
	}
	// Silence until max is not an error: the caller judges it.
	start := time.Now()
	if err := c.Tail(ctx, "", []remote.TailFile{{Path: "/var/log/istio/none.log"}}, 2*time.Second, func(remote.Line) bool { return false }); err != nil {
		t.Errorf("silent tail: %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("silent tail took %s", time.Since(start))
	}
}

// UploadFiles sends small files in one command (one session, not an SFTP
// session and three commands each), each checked and renamed into place; a
// large one goes by Upload. Nothing is left as .part, every file is 0600, and a
// file sent again replaces the one there.
func TestUploadFilesSendsSmallFilesInOneSession(t *testing.T) {
	vm := testvm.Start(t, testvm.Options{})
	ctx := context.Background()
	var traced atomic.Int32
	o := options(t, vm, testvm.UserNoPasswordSudo)
	o.Trace = func(string) { traced.Add(1) }
	c := dial(t, o)
	if err := c.Root(ctx, nil); err != nil {
		t.Fatal(err)
	}
	dir, err := c.TempDir(ctx)
	if err != nil {
		t.Fatal(err)
	}
	local := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(local, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	files := []remote.Transfer{
		{Local: write("a", "first\n"), Remote: dir + "/a"},
		{Local: write("empty", ""), Remote: dir + "/empty"},
		{Local: write("b", "second, without a newline"), Remote: dir + "/it's b"},
	}
	before := traced.Load()
	if err := c.UploadFiles(ctx, files); err != nil {
		t.Fatal(err)
	}
	if n := traced.Load() - before; n != 1 {
		t.Errorf("three small files took %d commands, want 1", n)
	}
	if out := vm.MustExec(t, "cd "+dir+" && for f in *; do printf '%s %s %s\\n' \"$f\" $(stat -c %a \"$f\") $(sha256sum < \"$f\" | cut -c1-8); done"); out !=
		"a 600 "+sha8("first\n")+"\nempty 600 "+sha8("")+"\nit's b 600 "+sha8("second, without a newline")+"\n" {
		t.Errorf("on the VM:\n%s", out)
	}

	// Again with other contents, and a file too large for the batch.
	files[0].Local = write("a", "changed\n")
	big := randomFile(t, 3<<20)
	files = append(files, remote.Transfer{Local: big, Remote: dir + "/big"})
	if err := c.UploadFiles(ctx, files); err != nil {
		t.Fatal(err)
	}
	sum, _, _ := remote.FileSHA256(big)
	if got := vm.MustExec(t, "cat "+dir+"/a; sha256sum < "+dir+"/big; ls -a "+dir+" | grep -c part || true"); got != "changed\n"+sum+"  -\n0\n" {
		t.Errorf("after the second upload: %q", got)
	}
}

func sha8(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])[:8]
}
