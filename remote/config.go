// Package remote is vm2mesh's door to the VM: SSH with ~/.ssh/config, agent, key
// and password auth, verified host keys, root through sudo, uploads with progress
// and checksums, and bounded commands and log tails. Every call takes a context.
package remote

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kevinburke/ssh_config"
)

// Hop is one SSH server to log in to, with ssh_config applied as OpenSSH applies
// it (Match, Include, tokens, canonicalisation): the values `ssh -G` prints that
// vm2mesh honours. The answers file's explicit values win over the file's.
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
	// IdentityAgent is the agent's socket: "" means $SSH_AUTH_SOCK, "none" no
	// agent.
	IdentityAgent string
	// IdentitiesOnly: only the configured identities, even when the agent
	// holds others (keys the agent holds for a configured file still count).
	IdentitiesOnly bool
	// ProxyJump lists the jump hosts, in dialing order, as written
	// ([user@]host[:port] or ssh:// URIs); each is resolved as a host of its own.
	ProxyJump []string
	// ProxyCommand, when set, is run with sh -c and carries the connection on
	// its stdin and stdout; tokens are expanded already.
	ProxyCommand string
	// Host keys: where they are known, under which name, and what to do with
	// a new one ("yes", "accept-new", "ask"; "no"/"off" is treated as ask, and
	// a changed key is refused whatever it says).
	UserKnownHostsFiles   []string
	GlobalKnownHostsFiles []string
	HostKeyAlias          string
	StrictHostKeyChecking string
	HashKnownHosts        bool
	// Source says where the values came from: "ssh -G" or "ssh_config library".
	Source string
}

// Addr is host:port for dialing.
func (h Hop) Addr() string { return net.JoinHostPort(h.HostName, strconv.Itoa(h.Port)) }

func (h Hop) String() string { return h.User + "@" + h.Addr() }

// sshConfig reads an ssh_config file; a missing file is an empty config.
func sshConfig(path string) (*ssh_config.Config, error) {
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, nil
		}
		path = filepath.Join(home, ".ssh", "config")
	}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cfg, err := ssh_config.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

func get(cfg *ssh_config.Config, alias, key string) string {
	if cfg == nil {
		return ""
	}
	v, _ := cfg.Get(alias, key)
	return v
}

// Resolve applies ssh_config to the target and its ProxyJump hops the way OpenSSH
// does: explicit values win over the file, the first match in the file wins.
// jumps are in dialing order.
func Resolve(configFile, alias string, port int, user string) (target Hop, jumps []Hop, err error) {
	cfg, err := sshConfig(configFile)
	if err != nil {
		return Hop{}, nil, err
	}
	target, err = resolveHop(cfg, alias, port, user)
	if err != nil {
		return Hop{}, nil, err
	}
	if target.IdentityFiles == nil {
		target.IdentityFiles = identityFiles(cfg, alias)
	}
	pj := get(cfg, alias, "ProxyJump")
	if pj == "" || strings.EqualFold(pj, "none") {
		return target, nil, nil
	}
	for _, spec := range strings.Split(pj, ",") {
		spec = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(spec), "ssh://"))
		u, host, p := "", spec, 0
		if i := strings.LastIndex(host, "@"); i >= 0 {
			u, host = host[:i], host[i+1:]
		}
		if h, ps, err := net.SplitHostPort(host); err == nil {
			host = h
			if p, err = strconv.Atoi(ps); err != nil {
				return Hop{}, nil, fmt.Errorf("ProxyJump %q: bad port", spec)
			}
		}
		hop, err := resolveHop(cfg, host, p, u)
		if err != nil {
			return Hop{}, nil, fmt.Errorf("ProxyJump %q: %w", spec, err)
		}
		hop.IdentityFiles = identityFiles(cfg, host)
		jumps = append(jumps, hop)
	}
	return target, jumps, nil
}

func resolveHop(cfg *ssh_config.Config, alias string, port int, user string) (Hop, error) {
	if alias == "" {
		return Hop{}, fmt.Errorf("no host given")
	}
	h := Hop{Alias: alias, HostName: alias, Port: port, User: user}
	if v := get(cfg, alias, "HostName"); v != "" {
		h.HostName = strings.ReplaceAll(v, "%h", alias)
	}
	if h.Port == 0 {
		if v := get(cfg, alias, "Port"); v != "" {
			p, err := strconv.Atoi(v)
			if err != nil {
				return Hop{}, fmt.Errorf("ssh_config Port %q for %s is not a number", v, alias)
			}
			h.Port = p
		} else {
			h.Port = 22
		}
	}
	if h.User == "" {
		h.User = get(cfg, alias, "User")
	}
	if h.User == "" {
		h.User = currentUser()
	}
	return h, nil
}

// identityFiles are the IdentityFile entries for alias, or nil for the defaults.
func identityFiles(cfg *ssh_config.Config, alias string) []string {
	if cfg == nil {
		return nil
	}
	all, _ := cfg.GetAll(alias, "IdentityFile")
	var out []string
	for _, f := range all {
		// ssh_config reports OpenSSH's built-in default when nothing matched.
		if f == "" || f == ssh_config.Default("IdentityFile") {
			continue
		}
		out = append(out, ExpandHome(f))
	}
	return out
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

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}
