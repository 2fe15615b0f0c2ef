package remote

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// The connection's private directory on the VM (0700, the login user's): uploads
// go there, and the pid files that let a cancel end a command's processes. /tmp
// is everyone's, so nothing of ours is written there by a guessable name.
//
// A directory belongs to the SSH connection that made it: .owner holds the PID
// and start time of that connection's sshd process (the parent of every session's
// shell). One whose connection is gone was left by a run that was cut off, and may
// hold a half-uploaded package or istio-token: the next connection removes it.

// privateScript takes over $1 when given (after a reconnect), removes this user's
// directories whose connection has ended, and makes one when it has none. It
// also says who the login user is (Root needs it; one session fewer).
const privateScript = `umask 077
started() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }
me="$PPID $(started "$PPID")"
d=$1
if [ -n "$d" ] && [ -d "$d" ] && [ ! -L "$d" ] && [ -O "$d" ]; then echo "$me" > "$d/.owner"; else d=; fi
for o in /tmp/vm2mesh.*; do
	[ "$o" != "$d" ] && [ -d "$o" ] && [ ! -L "$o" ] && [ -O "$o" ] || continue
	pid= st=
	{ read -r pid st < "$o/.owner"; } 2>/dev/null
	if [ -n "$pid" ] && [ "$(started "$pid")" = "$st" ]; then continue; fi
	rm -rf -- "$o" && echo "removed $o"
done
if [ -z "$d" ]; then d=$(mktemp -d /tmp/vm2mesh.XXXXXXXX) && echo "$me" > "$d/.owner" || exit 1; fi
echo "dir $d"
echo "uid $(id -u)"`

// privateDir is the connection's directory, made on first use.
func (c *Client) privateDir(ctx context.Context) (string, error) {
	c.dirMu.Lock()
	defer c.dirMu.Unlock()
	if c.dir != "" {
		return c.dir, nil
	}
	return c.claimDir(ctx, "")
}

// claimDir runs privateScript; the caller holds dirMu.
func (c *Client) claimDir(ctx context.Context, existing string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stdout, stderr, err := c.bare(ctx, "sh -c "+Quote(privateScript)+" vm2mesh "+Quote(existing), nil)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("making a private directory on the VM: %w", ctx.Err())
		}
		return "", fmt.Errorf("making a private directory in /tmp on the VM: %v: %s", err, CleanText(strings.TrimSpace(stderr)))
	}
	for _, l := range strings.Split(stdout, "\n") {
		if d, ok := strings.CutPrefix(l, "removed "); ok {
			c.cleaned = append(c.cleaned, d)
		}
		if d, ok := strings.CutPrefix(l, "dir "); ok && strings.HasPrefix(d, "/tmp/vm2mesh.") {
			c.dir = d
		}
		if u, ok := strings.CutPrefix(l, "uid "); ok {
			c.uid = strings.TrimSpace(u)
		}
	}
	if c.dir == "" {
		return "", fmt.Errorf("making a private directory in /tmp on the VM: no directory was made")
	}
	return c.dir, nil
}

// TempDir is the connection's private directory on the VM (0700), for uploads.
func (c *Client) TempDir(ctx context.Context) (string, error) { return c.privateDir(ctx) }

// Cleaned lists the directories of earlier connections that ended without
// removing theirs (a run that was cut off), removed when this one started.
func (c *Client) Cleaned() []string {
	c.dirMu.Lock()
	defer c.dirMu.Unlock()
	return append([]string(nil), c.cleaned...)
}

// RemoveTempDir removes the private directory and what is in it.
func (c *Client) RemoveTempDir(ctx context.Context) error {
	c.dirMu.Lock()
	d := c.dir
	c.dir, c.uploaded = "", nil
	c.dirMu.Unlock()
	if d == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, _, err := c.bare(ctx, "rm -rf -- "+Quote(d), nil)
	return err
}

// bare runs line in a session of its own, as it is: no process-group wrapper,
// no pid file, no private directory, for what runs before those exist or to end
// a command that has them. Ending ctx closes the session.
func (c *Client) bare(ctx context.Context, line string, stdin io.Reader) (stdout, stderr string, err error) {
	sess, err := c.ssh.NewSession()
	if err != nil {
		return "", "", fmt.Errorf("opening an ssh session: %w", err)
	}
	defer sess.Close()
	var out, errOut bytes.Buffer
	sess.Stdout, sess.Stderr, sess.Stdin = &out, &errOut, stdin
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	err = sess.Run(line)
	return out.String(), errOut.String(), err
}

// retakeDir makes the private directory this connection's after a reconnect, so
// that the next connection's clean-up does not take it for a cut-off run's.
func (c *Client) retakeDir(ctx context.Context) error {
	c.dirMu.Lock()
	defer c.dirMu.Unlock()
	if c.dir == "" {
		return nil
	}
	old := c.dir
	c.dir = ""
	d, err := c.claimDir(ctx, old)
	if err == nil && d != old {
		return fmt.Errorf("the private directory %s on the VM is gone after reconnecting: what was uploaded there is lost", old)
	}
	return err
}
