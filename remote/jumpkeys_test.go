package remote_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vm2mesh/vm2mesh/internal/testvm"
	"github.com/vm2mesh/vm2mesh/remote"
)

// vm.hostKeyFingerprint and vm.acceptNewHostKey speak for the VM: a jump host on
// the way is known by its known_hosts, or asked about by name, never let in by
// the VM's pin or remembered by the VM's accept-new.
func TestTheVMsPinAndAcceptNewAreNotTheJumpHosts(t *testing.T) {
	bastion := testvm.Start(t, testvm.Options{})
	target := testvm.Start(t, testvm.Options{Behind: bastion})
	dir := t.TempDir()
	cfg := writeFile(t, filepath.Join(dir, "config"), fmt.Sprintf(`Host bastion
	HostName %s
	User root
	IdentityFile %s

Host target
	HostName %s
	User root
	IdentityFile %[2]s
	ProxyJump bastion
`, bastion.Addr, bastion.ClientKey, target.Addr))
	kh := filepath.Join(dir, "known_hosts")
	o := remote.Options{Host: "target", SSHConfig: cfg, Timeout: 10 * time.Second,
		HostKeys: remote.HostKeyPolicy{KnownHostsFile: kh, Pinned: target.Fingerprint, AcceptNew: true}}
	_, err := remote.Dial(context.Background(), o)
	var unknown *remote.UnknownHostError
	if !errors.As(err, &unknown) || !strings.Contains(err.Error(), "jump host") || unknown.Fingerprint != bastion.Fingerprint {
		t.Fatalf("an unknown jump host with the VM pinned and acceptNewHostKey: %v", err)
	}
	if data, _ := os.ReadFile(kh); len(data) > 0 {
		t.Errorf("known_hosts written for an unknown jump host:\n%s", data)
	}

	// Asked, the prompt names the jump host; accepted, the VM's pin does the rest.
	var asked []string
	o.HostKeys.Ask = func(host, keyType, fp string) (remote.HostKeyDecision, error) {
		asked = append(asked, host+" "+fp)
		return remote.AcceptOnce, nil
	}
	c, err := remote.Dial(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if len(asked) != 1 || !strings.HasPrefix(asked[0], "jump host ") || !strings.HasSuffix(asked[0], bastion.Fingerprint) {
		t.Errorf("asked %q, want the jump host once", asked)
	}
}
