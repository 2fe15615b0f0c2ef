package remote

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/kevinburke/ssh_config"
)

// Without an OpenSSH client, vm2mesh reads ssh_config itself with the
// kevinburke/ssh_config library: Host blocks, Include, first value wins, and
// the user's file before /etc/ssh/ssh_config. What that cannot evaluate as ssh
// would (Match, hostname canonicalisation) is refused with an error, never
// guessed.

// parsedConfig is one parsed ssh_config file.
type parsedConfig struct {
	path string
	cfg  *ssh_config.Config
}

// libraryConfigs reads the files ssh would: configFile alone, or the user's
// and the system's. A missing file is an empty one.
func libraryConfigs(configFile string) ([]parsedConfig, error) {
	type file struct {
		path   string
		system bool
	}
	files := []file{{configFile, false}}
	if configFile == "" {
		files = []file{{filepath.Join(sshHome(), ".ssh", "config"), false}, {"/etc/ssh/ssh_config", true}}
	}
	var out []parsedConfig
	for _, f := range files {
		if f.path == os.DevNull {
			continue
		}
		data, err := os.ReadFile(f.path)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading ssh_config %s: %w", f.path, err)
		}
		if err := refuseUnevaluable(f.path, data, f.system, 0); err != nil {
			return nil, err
		}
		if f.system {
			data = absoluteIncludes(data)
		}
		cfg, err := ssh_config.DecodeBytes(data)
		if err != nil {
			return nil, fmt.Errorf("ssh_config %s: %w", f.path, err)
		}
		out = append(out, parsedConfig{f.path, cfg})
	}
	return out, nil
}

// refuseUnevaluable fails on Match anywhere in the file or the files it
// includes: the library cannot tell whether a Match block applies as ssh
// would (it matches Host against the final host name, and user, exec, canonical
// and the rest are beyond it).
func refuseUnevaluable(path string, data []byte, system bool, depth int) error {
	if depth > 16 {
		return fmt.Errorf("ssh_config %s: Include nested more than 16 deep (a loop?)", path)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		key, value := directive(sc.Text())
		switch strings.ToLower(key) {
		case "match":
			return fmt.Errorf("ssh_config %s line %d: Match %s: vm2mesh cannot evaluate Match without an OpenSSH client; %w", path, n, value, errNoSSH)
		case "include":
			for _, pattern := range strings.Fields(value) {
				matches, _ := filepath.Glob(includePath(pattern, system))
				for _, m := range matches {
					inc, err := os.ReadFile(m)
					if err != nil {
						continue // the library reports it
					}
					if err := refuseUnevaluable(m, inc, system || strings.HasPrefix(m, "/etc/ssh/"), depth+1); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// directive splits an ssh_config line into keyword and arguments.
func directive(line string) (key, value string) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return "", ""
	}
	i := strings.IndexAny(line, " \t=")
	if i < 0 {
		return line, ""
	}
	return line[:i], strings.TrimSpace(strings.TrimLeft(line[i:], " \t="))
}

// includePath is where ssh looks for an Include: relative paths are under
// ~/.ssh for a user's file and /etc/ssh for the system's.
func includePath(p string, system bool) string {
	p = expandTilde(p)
	switch {
	case filepath.IsAbs(p):
		return p
	case system:
		return filepath.Join("/etc/ssh", p)
	}
	return filepath.Join(sshHome(), ".ssh", p)
}

var includeLine = regexp.MustCompile(`(?im)^([ \t]*include[ \t=]+)(.*)$`)

// absoluteIncludes makes the system file's relative Include paths absolute:
// the library would look for them under ~/.ssh.
func absoluteIncludes(data []byte) []byte {
	return includeLine.ReplaceAllFunc(data, func(line []byte) []byte {
		m := includeLine.FindSubmatch(line)
		var args []string
		for _, a := range strings.Fields(string(m[2])) {
			if !strings.HasPrefix(a, "#") {
				a = includePath(a, true)
			}
			args = append(args, a)
		}
		return append(append([]byte{}, m[1]...), strings.Join(args, " ")...)
	})
}

// libGet is the first value of key for alias, across the files in order.
func libGet(cfgs []parsedConfig, alias, key string) (string, error) {
	for _, c := range cfgs {
		v, err := c.cfg.Get(alias, key)
		if err != nil {
			return "", fmt.Errorf("ssh_config %s: %w", c.path, err)
		}
		if v != "" {
			return v, nil
		}
	}
	return "", nil
}

// libGetAll is every value of key for alias (IdentityFile, CertificateFile
// add up across lines and files).
func libGetAll(cfgs []parsedConfig, alias, key string) ([]string, error) {
	var out []string
	for _, c := range cfgs {
		v, err := c.cfg.GetAll(alias, key)
		if err != nil {
			return nil, fmt.Errorf("ssh_config %s: %w", c.path, err)
		}
		out = append(out, v...)
	}
	return out, nil
}

// libProxy finds ProxyJump and ProxyCommand as ssh's parser does: a
// ProxyCommand (even none) shuts out later ProxyJumps, a ProxyJump other than
// none shuts out later ProxyCommands.
func libProxy(cfgs []parsedConfig, alias string) (jump, command string, err error) {
	var jumpSet, commandSet bool
	set := func(key, value string) {
		switch key {
		case "proxyjump":
			if !jumpSet && !commandSet {
				jumpSet, jump = true, value
				if !strings.EqualFold(value, "none") {
					commandSet = true
				}
			}
		case "proxycommand":
			if !commandSet {
				commandSet, command = true, value
			}
		}
	}
	for _, c := range cfgs {
		for _, host := range c.cfg.Hosts {
			if !host.Matches(alias) {
				continue
			}
			for _, node := range host.Nodes {
				switch n := node.(type) {
				case *ssh_config.KV:
					set(strings.ToLower(n.Key), n.Value)
				case *ssh_config.Include:
					// The library does not say in which order an included file
					// has them; with both there, only ssh can tell.
					j, pc := n.Get(alias, "ProxyJump"), n.Get(alias, "ProxyCommand")
					if j != "" && pc != "" && !jumpSet && !commandSet {
						return "", "", fmt.Errorf("ssh_config %s: both ProxyJump and ProxyCommand for %s in %s; %w", c.path, alias, n.String(), errNoSSH)
					}
					if j != "" {
						set("proxyjump", j)
					}
					if pc != "" {
						set("proxycommand", pc)
					}
				}
			}
		}
	}
	if strings.EqualFold(jump, "none") {
		jump = ""
	}
	if jump != "" {
		command = ""
	}
	return jump, command, nil
}

// resolveWithLibrary resolves one host from the files, as ssh -G would.
func resolveWithLibrary(configFile, alias string, port int, user string) (Hop, error) {
	cfgs, err := libraryConfigs(configFile)
	if err != nil {
		return Hop{}, err
	}
	get := func(key string) string {
		if err != nil {
			return ""
		}
		var v string
		v, err = libGet(cfgs, alias, key)
		return v
	}
	if v := get("CanonicalizeHostname"); v != "" && !strings.EqualFold(v, "no") && !strings.EqualFold(v, "false") {
		return Hop{}, fmt.Errorf("ssh_config sets CanonicalizeHostname %s for %s: vm2mesh cannot canonicalise host names itself; %w", v, alias, errNoSSH)
	}
	h := Hop{
		Alias:                 alias,
		Port:                  port,
		User:                  user,
		IdentityAgent:         get("IdentityAgent"),
		IdentitiesOnly:        isYes(get("IdentitiesOnly")),
		HostKeyAlias:          get("HostKeyAlias"),
		StrictHostKeyChecking: normalStrict(get("StrictHostKeyChecking")),
		HashKnownHosts:        isYes(get("HashKnownHosts")),
		AddressFamily:         strings.ToLower(get("AddressFamily")),
		Source:                "ssh_config library",
	}
	hostName := get("HostName")
	userKnown := get("UserKnownHostsFile")
	globalKnown := get("GlobalKnownHostsFile")
	if h.Port == 0 {
		if v := get("Port"); v != "" {
			if h.Port, err = strconv.Atoi(v); err != nil {
				return Hop{}, fmt.Errorf("ssh_config Port %q for %s is not a number: fix it", v, alias)
			}
		}
	}
	if h.User == "" {
		h.User = get("User")
	}
	if err != nil {
		return Hop{}, err
	}
	if h.Port == 0 {
		h.Port = 22
	}
	if h.User == "" {
		h.User = localUser()
	}
	if h.AddressFamily == "" {
		h.AddressFamily = "any"
	}
	if userKnown == "" {
		userKnown = "~/.ssh/known_hosts ~/.ssh/known_hosts2"
	}
	if globalKnown == "" {
		globalKnown = "/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2"
	}
	// HostName takes %h (the alias); ssh lowercases a name, not an address.
	h.HostName = alias
	if hostName != "" {
		if h.HostName, err = expandTokens("HostName", hostName, hostNameTokens, tokens{'%': "%", 'h': alias}, false); err != nil {
			return Hop{}, err
		}
	}
	if net.ParseIP(h.HostName) == nil {
		h.HostName = strings.ToLower(h.HostName)
	}
	t := hopTokens(h)
	if h.IdentityAgent != "" && h.IdentityAgent != "none" && h.IdentityAgent != "SSH_AUTH_SOCK" && !strings.HasPrefix(h.IdentityAgent, "$") {
		if h.IdentityAgent, err = expandPath("IdentityAgent", h.IdentityAgent, t); err != nil {
			return Hop{}, err
		}
	}
	for _, list := range []struct {
		directive, value string
		out              *[]string
	}{{"UserKnownHostsFile", userKnown, &h.UserKnownHostsFiles}, {"GlobalKnownHostsFile", globalKnown, &h.GlobalKnownHostsFiles}} {
		for _, f := range strings.Fields(list.value) {
			if list.directive == "UserKnownHostsFile" {
				f, err = expandPath(list.directive, f, t)
			} else {
				f = expandTilde(f)
			}
			if err != nil {
				return Hop{}, err
			}
			*list.out = append(*list.out, f)
		}
	}
	for _, list := range []struct {
		directive string
		out       *[]string
	}{{"IdentityFile", &h.IdentityFiles}, {"CertificateFile", &h.CertificateFiles}} {
		values, err := libGetAll(cfgs, alias, list.directive)
		if err != nil {
			return Hop{}, err
		}
		for _, f := range values {
			p, err := expandPath(list.directive, f, t)
			if err != nil {
				return Hop{}, err
			}
			*list.out = append(*list.out, p)
		}
	}
	jump, command, err := libProxy(cfgs, alias)
	if err != nil {
		return Hop{}, err
	}
	if err := setProxy(&h, jump, command, t); err != nil {
		return Hop{}, err
	}
	for _, u := range unhonoured {
		v, err := libGet(cfgs, alias, u.name)
		if err != nil {
			return Hop{}, err
		}
		if v == "" || strings.EqualFold(v, "none") || strings.EqualFold(normalBool(v), u.def) || !applies(h, u.key) {
			continue
		}
		h.Ignored = append(h.Ignored, ignoredEntry(u.name, v))
	}
	return h, nil
}

func normalBool(v string) string {
	switch strings.ToLower(v) {
	case "true", "yes":
		return "yes"
	case "false", "no":
		return "no"
	}
	return v
}
