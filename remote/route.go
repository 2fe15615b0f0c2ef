package remote

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// maxHops bounds a route: jump hosts whose own ProxyJump lead on and on.
const maxHops = 10

// Route is how vm2mesh reaches the VM, as ssh would: every hop in dialing
// order, the VM last. The first hop is dialed directly or through its
// ProxyCommand; each next one through the hop before it.
type Route struct {
	Hops []Hop
	// The VM's own host key settings from the answers file.
	Pinned    string
	AcceptNew bool
}

// Target is the VM.
func (r Route) Target() Hop {
	if len(r.Hops) == 0 {
		return Hop{}
	}
	return r.Hops[len(r.Hops)-1]
}

// Transport says how hop i is reached: "direct", "via ALIAS" or
// `ProxyCommand "..."`.
func (r Route) Transport(i int) string {
	switch {
	case i > 0:
		return "via " + r.Hops[i-1].Alias
	case r.Hops[i].ProxyCommand != "":
		return fmt.Sprintf("ProxyCommand %q", r.Hops[i].ProxyCommand)
	}
	return "direct"
}

// String is the route for the plan, two or three lines a hop.
func (r Route) String() string {
	var b strings.Builder
	for i, h := range r.Hops {
		role := "vm"
		if i < len(r.Hops)-1 {
			role = "jump host"
		}
		fmt.Fprintf(&b, "%s %s: %s, %s (settings from %s)\n", role, h.Alias, h, r.Transport(i), h.Source)
		ids := "OpenSSH's default keys"
		if len(h.IdentityFiles) > 0 {
			ids = strings.Join(h.IdentityFiles, " ")
		}
		switch {
		case strings.EqualFold(h.IdentityAgent, "none"):
			ids += ", no agent"
		case h.IdentitiesOnly:
			ids += ", agent (IdentitiesOnly)"
		default:
			ids += ", agent"
		}
		if len(h.CertificateFiles) > 0 {
			ids += ", certificates " + strings.Join(h.CertificateFiles, " ")
		}
		known := strings.Join(append(append([]string{}, h.UserKnownHostsFiles...), h.GlobalKnownHostsFiles...), " ")
		if h.HostKeyAlias != "" {
			known += " as " + h.HostKeyAlias
		}
		check := "StrictHostKeyChecking " + h.StrictHostKeyChecking
		switch {
		case role != "vm":
		case r.Pinned != "":
			check = "host key pinned to " + r.Pinned + " (vm.hostKeyFingerprint)"
		case r.AcceptNew:
			check = "a new host key is accepted (vm.acceptNewHostKey)"
		}
		fmt.Fprintf(&b, "  keys: %s; known_hosts: %s; %s\n", ids, known, check)
		if len(h.Ignored) > 0 {
			fmt.Fprintf(&b, "  not honoured by vm2mesh: %s\n", strings.Join(h.Ignored, "; "))
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// Describe says how Dial will connect, without connecting: ssh_config applied
// to the VM and to each jump host as ssh would, and the answers file's port,
// user and identity file for the VM.
func Describe(ctx context.Context, o Options) (Route, error) {
	hops, err := route(ctx, o.SSHConfig, o.Host, o.Port, o.User, nil)
	if err != nil {
		return Route{}, err
	}
	if o.IdentityFile != "" {
		hops[len(hops)-1].IdentityFiles = []string{ExpandHome(o.IdentityFile)}
	}
	// vm.knownHostsFile is where vm2mesh keeps host keys, for every hop
	// (hostkey.go reads it so); the pin and accept-new are the VM's.
	if o.HostKeys.KnownHostsFile != "" {
		for i := range hops {
			hops[i].UserKnownHostsFiles = []string{o.HostKeys.KnownHostsFile}
		}
	}
	return Route{Hops: hops, Pinned: o.HostKeys.Pinned, AcceptNew: o.HostKeys.AcceptNew}, nil
}

// route resolves host and, before it, the jump hosts it names. As ssh does
// with ProxyJump a,b,c: a is reached as ssh would reach it on its own (its
// own ProxyJump or ProxyCommand honoured), b through a and c through b,
// their own proxy settings unused. chain holds the hosts being resolved, to
// catch a jump host that leads back to itself.
func route(ctx context.Context, configFile, host string, port int, user string, chain []string) ([]Hop, error) {
	key := jumpSpec(user, host, port)
	for _, c := range chain {
		if c == key {
			return nil, fmt.Errorf("ProxyJump loop: %s -> %s: fix ProxyJump in ssh_config so that a jump host does not lead back to itself", strings.Join(chain, " -> "), key)
		}
	}
	if len(chain) >= maxHops {
		return nil, fmt.Errorf("ProxyJump: more than %d jump hosts (%s): fix ProxyJump in ssh_config", maxHops, strings.Join(chain, " -> "))
	}
	chain = append(chain, key)
	hop, err := Resolve(ctx, configFile, host, port, user)
	if err != nil {
		return nil, err
	}
	if len(hop.ProxyJump) == 0 {
		return []Hop{hop}, nil
	}
	var hops []Hop
	for i, spec := range hop.ProxyJump {
		ju, jh, jp, err := parseJumpSpec(spec)
		if err != nil {
			return nil, fmt.Errorf("ProxyJump of %s: %w", host, err)
		}
		if i == 0 {
			first, err := route(ctx, configFile, jh, jp, ju, chain)
			if err != nil {
				return nil, fmt.Errorf("jump host %s: %w", spec, err)
			}
			hops = append(hops, first...)
		} else {
			j, err := Resolve(ctx, configFile, jh, jp, ju)
			if err != nil {
				return nil, fmt.Errorf("jump host %s: %w", spec, err)
			}
			j.ProxyJump, j.ProxyCommand = nil, ""
			hops = append(hops, j)
		}
		if len(hops) >= maxHops {
			return nil, fmt.Errorf("ProxyJump: more than %d jump hosts on the way to %s: fix ProxyJump in ssh_config", maxHops, host)
		}
	}
	return append(hops, hop), nil
}

// jumpSpec writes [user@]host[:port].
func jumpSpec(user, host string, port int) string {
	s := host
	if port != 0 {
		s = net.JoinHostPort(host, strconv.Itoa(port))
	}
	if user != "" {
		s = user + "@" + s
	}
	return s
}

// parseJumpSpec reads one ProxyJump entry: [user@]host[:port] or
// ssh://[user@]host[:port], an IPv6 address in brackets.
func parseJumpSpec(spec string) (user, host string, port int, err error) {
	rest := spec
	if s, ok := strings.CutPrefix(rest, "ssh://"); ok {
		rest = strings.TrimSuffix(s, "/")
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		user, rest = rest[:i], rest[i+1:]
	}
	host = rest
	switch {
	case strings.HasPrefix(rest, "["):
		end := strings.Index(rest, "]")
		if end < 0 {
			return "", "", 0, fmt.Errorf("%q: no closing ] after the address", spec)
		}
		host = rest[1:end]
		if tail := rest[end+1:]; tail != "" {
			p, ok := strings.CutPrefix(tail, ":")
			if !ok {
				return "", "", 0, fmt.Errorf("%q: expected :port after the address", spec)
			}
			if port, err = strconv.Atoi(p); err != nil {
				return "", "", 0, fmt.Errorf("%q: port %q is not a number", spec, p)
			}
		}
	case strings.Count(rest, ":") == 1:
		h, p, _ := strings.Cut(rest, ":")
		host = h
		if port, err = strconv.Atoi(p); err != nil {
			return "", "", 0, fmt.Errorf("%q: port %q is not a number", spec, p)
		}
	}
	if host == "" || strings.HasPrefix(host, "-") {
		return "", "", 0, fmt.Errorf("%q: no host name", spec)
	}
	if port < 0 || port > 65535 {
		return "", "", 0, fmt.Errorf("%q: port %d out of range", spec, port)
	}
	return user, host, port, nil
}
