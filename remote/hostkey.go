package remote

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
)

// HostKeyDecision is the operator's answer about an unknown host key.
type HostKeyDecision int

const (
	RejectHost HostKeyDecision = iota
	AcceptOnce
	AcceptAndRemember
)

// HostKeyPolicy says how unknown hosts are treated. A changed key is always refused.
type HostKeyPolicy struct {
	KnownHostsFile string // "": ~/.ssh/known_hosts
	// Pinned is a SHA256:... fingerprint that a first-contact key must have; such a
	// key is remembered.
	Pinned string
	// AcceptNew remembers unknown hosts without asking (OpenSSH's accept-new).
	AcceptNew bool
	// Ask is asked about an unknown key when neither of the above decides; nil
	// refuses (headless).
	Ask func(host, keyType, fingerprint string) (HostKeyDecision, error)
}

// UnknownHostError: the host is not in known_hosts and nothing allowed it.
type UnknownHostError struct {
	Host, KeyType, Fingerprint string
}

func (e *UnknownHostError) Error() string {
	return fmt.Sprintf("host %s is not in known_hosts (it offers %s key %s): check the fingerprint on the VM's console, then set vm.hostKeyFingerprint to it (or answer the prompt in the wizard)",
		e.Host, e.KeyType, e.Fingerprint)
}

// HostKeyChangedError: known_hosts has another key for the host.
type HostKeyChangedError struct {
	Host, KeyType, Fingerprint, KnownHosts string
}

func (e *HostKeyChangedError) Error() string {
	return fmt.Sprintf(`@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
The %s host key for %s has changed; it is now %s.
vm2mesh refuses to connect. If the VM was reinstalled, remove its old key from
%s (%s) and run again.`, e.KeyType, e.Host, e.Fingerprint, e.KnownHosts, forgetCommand(e.Host))
}

// forgetCommand removes addr's key from known_hosts. ssh-keygen -R matches the
// name as written there, host on port 22 and [host]:port otherwise; the brackets
// are quoted so a shell does not glob them.
func forgetCommand(addr string) string {
	name := knownhosts.Normalize(addr)
	if strings.ContainsAny(name, "[]") {
		name = "'" + name + "'"
	}
	return "ssh-keygen -R " + name
}

// FingerprintMismatchError: the host's key is not the pinned one.
type FingerprintMismatchError struct {
	Host, Pinned, Offered string
}

func (e *FingerprintMismatchError) Error() string {
	return fmt.Sprintf("host %s offers key %s, but vm.hostKeyFingerprint pins %s: refusing to connect", e.Host, e.Offered, e.Pinned)
}

type hostKeys struct {
	policy HostKeyPolicy
	file   string
	addr   string // the hop's host:port, as known_hosts names it
	mu     sync.Mutex
	db     *knownhosts.HostKeyDB
}

// newHostKeys is the host key verification for one hop. (The hop's own
// known_hosts settings are not read yet: the policy's file alone.)
func newHostKeys(p HostKeyPolicy, hop Hop) (*hostKeys, error) {
	file := p.KnownHostsFile
	if file == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, err
		}
		file = filepath.Join(home, ".ssh", "known_hosts")
	}
	h := &hostKeys{policy: p, file: file, addr: hop.Addr()}
	return h, h.load()
}

func (h *hostKeys) load() error {
	var files []string
	if _, err := os.Stat(h.file); err == nil {
		files = append(files, h.file)
	}
	db, err := knownhosts.NewDB(files...)
	if err != nil {
		return fmt.Errorf("reading %s: %w", h.file, err)
	}
	h.mu.Lock()
	h.db = db
	h.mu.Unlock()
	return nil
}

// rounds are the host key algorithms to offer, one list per handshake attempt:
// today one round, the key types known_hosts has for the hop, so the server
// offers a key we can check rather than one we have never seen.
func (h *hostKeys) rounds() [][]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return [][]string{h.db.HostKeyAlgorithms(h.addr)}
}

func (h *hostKeys) callback(hostname string, remote net.Addr, key ssh.PublicKey) error {
	h.mu.Lock()
	err := h.db.HostKeyCallback()(hostname, remote, key)
	h.mu.Unlock()
	if err == nil {
		return nil
	}
	fp := ssh.FingerprintSHA256(key)
	if knownhosts.IsHostKeyChanged(err) {
		return &HostKeyChangedError{Host: hostname, KeyType: key.Type(), Fingerprint: fp, KnownHosts: h.file}
	}
	if !knownhosts.IsHostUnknown(err) {
		return err
	}
	decision := RejectHost
	switch {
	case h.policy.Pinned != "":
		if fp != h.policy.Pinned {
			return &FingerprintMismatchError{Host: hostname, Pinned: h.policy.Pinned, Offered: fp}
		}
		decision = AcceptAndRemember
	case h.policy.AcceptNew:
		decision = AcceptAndRemember
	case h.policy.Ask != nil:
		if decision, err = h.policy.Ask(hostname, key.Type(), fp); err != nil {
			return err
		}
	}
	switch decision {
	case AcceptOnce:
		return nil
	case AcceptAndRemember:
		return h.remember(hostname, remote, key)
	}
	return &UnknownHostError{Host: hostname, KeyType: key.Type(), Fingerprint: fp}
}

// remember appends the key to known_hosts (creating it 0600 in a 0700 directory).
func (h *hostKeys) remember(hostname string, remote net.Addr, key ssh.PublicKey) error {
	if err := os.MkdirAll(filepath.Dir(h.file), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(h.file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("remembering the host key: %w", err)
	}
	werr := knownhosts.WriteKnownHost(f, hostname, remote, key)
	if err := errors.Join(werr, f.Close()); err != nil {
		return fmt.Errorf("remembering the host key in %s: %w", h.file, err)
	}
	return h.load()
}
