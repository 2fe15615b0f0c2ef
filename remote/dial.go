package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Options say where and how to log in.
type Options struct {
	Host         string // address or ssh_config Host alias
	Port         int    // 0: from ssh_config, else 22
	User         string // "": from ssh_config, else $USER
	IdentityFile string // "": ssh_config's IdentityFile, else the agent and OpenSSH's defaults
	SSHConfig    string // "": ssh's own (~/.ssh/config, /etc/ssh/ssh_config); a missing file: none
	HostKeys     HostKeyPolicy
	// Passphrase is asked for an encrypted identity file; nil skips such keys.
	Passphrase func(file string) (string, error)
	// Password is asked, at most once a Dial, when keys do not get us in to the
	// VM; nil: no password auth. Jump hosts never get it: keys only.
	Password func(user, host string) (string, error)
	// Question is asked what the VM's keyboard-interactive login wants besides
	// the password (a one-time code, say); nil fails such a login.
	Question func(user, host, instruction, question string, echo bool) (string, error)
	// Timeout bounds connecting and the handshake of each hop (default 20s);
	// a ProxyCommand's start counts as connecting.
	Timeout time.Duration
	// Trace, when set, hears each command before it runs, as errors show it
	// (Cmd.Display when the line holds what must not be shown).
	Trace func(command string)
}

// Client is a logged-in SSH connection to the VM (through its jump hosts).
type Client struct {
	ssh    *ssh.Client
	chain  []*ssh.Client // jump hosts, closed after ssh
	Target Hop
	Route  Route // how the connection was made (Describe)
	opts   Options
	root   rootMode
	sudoPW string
	// The connection's private directory on the VM (private.go).
	dirMu    sync.Mutex
	dir      string
	cleaned  []string
	uid      string            // the login user's uid, as the directory's claim read it
	uploaded map[string]string // remote path -> SHA-256 of what this connection uploaded there
}

// Dial connects to the VM as ssh would (Describe: through its ProxyJump hosts
// or its ProxyCommand), verifying every host key.
func Dial(ctx context.Context, o Options) (*Client, error) {
	route, err := Describe(ctx, o)
	if err != nil {
		return nil, err
	}
	return DialRoute(ctx, o, route)
}

// DialRoute is Dial along a route Describe gave for the same options (shown
// to the operator before connecting), so that ssh_config is read once.
func DialRoute(ctx context.Context, o Options, route Route) (*Client, error) {
	if o.Timeout == 0 {
		o.Timeout = 20 * time.Second
	}
	c := &Client{Target: route.Target(), Route: route, opts: o}
	var prev *ssh.Client
	for i, hop := range route.Hops {
		jump := i < len(route.Hops)-1
		next, err := dialHop(ctx, prev, hop, jump, o)
		if err != nil {
			if prev != nil {
				c.chain = append(c.chain, prev)
			}
			c.Close()
			if jump {
				return nil, fmt.Errorf("jump host %s (%s): %w", hop, hop.Alias, err)
			}
			return nil, err
		}
		if prev != nil {
			c.chain = append(c.chain, prev)
		}
		prev = next
	}
	c.ssh = prev
	return c, nil
}

// dialHop connects to one hop (directly, or through the one before it) and
// logs in, verifying its host key by the hop's own known_hosts settings. A
// handshake can take more than one round: the host key algorithms offered
// decide which of the server's keys it shows, and a pin may name another.
func dialHop(ctx context.Context, via *ssh.Client, hop Hop, jump bool, o Options) (*ssh.Client, error) {
	clock := &handshakeClock{d: o.Timeout}
	o = clock.whilePrompting(o)
	policy := o.HostKeys
	if jump {
		// The pin and accept-new are the VM's (its answers keys): a jump host is
		// known by its known_hosts, or asked about by name.
		policy.Pinned, policy.AcceptNew = "", false
		if ask := policy.Ask; ask != nil {
			policy.Ask = func(host, keyType, fingerprint string) (HostKeyDecision, error) {
				return ask("jump host "+host, keyType, fingerprint)
			}
		}
	}
	keys, err := newHostKeys(policy, hop)
	if err != nil {
		return nil, err
	}
	for algorithms := range keys.rounds() {
		var c *ssh.Client
		c, err = handshake(ctx, via, hop, jump, keys, algorithms, o, clock)
		if !keys.again(err) {
			return c, err
		}
		// The server has other keys: ask for the next kind.
	}
	return nil, keys.noMatch(err)
}

// handshake is one connection attempt offering these host key algorithms.
func handshake(ctx context.Context, via *ssh.Client, hop Hop, jump bool, keys *hostKeys, algorithms []string, o Options, clock *handshakeClock) (*ssh.Client, error) {
	connectCtx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	conn, err := connect(connectCtx, via, hop)
	if err != nil {
		return nil, err
	}
	// The handshake has its own clock (it stands still while a prompt is open);
	// cancelling closes the connection.
	clock.start(conn)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	// auth.go picks each next method and closes the agent afterwards.
	auth := newAuthenticator(hop, jump, o)
	defer auth.close()
	cfg := &ssh.ClientConfig{
		User:              hop.User,
		AuthCallback:      auth.next,
		HostKeyCallback:   keys.callback,
		HostKeyAlgorithms: algorithms,
		Timeout:           o.Timeout,
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, hop.Addr(), cfg)
	expired := clock.stop()
	if err != nil {
		err = explainHandshake(hop, jump, auth.explain(err))
		if stopped := ctx.Err(); stopped != nil && !errors.Is(err, stopped) {
			err = fmt.Errorf("%w (stopped: %w)", err, stopped)
		} else if expired {
			err = fmt.Errorf("%w (stopped: the handshake took longer than %s)", err, o.Timeout)
		}
		if pc, ok := conn.(*commandConn); ok {
			// A command that failed says why on its stderr.
			if why := pc.failure(time.Second); why != "" {
				err = fmt.Errorf("%w\n%s", err, why)
			}
		}
		conn.Close()
		return nil, err
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// connect opens the byte stream to hop: through the jump host before it, its
// ProxyCommand, or a TCP connection of the hop's AddressFamily.
func connect(ctx context.Context, via *ssh.Client, hop Hop) (net.Conn, error) {
	if via != nil {
		conn, err := via.DialContext(ctx, "tcp", hop.Addr())
		if err != nil {
			return nil, fmt.Errorf("cannot reach %s through the jump host: %w; check the address, and that the jump host may forward to it (AllowTcpForwarding)", hop.Addr(), err)
		}
		return conn, nil
	}
	if hop.ProxyCommand != "" {
		return startProxyCommand(hop.ProxyCommand, hop.Addr())
	}
	network := "tcp"
	switch strings.ToLower(hop.AddressFamily) {
	case "inet":
		network = "tcp4"
	case "inet6":
		network = "tcp6"
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, hop.Addr())
	if err != nil {
		return nil, fmt.Errorf("cannot reach %s: %w; check the address and that sshd runs", hop.Addr(), err)
	}
	return conn, nil
}

func explainHandshake(hop Hop, jump bool, err error) error {
	var unknown *UnknownHostError
	var changed *HostKeyChangedError
	var mismatch *FingerprintMismatchError
	var unanswered *UnansweredError
	if errors.As(err, &unknown) || errors.As(err, &changed) || errors.As(err, &mismatch) || errors.As(err, &unanswered) {
		return err
	}
	if strings.Contains(err.Error(), "unable to authenticate") {
		if jump {
			// Dial names the jump host.
			return fmt.Errorf("refused our keys (%v): give it a key by IdentityFile in ssh_config or the ssh-agent; vm2mesh never sends a jump host the VM's password", err)
		}
		return fmt.Errorf("%s refused our credentials (%v): check vm.user, vm.identityFile or the ssh-agent, or the password", hop, err)
	}
	return fmt.Errorf("ssh handshake with %s: %w", hop, err)
}

// Close ends the session and every jump connection.
func (c *Client) Close() error {
	var errs []error
	if c.ssh != nil {
		errs = append(errs, c.ssh.Close())
	}
	for i := len(c.chain) - 1; i >= 0; i-- {
		errs = append(errs, c.chain[i].Close())
	}
	return errors.Join(errs...)
}
