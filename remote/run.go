package remote

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// CommandTimeout bounds a remote command whose context has no deadline.
const CommandTimeout = 5 * time.Minute

// ExitError is a remote command that ran and failed.
type ExitError struct {
	Cmd    string
	Code   int
	Stderr string // the last lines
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("remote command failed with exit code %d: %s", e.Code, e.Cmd)
	if e.Stderr != "" {
		msg += "\n" + e.Stderr
	}
	return msg
}

// Cmd is one remote command.
type Cmd struct {
	Line   string    // a shell command line
	Stdin  io.Reader // nil: none
	Stdout io.Writer // nil: kept and returned
	Stderr io.Writer // nil: kept for the error
	Root   bool      // run as root (directly or through sudo, as Root found)
	// As runs the command as this (less-privileged) user, by way of root: what
	// root reads or writes in a directory that user owns, it does as that user,
	// so a link planted there cannot point root at another file.
	As string
	// Display is how the command is shown in errors when Line holds what must not
	// be shown.
	Display string
}

// Run runs a command as the login user; see Exec.
func (c *Client) Run(ctx context.Context, line string) (string, error) {
	return c.Exec(ctx, Cmd{Line: line})
}

// RunRoot runs a command as root.
func (c *Client) RunRoot(ctx context.Context, line string) (string, error) {
	return c.Exec(ctx, Cmd{Line: line, Root: true})
}

// Exec runs the command and returns its stdout (when not streamed). Cancelling
// ctx signals the remote process and closes the session, so nothing keeps
// running on the VM.
func (c *Client) Exec(ctx context.Context, cmd Cmd) (string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, CommandTimeout)
		defer cancel()
	}
	if c.opts.Trace != nil {
		c.opts.Trace(display(cmd))
	}
	id := newID()
	dir, err := c.privateDir(ctx)
	if err != nil {
		return "", err
	}
	line, stdin, err := c.wrap(cmd, dir, id)
	if err != nil {
		return "", err
	}
	sess, err := c.ssh.NewSession()
	if err != nil {
		return "", fmt.Errorf("opening an ssh session: %w", err)
	}
	defer sess.Close()
	// stdout and stderr each get their own buffer: one shared buffer would be
	// written by two goroutines.
	var stdout, stderr bytes.Buffer
	sess.Stdout, sess.Stderr = &stdout, &stderr
	if cmd.Stdout != nil {
		sess.Stdout = cmd.Stdout
	}
	if cmd.Stderr != nil {
		sess.Stderr = io.MultiWriter(cmd.Stderr, &tailBuffer{buf: &stderr})
	}
	sess.Stdin = stdin
	if err := sess.Start(line); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		// sshd does not end a command when its channel closes, and not every sshd
		// honours signal requests: kill the command's process group from a
		// session of our own.
		c.kill(cmd.Root || cmd.As != "", dir, id)
		sess.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		return "", fmt.Errorf("%s: %w", display(cmd), ctx.Err())
	}
	var exit *ssh.ExitError
	if errors.As(err, &exit) {
		return stdout.String(), &ExitError{Cmd: display(cmd), Code: exit.ExitStatus(), Stderr: CleanText(lastLines(stderr.String(), 10))}
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("%s: %w", display(cmd), err)
	}
	return stdout.String(), nil
}

// pidFile is where a command's wrapper notes its process group: in the
// connection's private directory, not in /tmp, where anyone could plant a link
// by that name for root to write through.
func pidFile(dir, id string) string { return dir + "/." + id + ".pid" }

// kill ends the process group of the command with this id, TERM then KILL.
func (c *Client) kill(root bool, dir, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	f := Quote(pidFile(dir, id))
	// TERM, then up to a second for the group to end (most commands end at
	// once: no fixed sleep), then KILL. A sleep without fractions sleeps 1 s.
	line := fmt.Sprintf(`p=$(cat %[1]s 2>/dev/null) || exit 0; kill -s TERM -- "-$p" 2>/dev/null; i=0; while kill -s 0 -- "-$p" 2>/dev/null && [ $i -lt 10 ]; do sleep 0.1 2>/dev/null || { sleep 1; break; }; i=$((i+1)); done; kill -s KILL -- "-$p" 2>/dev/null; rm -f %[1]s; true`, f)
	l, stdin, err := c.wrapPlain(Cmd{Line: line, Root: root})
	if err != nil {
		return
	}
	_, _, _ = c.bare(ctx, l, stdin)
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func display(cmd Cmd) string {
	if cmd.Display != "" {
		return cmd.Display
	}
	return cmd.Line
}

// tailBuffer keeps what a streamed stderr said, for the error.
type tailBuffer struct{ buf *bytes.Buffer }

func (t *tailBuffer) Write(p []byte) (int, error) {
	if t.buf.Len() > 64*1024 {
		t.buf.Reset()
	}
	return t.buf.Write(p)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Quote quotes s for a POSIX shell.
func Quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}
