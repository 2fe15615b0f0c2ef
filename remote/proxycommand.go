package remote

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// commandConn is a connection carried by a ProxyCommand's stdin and stdout,
// as ssh runs it: sh -c "exec COMMAND", tokens already expanded. The command
// runs in a process group of its own, which Close kills and waits for, so
// nothing it started outlives the connection.
type commandConn struct {
	command string
	cmd     *exec.Cmd
	r       *os.File // the command's stdout
	w       *os.File // the command's stdin
	stderr  *stderrTail
	remote  net.Addr

	exited  chan struct{} // closed once the command has been waited for
	waitErr error

	closeOnce sync.Once
	closed    atomic.Bool // Close has run
}

func startProxyCommand(command, addr string) (*commandConn, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	c := &commandConn{
		command: command,
		r:       outR,
		w:       inW,
		stderr:  &stderrTail{max: 4 << 10},
		remote:  hostPortAddr(addr),
		exited:  make(chan struct{}),
	}
	cmd := exec.Command("/bin/sh", "-c", "exec "+command)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, c.stderr
	cmd.SysProcAttr = proxySysProcAttr()
	// A child the command left behind may hold stderr open; Wait stops
	// copying it after this long.
	cmd.WaitDelay = time.Second
	c.cmd = cmd
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		outR.Close()
		inW.Close()
		return nil, fmt.Errorf("ProxyCommand %q: %w", command, err)
	}
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

func (c *commandConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *commandConn) Write(p []byte) (int, error) { return c.w.Write(p) }

// Close ends the command and everything in its process group, and waits for
// it.
func (c *commandConn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.w.Close()
		c.r.Close()
		killProxy(c.cmd.Process)
		select {
		case <-c.exited:
		case <-time.After(5 * time.Second):
		}
	})
	return nil
}

// failure says why the connection failed, from the command's side: its exit
// status and the end of its stderr, once it has ended on its own (within
// grace); "" while it still runs or when Close killed it. (The SSH client
// closes the connection on a failed handshake: the exit status tells a
// command that ended on its own from one killed.)
func (c *commandConn) failure(grace time.Duration) string {
	select {
	case <-c.exited:
	case <-time.After(grace):
		return ""
	}
	status := "exited"
	var exit *exec.ExitError
	if errors.As(c.waitErr, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL && c.closed.Load() {
			return "" // ours
		}
		status = exit.String()
	}
	msg := fmt.Sprintf("ProxyCommand %q %s", c.command, status)
	if out := strings.TrimSpace(lastLines(CleanText(c.stderr.String()), 5)); out != "" {
		msg += ": " + out
	}
	return msg
}

func (c *commandConn) LocalAddr() net.Addr  { return hostPortAddr("proxycommand:0") }
func (c *commandConn) RemoteAddr() net.Addr { return c.remote }

func (c *commandConn) SetDeadline(t time.Time) error {
	return errors.Join(c.r.SetReadDeadline(t), c.w.SetWriteDeadline(t))
}
func (c *commandConn) SetReadDeadline(t time.Time) error  { return c.r.SetReadDeadline(t) }
func (c *commandConn) SetWriteDeadline(t time.Time) error { return c.w.SetWriteDeadline(t) }

// hostPortAddr is the hop's host:port as the connection's address, for
// known_hosts (which reads it as host:port).
type hostPortAddr string

func (a hostPortAddr) Network() string { return "tcp" }
func (a hostPortAddr) String() string  { return string(a) }

// stderrTail keeps the last max bytes written to it.
type stderrTail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *stderrTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *stderrTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
