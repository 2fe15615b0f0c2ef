package remote

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// ssh_config(5) TOKENS: which % tokens each directive accepts. %C (a hash
// whose input differs between OpenSSH versions) is not expanded by vm2mesh.
const (
	hostNameTokens = "%h"
	proxyTokens    = "%hnpr"        // ProxyCommand, ProxyJump
	pathTokens     = "%CdhikLlnpru" // IdentityFile, CertificateFile, IdentityAgent, UserKnownHostsFile
)

// tokens are the values of the % tokens for one host.
type tokens map[byte]string

// hopTokens are a resolved hop's tokens: %h its host name, %n the alias as
// given, %p, %r, %k the HostKeyAlias or the alias, and the local ones.
func hopTokens(h Hop) tokens {
	t := tokens{
		'%': "%",
		'h': h.HostName,
		'n': h.Alias,
		'p': strconv.Itoa(h.Port),
		'r': h.User,
		'k': h.Alias,
		'u': localUser(),
		'd': sshHome(),
		'i': strconv.Itoa(os.Getuid()),
	}
	if h.HostKeyAlias != "" {
		t['k'] = h.HostKeyAlias
	}
	if name, err := os.Hostname(); err == nil {
		t['l'] = name
		t['L'], _, _ = strings.Cut(name, ".")
	}
	return t
}

// expandTokens expands the % tokens allowed for directive, and ${VAR} when env
// is set, as ssh does; a token it cannot expand is an error naming the
// directive, not a path that silently differs from ssh's.
func expandTokens(directive, value, allowed string, t tokens, env bool) (string, error) {
	var b strings.Builder
	for i := 0; i < len(value); i++ {
		c := value[i]
		switch {
		case c == '%':
			if i+1 == len(value) {
				return "", fmt.Errorf("ssh_config %s %q ends in a lone %%: write %%%% for a literal %%", directive, value)
			}
			i++
			k := value[i]
			if !strings.ContainsRune(allowed, rune(k)) {
				return "", fmt.Errorf("ssh_config %s %q: %%%c is not a token %s accepts (ssh_config(5) TOKENS): fix the value", directive, value, k, directive)
			}
			v, ok := t[k]
			if !ok {
				return "", fmt.Errorf("ssh_config %s %q: vm2mesh cannot expand %%%c: write the value out in ssh_config", directive, value, k)
			}
			b.WriteString(v)
		case c == '$' && env && i+1 < len(value) && value[i+1] == '{':
			end := strings.IndexByte(value[i:], '}')
			if end < 0 {
				return "", fmt.Errorf("ssh_config %s %q: ${ without a closing }", directive, value)
			}
			name := value[i+2 : i+end]
			v, ok := os.LookupEnv(name)
			if !ok {
				return "", fmt.Errorf("ssh_config %s %q: environment variable %s is not set (ssh ignores such a setting with an error too): set it or fix the value", directive, value, name)
			}
			b.WriteString(v)
			i += end
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// expandPath is a file setting as ssh reads it: ~ first, then tokens and
// environment variables.
func expandPath(directive, value string, t tokens) (string, error) {
	return expandTokens(directive, expandTilde(value), pathTokens, t, true)
}

// expandTilde expands ~ and ~user at the start of a path, with the password
// database's home directories as ssh does.
func expandTilde(p string) string {
	if !strings.HasPrefix(p, "~") {
		return p
	}
	name, rest, _ := strings.Cut(p[1:], "/")
	home := sshHome()
	if name != "" {
		u, err := user.Lookup(name)
		if err != nil {
			return p
		}
		home = u.HomeDir
	}
	if home == "" {
		return p
	}
	return filepath.Join(home, rest)
}
