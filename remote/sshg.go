package remote

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sshGTimeout bounds one `ssh -G`: it runs Match exec commands and may look
// host names up (CanonicalizeHostname), as ssh would before connecting.
const sshGTimeout = 20 * time.Second

// sshG is the output of `ssh -G`: lowercase keys, values in order.
type sshG map[string][]string

func (g sshG) first(key string) string {
	if v := g[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// fields splits every value of a list setting (UserKnownHostsFile) into its
// space-separated items.
func (g sshG) fields(key string) []string {
	var out []string
	for _, v := range g[key] {
		out = append(out, strings.Fields(v)...)
	}
	return out
}

// runSSHG asks ssh what it would use for host; nil args are left out.
func runSSHG(ctx context.Context, ssh string, args ...string) (sshG, error) {
	ctx, cancel := context.WithTimeout(ctx, sshGTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, ssh, append([]string{"-G"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second // a Match exec child keeping the pipes open
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("`ssh -G %s` did not finish (it is given %s; does a Match exec command or a host name lookup hang?): %w", strings.Join(args, " "), sshGTimeout, context.Cause(ctx))
	}
	if err != nil {
		msg := strings.TrimSpace(CleanText(stderr.String()))
		return nil, fmt.Errorf("`ssh -G %s` failed (%v): %s; fix the ssh_config it names", strings.Join(args, " "), err, msg)
	}
	g := sshG{}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		if k != "" {
			g[strings.ToLower(k)] = append(g[strings.ToLower(k)], v)
		}
	}
	if g.first("hostname") == "" {
		return nil, fmt.Errorf("`ssh -G %s` printed no hostname: is %s an OpenSSH client?", strings.Join(args, " "), ssh)
	}
	return g, nil
}

// defaults are ssh's compiled-in settings (an empty config), per ssh binary:
// what ssh -G prints that nobody configured.
var defaults struct {
	mu sync.Mutex
	g  map[string]sshG
}

func sshDefaults(ctx context.Context, ssh string) (sshG, error) {
	defaults.mu.Lock()
	defer defaults.mu.Unlock()
	if g, ok := defaults.g[ssh]; ok {
		return g, nil
	}
	g, err := runSSHG(ctx, ssh, "-F", "/dev/null", "--", "vm2mesh-defaults.invalid")
	if err != nil {
		return nil, err
	}
	if defaults.g == nil {
		defaults.g = map[string]sshG{}
	}
	defaults.g[ssh] = g
	return g, nil
}

// resolveWithSSH asks ssh -G about one host: explicit port and user go in as
// -p and -l, so that Match and tokens see them as ssh would.
func resolveWithSSH(ctx context.Context, ssh, configFile, alias string, port int, user string) (Hop, error) {
	var args []string
	if configFile != "" {
		args = append(args, "-F", configFile)
	}
	if port != 0 {
		args = append(args, "-p", strconv.Itoa(port))
	}
	if user != "" {
		args = append(args, "-l", user)
	}
	g, err := runSSHG(ctx, ssh, append(args, "--", alias)...)
	if err != nil {
		return Hop{}, err
	}
	base, err := sshDefaults(ctx, ssh)
	if err != nil {
		return Hop{}, err
	}
	return hopFromSSHG(alias, g, base)
}

func hopFromSSHG(alias string, g, base sshG) (Hop, error) {
	h := Hop{
		Alias:                 alias,
		HostName:              g.first("hostname"),
		User:                  g.first("user"),
		IdentityAgent:         g.first("identityagent"),
		IdentitiesOnly:        isYes(g.first("identitiesonly")),
		UserKnownHostsFiles:   g.fields("userknownhostsfile"),
		GlobalKnownHostsFiles: g.fields("globalknownhostsfile"),
		HostKeyAlias:          g.first("hostkeyalias"),
		StrictHostKeyChecking: normalStrict(g.first("stricthostkeychecking")),
		HashKnownHosts:        isYes(g.first("hashknownhosts")),
		AddressFamily:         g.first("addressfamily"),
		Source:                "ssh -G",
	}
	var err error
	if h.Port, err = strconv.Atoi(g.first("port")); err != nil {
		return Hop{}, fmt.Errorf("ssh -G %s: port %q is not a number", alias, g.first("port"))
	}
	t := hopTokens(h)
	// ssh expands IdentityFile, CertificateFile, ProxyCommand and ProxyJump
	// only when it uses them, after -G has printed them.
	if ids := g["identityfile"]; !slices.Equal(ids, base["identityfile"]) {
		for _, f := range ids {
			p, err := expandPath("IdentityFile", f, t)
			if err != nil {
				return Hop{}, err
			}
			h.IdentityFiles = append(h.IdentityFiles, p)
		}
	}
	for _, f := range g["certificatefile"] {
		p, err := expandPath("CertificateFile", f, t)
		if err != nil {
			return Hop{}, err
		}
		h.CertificateFiles = append(h.CertificateFiles, p)
	}
	if err := setProxy(&h, g.first("proxyjump"), g.first("proxycommand"), t); err != nil {
		return Hop{}, err
	}
	h.Ignored = ignoredSSHG(h, g, base)
	return h, nil
}

// setProxy sets ProxyJump or ProxyCommand (ssh uses the first that applies;
// "none" is neither), tokens expanded.
func setProxy(h *Hop, jump, command string, t tokens) error {
	if jump != "" && !strings.EqualFold(jump, "none") {
		if command != "" && !strings.EqualFold(command, "none") {
			return fmt.Errorf("ssh_config gives %s both ProxyJump and ProxyCommand, which ssh refuses: keep one", h.Alias)
		}
		jump, err := expandTokens("ProxyJump", jump, proxyTokens, t, false)
		if err != nil {
			return err
		}
		for _, spec := range strings.Split(jump, ",") {
			if spec = strings.TrimSpace(spec); spec != "" {
				h.ProxyJump = append(h.ProxyJump, spec)
			}
		}
		return nil
	}
	if command == "" || strings.EqualFold(command, "none") {
		return nil
	}
	if command == "-" {
		return fmt.Errorf("ssh_config gives %s ProxyCommand - (ssh's own stdin and stdout as the connection), which vm2mesh cannot use: give a command or ProxyJump", h.Alias)
	}
	command, err := expandTokens("ProxyCommand", command, proxyTokens, t, false)
	if err != nil {
		return err
	}
	h.ProxyCommand = command
	return nil
}

func isYes(v string) bool {
	switch strings.ToLower(v) {
	case "yes", "true":
		return true
	}
	return false
}

// normalStrict writes StrictHostKeyChecking as ssh_config(5) does (ssh -G
// prints true and false).
func normalStrict(v string) string {
	switch strings.ToLower(v) {
	case "true", "yes":
		return "yes"
	case "false", "no", "off":
		return "no"
	case "":
		return "ask"
	}
	return strings.ToLower(v)
}

// unhonoured are settings that change whether or how ssh logs in and that
// vm2mesh does not apply; when one differs from ssh's default, the plan says
// so. (ControlMaster, forwarding, SendEnv and the like change neither.)
var unhonoured = []struct{ key, name, def string }{
	{"bindaddress", "BindAddress", ""},
	{"bindinterface", "BindInterface", ""},
	{"casignaturealgorithms", "CASignatureAlgorithms", ""},
	{"ciphers", "Ciphers", ""},
	{"gssapiauthentication", "GSSAPIAuthentication", "no"},
	{"hostbasedauthentication", "HostbasedAuthentication", "no"},
	{"hostkeyalgorithms", "HostKeyAlgorithms", ""},
	{"kbdinteractiveauthentication", "KbdInteractiveAuthentication", "yes"},
	{"kexalgorithms", "KexAlgorithms", ""},
	{"knownhostscommand", "KnownHostsCommand", ""},
	{"macs", "MACs", ""},
	{"passwordauthentication", "PasswordAuthentication", "yes"},
	{"pkcs11provider", "PKCS11Provider", ""},
	{"preferredauthentications", "PreferredAuthentications", ""},
	{"proxyusefdpass", "ProxyUseFdpass", "no"},
	{"pubkeyacceptedalgorithms", "PubkeyAcceptedAlgorithms", ""},
	{"pubkeyacceptedkeytypes", "PubkeyAcceptedKeyTypes", ""},
	{"pubkeyauthentication", "PubkeyAuthentication", "yes"},
	{"revokedhostkeys", "RevokedHostKeys", ""},
	{"securitykeyprovider", "SecurityKeyProvider", "internal"},
	{"verifyhostkeydns", "VerifyHostKeyDNS", "no"},
}

// ignoredSSHG lists the unhonoured settings whose value differs from what ssh
// prints for an empty config.
func ignoredSSHG(h Hop, g, base sshG) []string {
	var out []string
	for _, u := range unhonoured {
		v := strings.Join(g[u.key], " ")
		if v == "" || v == strings.Join(base[u.key], " ") || strings.EqualFold(v, "none") {
			continue
		}
		if !applies(h, u.key) {
			continue
		}
		out = append(out, ignoredEntry(u.name, v))
	}
	return out
}

// applies: ProxyUseFdpass matters only with a ProxyCommand.
func applies(h Hop, key string) bool {
	return key != "proxyusefdpass" || h.ProxyCommand != ""
}

// ignoredEntry is "Directive value", a long algorithm list cut short.
func ignoredEntry(name, value string) string {
	switch strings.ToLower(value) {
	case "true":
		value = "yes"
	case "false":
		value = "no"
	}
	if len(value) > 60 {
		value = value[:57] + "..."
	}
	return name + " " + value
}

// errNoSSH is wrapped by what the library path cannot evaluate.
var errNoSSH = errors.New("install an OpenSSH client (ssh on PATH) so that vm2mesh can ask `ssh -G`, which evaluates it")
