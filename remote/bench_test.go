package remote_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vm2mesh/vm2mesh/internal/testvm"
	"github.com/vm2mesh/vm2mesh/remote"
)

// BenchmarkUpload64MiB uploads the same 64 MiB file to a sandbox VM with
// vm2mesh's uploader (SFTP with concurrent writes, SHA-256 checked on both ends)
// and with OpenSSH's scp, in one run. hack/bench-upload runs it and prints the
// ratio the README reports.
func BenchmarkUpload64MiB(b *testing.B) {
	vm := testvm.Start(b, testvm.Options{})
	ctx := context.Background()
	local := randomFile(b, 64<<20)
	kh := filepath.Join(b.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, []byte(vm.KnownHostsLine()+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	c, err := remote.Dial(ctx, remote.Options{Host: vm.Addr, User: "root", IdentityFile: vm.ClientKey,
		SSHConfig: filepath.Join(b.TempDir(), "none"), HostKeys: remote.HostKeyPolicy{KnownHostsFile: kh}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Root(ctx, nil); err != nil {
		b.Fatal(err)
	}
	clean := func() {
		b.StopTimer()
		vm.MustExec(b, "rm -f /root/bench.bin /root/bench.bin.part")
		b.StartTimer()
	}
	b.Run("vm2mesh", func(b *testing.B) {
		b.SetBytes(64 << 20)
		for range b.N {
			clean()
			if err := c.Upload(ctx, local, "/root/bench.bin", nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("scp", func(b *testing.B) {
		b.SetBytes(64 << 20)
		for range b.N {
			clean()
			cmd := exec.Command("scp", "-q", "-i", vm.ClientKey, "-o", "UserKnownHostsFile="+kh, "-o", "StrictHostKeyChecking=yes",
				"-o", "BatchMode=yes", "-F", "/dev/null", local, "root@"+vm.Addr+":/root/bench.bin")
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("scp: %v: %s", err, out)
			}
		}
	})
}
