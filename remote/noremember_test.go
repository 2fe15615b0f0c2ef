package remote

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/vm2mesh/vm2mesh/internal/testvm"
)

// NoRemember (doctor) never writes known_hosts: a pin lets the connection in
// once; accept-new, the policy's or ssh_config's, refuses the unknown host.
func TestNoRememberNeverWritesKnownHosts(t *testing.T) {
	vm := testvm.Start(t, testvm.Options{})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	for _, c := range []struct {
		name   string
		strict string
		p      HostKeyPolicy
		in     bool
	}{
		{"pinned", "", HostKeyPolicy{Pinned: vm.Fingerprint, NoRemember: true}, true},
		{"acceptNewHostKey", "", HostKeyPolicy{AcceptNew: true, NoRemember: true}, false},
		{"ssh_config accept-new", "accept-new", HostKeyPolicy{NoRemember: true}, false},
		{"asked, answered remember", "", HostKeyPolicy{NoRemember: true, Ask: func(string, string, string) (HostKeyDecision, error) {
			return AcceptAndRemember, nil
		}}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl, err := dialVM(t, vm, Hop{UserKnownHostsFiles: []string{kh}, StrictHostKeyChecking: c.strict}, c.p)
			var unknown *UnknownHostError
			switch {
			case c.in:
				mustLogIn(t, c.name, cl, err)
			case !errors.As(err, &unknown):
				t.Errorf("want the unknown host refused, got %v", err)
			}
			if _, err := os.Stat(kh); !os.IsNotExist(err) {
				t.Errorf("known_hosts was written")
			}
		})
	}
}
