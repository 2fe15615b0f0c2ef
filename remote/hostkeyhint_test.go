package remote_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"

	"github.com/vm2mesh/vm2mesh/remote"
)

// The hint must name the host as known_hosts does, and the file it is in, or
// ssh-keygen -R removes nothing.
func TestHostKeyChangedHintNamesTheKnownHostsEntry(t *testing.T) {
	for addr, want := range map[string]string{
		"198.51.100.6:2222":  `ssh-keygen -R '[198.51.100.6]:2222' -f /k)`,
		"198.51.100.6:22":    `ssh-keygen -R 198.51.100.6 -f /k)`,
		"vm.example.com:22":  `ssh-keygen -R vm.example.com -f /k)`,
		"[2001:db8::6]:2222": `ssh-keygen -R '[2001:db8::6]:2222' -f /k)`,
		"[2001:db8::6]:22":   `ssh-keygen -R 2001:db8::6 -f /k)`,
	} {
		e := &remote.HostKeyChangedError{Host: addr, KeyType: "ssh-ed25519", Fingerprint: "SHA256:x", KnownHosts: "/k"}
		if !strings.Contains(e.Error(), want) {
			t.Errorf("%s: hint lacks %s:\n%s", addr, want, e.Error())
		}
	}

	t.Run("the entry a real dial refuses", func(t *testing.T) {
		addr, _ := serveSSH(t, &ssh.ServerConfig{NoClientAuth: true}, "")
		_, otherKey := clientKey(t) // any other key, as if the host was reinstalled
		line := knownhosts.Line([]string{addr}, otherKey)
		kh := filepath.Join(t.TempDir(), "known_hosts")
		if err := os.WriteFile(kh, []byte(line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("SSH_AUTH_SOCK", "")
		host, port, _ := net.SplitHostPort(addr)
		p, _ := strconv.Atoi(port)
		_, err := remote.Dial(context.Background(), remote.Options{
			Host: host, Port: p, User: "admin", SSHConfig: filepath.Join(t.TempDir(), "none"),
			HostKeys: remote.HostKeyPolicy{KnownHostsFile: kh}, Timeout: 10 * time.Second,
		})
		var changed *remote.HostKeyChangedError
		entry := strings.Fields(line)[0] // [127.0.0.1]:port
		if !errors.As(err, &changed) || !strings.Contains(err.Error(), "ssh-keygen -R '"+entry+"'") {
			t.Errorf("want the hint ssh-keygen -R '%s', got %v", entry, err)
		}
	})
}
