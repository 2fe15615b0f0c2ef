package testvm

import (
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// A VM behind another is reached from that one only, and offers the host keys
// asked for.
func TestVMBehindABastionWithThreeHostKeys(t *testing.T) {
	bastion := Start(t, Options{})
	target := Start(t, Options{Behind: bastion, HostKeyTypes: []string{"ed25519", "ecdsa", "rsa"}})
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(target.Addr, "22"), 2*time.Second); err == nil || !strings.Contains(err.Error(), "no route to host") {
		if c != nil {
			c.Close()
		}
		t.Fatalf("the host reaches %s directly, or not as unreachable: %v", target.Addr, err)
	}
	scan := bastion.MustExec(t, "ssh-keyscan -T 5 -t ed25519,ecdsa,rsa "+target.Addr+" 2>/dev/null | sort")
	for typ, key := range target.HostKeys {
		if !strings.Contains(scan, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))) {
			t.Errorf("the %s key is not offered:\n%s", typ, scan)
		}
	}
	if len(target.HostKeys) != 3 || ssh.FingerprintSHA256(target.HostKey) != ssh.FingerprintSHA256(target.HostKeys["ed25519"]) {
		t.Errorf("host keys %v", target.HostKeys)
	}
}

// A comma in the test's name does not reach the overlay's mount options.
func TestAVMForATestWithACommaInItsName(t *testing.T) {
	Skip(t)
	t.Run("one, two", func(t *testing.T) {
		vm := Start(t, Options{})
		if got := vm.MustExec(t, "echo up"); got != "up\n" {
			t.Fatalf("the VM said %q", got)
		}
	})
}
