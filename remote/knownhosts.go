package remote

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
)

// known_hosts read as OpenSSH reads it (sshd(8) "SSH_KNOWN_HOSTS FILE
// FORMAT"). x/crypto's reader differs where it matters here: it counts
// @cert-authority keys as the host's own keys (a plain-key host under
// "@cert-authority *" looks changed), calls a key of another type a changed
// key, and rejects a whole file over one line it cannot parse.

type marker int

const (
	markerNone    marker = iota
	markerCA             // @cert-authority: the key signs host certificates
	markerRevoked        // @revoked: the key is never accepted
)

// knownHost is one known_hosts line.
type knownHost struct {
	file   string
	line   int
	marker marker
	hosts  string // comma-separated patterns, or one hashed name |1|salt|hash
	key    ssh.PublicKey
}

type knownHosts []knownHost

// readKnownHosts reads the files in order; a missing file is empty.
func readKnownHosts(files []string) (knownHosts, error) {
	var all knownHosts
	for _, f := range files {
		data, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading known_hosts: %w", err)
		}
		all = append(all, parseKnownHosts(data, f)...)
	}
	return all, nil
}

// parseKnownHosts skips, as ssh does, comments and lines it cannot read (an
// unknown marker or key type, an old RSA1 key).
func parseKnownHosts(data []byte, file string) knownHosts {
	var out knownHosts
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		e := knownHost{file: file, line: n}
		switch fields[0] {
		case "@cert-authority":
			e.marker, fields = markerCA, fields[1:]
		case "@revoked":
			e.marker, fields = markerRevoked, fields[1:]
		}
		if len(fields) < 3 || strings.HasPrefix(fields[0], "@") {
			continue
		}
		blob, err := base64.StdEncoding.DecodeString(fields[2])
		if err != nil {
			continue
		}
		key, err := ssh.ParsePublicKey(blob)
		if err != nil || key.Type() != fields[1] {
			continue
		}
		e.hosts, e.key = fields[0], key
		out = append(out, e)
	}
	return out
}

// matches: the line is for name (host, [host]:port or a HostKeyAlias).
func (e knownHost) matches(name string) bool {
	if strings.HasPrefix(e.hosts, "|") {
		return hashedNameIs(e.hosts, name)
	}
	return matchHostPatterns(name, e.hosts)
}

// hashedNameIs: a HashKnownHosts entry |1|base64(salt)|base64(HMAC-SHA1(salt, name)).
func hashedNameIs(entry, name string) bool {
	parts := strings.Split(entry, "|")
	if len(parts) != 4 || parts[0] != "" || parts[1] != "1" {
		return false
	}
	salt, err1 := base64.StdEncoding.DecodeString(parts[2])
	sum, err2 := base64.StdEncoding.DecodeString(parts[3])
	if err1 != nil || err2 != nil {
		return false
	}
	mac := hmac.New(sha1.New, salt)
	mac.Write([]byte(name))
	return hmac.Equal(mac.Sum(nil), sum)
}

// matchHostPatterns is ssh's host matching: any of the comma-separated
// patterns (* and ? wildcards, case-insensitive) matches the whole name, and
// no negated !pattern does. The name is matched as written, so "*.example.com"
// does not match "[a.example.com]:2222" while "*" does.
func matchHostPatterns(name, patterns string) bool {
	name = strings.ToLower(name)
	matched := false
	for _, p := range strings.Split(patterns, ",") {
		negated := strings.HasPrefix(p, "!")
		p = strings.ToLower(strings.TrimPrefix(p, "!"))
		if p == "" || !wildcardMatch(p, name) {
			continue
		}
		if negated {
			return false
		}
		matched = true
	}
	return matched
}

// wildcardMatch matches s against a pattern of literal bytes, ? (any one) and
// * (any run, backtracking to the last star).
func wildcardMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case star >= 0:
			mark++
			p, i = star+1, mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// named are the lines for name.
func (k knownHosts) named(name string) knownHosts {
	var out knownHosts
	for _, e := range k {
		if e.matches(name) {
			out = append(out, e)
		}
	}
	return out
}

// lookup finds key among name's plain keys, as ssh does: found is its line;
// otherwise changed is a line with another key of the same type, and others
// are the types known for name that the key does not have.
func (k knownHosts) lookup(name string, key ssh.PublicKey) (found, changed *knownHost, others []string) {
	for _, e := range k.named(name) {
		if e.marker != markerNone {
			continue
		}
		switch {
		case sameKey(e.key, key):
			return &e, nil, nil
		case e.key.Type() == key.Type():
			if changed == nil {
				changed = &e
			}
		case !slices.Contains(others, e.key.Type()):
			others = append(others, e.key.Type())
		}
	}
	if changed != nil {
		others = nil
	}
	return nil, changed, others
}

// authority is the @cert-authority line for name with this CA key.
func (k knownHosts) authority(name string, ca ssh.PublicKey) *knownHost {
	for _, e := range k.named(name) {
		if e.marker == markerCA && sameKey(e.key, ca) {
			return &e
		}
	}
	return nil
}

// revoked is the @revoked line for name with this key.
func (k knownHosts) revoked(name string, key ssh.PublicKey) *knownHost {
	for _, e := range k.named(name) {
		if e.marker == markerRevoked && sameKey(e.key, key) {
			return &e
		}
	}
	return nil
}

func sameKey(a, b ssh.PublicKey) bool { return bytes.Equal(a.Marshal(), b.Marshal()) }
