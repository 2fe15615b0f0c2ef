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
	Host         string // address or ~/.ssh/config Host alias
	Port         int    // 0: from ssh_config, else 22
	User         string // "": from ssh_config, else $USER
	IdentityFile string // "": ssh_config's IdentityFile, else the agent and OpenSSH's defaults
	SSHConfig    string // "": ~/.ssh/config
	HostKeys     HostKeyPolicy
	// Passphrase is asked for an encrypted identity file; nil skips such keys.
	Passphrase func(file string) (string, error)
	// Password is asked, at most once a Dial, when keys do not get us in to the
	// VM; nil: no password auth. Jump hosts never get it: keys only.
	Password func(user, host string) (string, error)
	// Question is asked what the VM's keyboard-interactive login wants besides
	// the password (a one-time code, say); nil fails such a login.
	Question func(user, host, instruction, question string, echo bool) (string, error)
	// Timeout bounds connecting and the handshake of each hop (default 20s).
	Timeout time.Duration
}

// Client is a logged-in SSH connection to the VM (through its jump hosts).
type Client struct {
	ssh    *ssh.Client
	chain  []*ssh.Client // jump hosts, closed after ssh
	Target Hop
	opts   Options
	root   rootMode
	sudoPW string
	// The connection's private directory on the VM (private.go).
	dirMu   sync.Mutex
	dir     string
	cleaned []string
}

// Dial connects to the VM through any ProxyJump hosts, verifying every host key.
func Dial(ctx context.Context, o Options) (*Client, error) {
	if o.Timeout == 0 {
		o.Timeout = 20 * time.Second
	}
	target, jumps, err := Resolve(o.SSHConfig, o.Host, o.Port, o.User)
	if err != nil {
		return nil, err
	}
	if o.IdentityFile != "" {
		target.IdentityFiles = []string{ExpandHome(o.IdentityFile)}
	}
	c := &Client{Target: target, opts: o}
	var prev *ssh.Client
	hops := append(jumps, target)
	for i, hop := range hops {
		jump := i < len(hops)-1
		next, err := dialHop(ctx, prev, hop, jump, o)
		if err != nil {
			c.Close()
			if jump {
				return nil, fmt.Errorf("jump host %s: %w", hop, err)
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
	keys, err := newHostKeys(o.HostKeys, hop)
	if err != nil {
		return nil, err
	}
	rounds := keys.rounds()
	for i, algorithms := range rounds {
		c, err := handshake(ctx, via, hop, jump, keys, algorithms, o)
		var mismatch *FingerprintMismatchError
		if errors.As(err, &mismatch) && i < len(rounds)-1 {
			continue // the server has other keys: ask for the next kind
		}
		return c, err
	}
	return nil, fmt.Errorf("no host key algorithms to offer %s", hop)
}

// handshake is one connection attempt offering these host key algorithms.
func handshake(ctx context.Context, via *ssh.Client, hop Hop, jump bool, keys *hostKeys, algorithms []string, o Options) (*ssh.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	var conn net.Conn
	var err error
	if via == nil {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", hop.Addr())
	} else {
		conn, err = via.DialContext(ctx, "tcp", hop.Addr())
	}
	if err != nil {
		return nil, fmt.Errorf("cannot reach %s: %w; check the address and that sshd runs", hop.Addr(), err)
	}
	// The handshake has the same deadline; cancelling closes the connection.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
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
	if err != nil {
		conn.Close()
		return nil, explainHandshake(hop, jump, auth.explain(err))
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
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
