// Package remote is vm2mesh's door to the VM: SSH with ~/.ssh/config, agent, key
// and password auth, verified host keys, root through sudo, uploads with progress
// and checksums, and bounded commands and log tails. Every call takes a context.
package remote

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// Hop is one SSH server to log in to, with ssh_config applied as OpenSSH applies
// it (Match, Include, tokens, canonicalisation): the values `ssh -G` prints that
// vm2mesh honours (Resolve). The answers file's explicit values win over the
// file's. File settings have ~, %tokens and ${VAR} expanded.
type Hop struct {
	Alias    string // what the operator typed
	HostName string
	Port     int
	User     string
	// IdentityFiles are the configured IdentityFile entries, ~ expanded; empty
	// means OpenSSH's defaults (DefaultIdentityFiles).
	IdentityFiles []string
	// CertificateFiles are CertificateFile entries, ~ expanded. A key's
	// certificate is also looked for beside it as KEY-cert.pub.
	CertificateFiles []string
	// IdentityAgent is the agent's socket: "" and "SSH_AUTH_SOCK" mean
	// $SSH_AUTH_SOCK, "$VAR" another variable, "none" no agent.
	IdentityAgent string
	// IdentitiesOnly: only the configured identities, even when the agent
	// holds others (keys the agent holds for a configured file still count).
	IdentitiesOnly bool
	// ProxyJump lists the jump hosts, in dialing order, as written
	// ([user@]host[:port] or ssh:// URIs, tokens expanded); each is resolved
	// as a host of its own (Describe).
	ProxyJump []string
	// ProxyCommand, when set, is run with sh -c and carries the connection on
	// its stdin and stdout; tokens are expanded already.
	ProxyCommand string
	// Host keys: where they are known (OpenSSH's defaults filled in; "none"
	// is kept as ssh prints it), under which name, and what to do with
	// a new one ("yes", "accept-new", "ask"; "no"/"off" is treated as ask, and
	// a changed key is refused whatever it says).
	UserKnownHostsFiles   []string
	GlobalKnownHostsFiles []string
	HostKeyAlias          string
	StrictHostKeyChecking string
	HashKnownHosts        bool
	// AddressFamily is "any", "inet" or "inet6"; it applies when vm2mesh dials
	// the hop itself (not through a jump host or a ProxyCommand), as in ssh.
	AddressFamily string
	// Source says where the values came from: "ssh -G" or "ssh_config library".
	Source string
	// Ignored are settings that apply to this hop and change whether or how
	// ssh logs in, which vm2mesh does not honour ("Directive value").
	Ignored []string
}

// Addr is host:port for dialing.
func (h Hop) Addr() string { return net.JoinHostPort(h.HostName, strconv.Itoa(h.Port)) }

func (h Hop) String() string { return h.User + "@" + h.Addr() }

// Resolve applies ssh_config to one host as OpenSSH does, with the answers
// file's port and user (0 and "": from the file) winning over the file's. It
// asks `ssh -G` when an OpenSSH client is on PATH, and reads the files itself
// otherwise (refusing what it cannot evaluate, such as Match). configFile ""
// means OpenSSH's own files (~/.ssh/config, then /etc/ssh/ssh_config); a
// configFile that does not exist is an empty config. The hop's own ProxyJump
// hosts are not resolved here: Describe does that.
func Resolve(ctx context.Context, configFile, alias string, port int, user string) (Hop, error) {
	if alias == "" {
		return Hop{}, fmt.Errorf("no host given: set vm.host")
	}
	if strings.HasPrefix(alias, "-") {
		return Hop{}, fmt.Errorf("host %q starts with '-': give the VM's address or ssh_config Host alias", alias)
	}
	if configFile != "" {
		if _, err := os.Stat(configFile); os.IsNotExist(err) {
			configFile = os.DevNull // as an empty file, for ssh -F and for us
		}
	}
	var h Hop
	var err error
	if ssh, lookErr := exec.LookPath("ssh"); lookErr == nil {
		h, err = resolveWithSSH(ctx, ssh, configFile, alias, port, user)
	} else {
		h, err = resolveWithLibrary(configFile, alias, port, user)
	}
	if err != nil {
		return Hop{}, err
	}
	if h.Port <= 0 || h.Port > 65535 {
		return Hop{}, fmt.Errorf("ssh_config gives %s port %d: fix Port (1-65535)", alias, h.Port)
	}
	return h, nil
}

// DefaultIdentityFiles are OpenSSH's, those that exist.
func DefaultIdentityFiles() []string {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil
	}
	var out []string
	for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
		p := filepath.Join(home, ".ssh", n)
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// ExpandHome turns a leading ~ into the home directory.
func ExpandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}

// localUser is the local login name, from the password database as ssh takes
// it.
func localUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}

// sshHome is the home directory ssh uses for ~ and %d in ssh_config: the
// password database's, not $HOME.
func sshHome() string {
	if u, err := user.Current(); err == nil && u.HomeDir != "" {
		return u.HomeDir
	}
	home, _ := os.UserHomeDir()
	return home
}
