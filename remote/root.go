package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

type rootMode int

const (
	rootUnknown  rootMode = iota
	rootDirect            // logged in as root
	rootSudo              // sudo without a password
	rootSudoPass          // sudo with a password, sent on stdin
)

// ErrNoRoot: the login user cannot become root.
var ErrNoRoot = errors.New("cannot become root")

// ErrSudoPassword: sudo refused the password.
var ErrSudoPassword = errors.New("sudo refused the password")

// Root finds out how to run commands as root: directly, through sudo without a
// password, or through sudo with the password from ask (sent on stdin with
// `sudo -S -p ”`, never through a terminal or on a command line). ask is called
// only when sudo wants a password.
func (c *Client) Root(ctx context.Context, ask func() (string, error)) error {
	uid, err := c.loginUID(ctx)
	if err != nil {
		return err
	}
	if uid == "0" {
		c.root = rootDirect
		return nil
	}
	_, err = c.Run(ctx, "sudo -n true")
	if err == nil {
		c.root = rootSudo
		return nil
	}
	var exit *ExitError
	if !errors.As(err, &exit) {
		return err
	}
	if exit.Code == 127 || strings.Contains(exit.Stderr, "not found") {
		return fmt.Errorf("%w: %s is not root and the VM has no sudo; log in as root or install sudo", ErrNoRoot, c.Target.User)
	}
	if !strings.Contains(exit.Stderr, "password") {
		return fmt.Errorf("%w: %s may not use sudo on %s (%s); grant it sudo rights or log in as root", ErrNoRoot, c.Target.User, c.Target.HostName, exit.Stderr)
	}
	if ask == nil {
		return fmt.Errorf("%w: sudo on %s wants %s's password: give vm.sudoPasswordFile", ErrNoRoot, c.Target.HostName, c.Target.User)
	}
	pw, err := ask()
	if err != nil {
		return err
	}
	c.sudoPW, c.root = pw, rootSudoPass
	if _, err := c.RunRoot(ctx, "true"); err != nil {
		c.sudoPW, c.root = "", rootUnknown
		if errors.As(err, &exit) {
			if strings.Contains(exit.Stderr, "incorrect password") || strings.Contains(exit.Stderr, "Sorry, try again") {
				return fmt.Errorf("%w for %s on %s", ErrSudoPassword, c.Target.User, c.Target.HostName)
			}
			if strings.Contains(exit.Stderr, "not in the sudoers") || strings.Contains(exit.Stderr, "not allowed") {
				return fmt.Errorf("%w: %s may not use sudo on %s; grant it sudo rights or log in as root", ErrNoRoot, c.Target.User, c.Target.HostName)
			}
		}
		return err
	}
	return nil
}

// loginUID is the login user's uid: as the private directory's claim read it
// (every command claims the directory first), else from id -u.
func (c *Client) loginUID(ctx context.Context) (string, error) {
	if _, err := c.privateDir(ctx); err != nil {
		return "", err
	}
	c.dirMu.Lock()
	uid := c.uid
	c.dirMu.Unlock()
	if uid != "" {
		return uid, nil
	}
	out, err := c.Run(ctx, "id -u")
	return strings.TrimSpace(out), err
}

// wrap turns a command into what runs on the VM: in a session of its own whose
// leader notes its PID in dir (so a cancel can end it and all its children), as
// root or as cmd.As when asked, with sudo's password first on stdin when needed.
func (c *Client) wrap(cmd Cmd, dir, id string) (string, io.Reader, error) {
	f := Quote(pidFile(dir, id))
	script := `echo $$ >` + f + `; eval "$1"; rc=$?; rm -f ` + f + `; exit $rc`
	if cmd.As != "" {
		cmd.Line, cmd.Root = asUser(cmd.As, cmd.Line), true
	}
	cmd.Line = "setsid -w sh -c " + Quote(script) + " vm2mesh-" + id + " " + Quote(cmd.Line)
	return c.wrapPlain(cmd)
}

// ExitNoUser is the exit code of a command run As a user the VM does not have.
const ExitNoUser = 125

// AsUserFunc defines the shell function as_user, which runs its arguments as
// user, from root: setpriv where util-linux has it (no PAM, no login shell),
// runuser otherwise; supplementary groups are dropped. A user the VM lacks is
// exit code ExitNoUser.
func AsUserFunc(user string) string {
	return fmt.Sprintf(`as_user() {
	id -u %[1]s >/dev/null 2>&1 || { echo "the VM has no user "%[1]s >&2; return %[2]d; }
	if command -v setpriv >/dev/null 2>&1; then setpriv --reuid="$(id -u %[1]s)" --regid="$(id -g %[1]s)" --clear-groups -- "$@"
	else runuser -u %[1]s -- "$@"; fi
}`, Quote(user), ExitNoUser)
}

// asUser runs line as user, from root.
func asUser(user, line string) string {
	return AsUserFunc(user) + "\nas_user sh -c " + Quote(line)
}

// wrapPlain adds only what becoming root needs.
func (c *Client) wrapPlain(cmd Cmd) (string, io.Reader, error) {
	if !cmd.Root {
		return cmd.Line, cmd.Stdin, nil
	}
	switch c.root {
	case rootDirect:
		return cmd.Line, cmd.Stdin, nil
	case rootSudo:
		return "sudo -n -- sh -c " + Quote(cmd.Line), cmd.Stdin, nil
	case rootSudoPass:
		// -k: sudo asks for the password every time, so it always reads the line
		// we send, one byte at a time up to the newline, and the command gets only
		// what follows. Without it a cached credential (timestamp_type=global
		// shares one across sessions) lets the command read the password.
		pw := strings.NewReader(c.sudoPW + "\n")
		if cmd.Stdin != nil {
			return "sudo -k -S -p '' -- sh -c " + Quote(cmd.Line), io.MultiReader(pw, cmd.Stdin), nil
		}
		return "sudo -k -S -p '' -- sh -c " + Quote(cmd.Line), pw, nil
	}
	return "", nil, errors.New("root access was not set up: call Root first")
}

// AsRoot says how Root found root, for the operator.
func (c *Client) AsRoot() string {
	switch c.root {
	case rootDirect:
		return "logged in as root"
	case rootSudo:
		return "sudo without a password"
	case rootSudoPass:
		return "sudo with a password"
	}
	return "unknown"
}
