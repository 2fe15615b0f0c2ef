package remote

import (
	"net"
	"sync"
	"time"
)

// handshakeClock bounds one handshake by Options.Timeout, for a slow network or
// server, but stands still while the operator answers a prompt (a host key, a
// password, a passphrase, a one-time code): reading a fingerprint takes longer
// than a handshake should. (sshd's own LoginGraceTime still applies.)
type handshakeClock struct {
	d       time.Duration
	mu      sync.Mutex
	conn    net.Conn
	timer   *time.Timer
	until   time.Time // the running attempt's deadline; zero while paused
	paused  int
	expired bool
}

// start runs the clock for an attempt on conn: when it runs out, conn is closed,
// which ends the handshake.
func (c *handshakeClock) start(conn net.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn, c.expired, c.paused = conn, false, 0
	c.until = time.Now().Add(c.d)
	_ = conn.SetDeadline(c.until)
	c.timer = time.AfterFunc(c.d, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.paused == 0 && c.conn == conn {
			c.expired = true
			conn.Close()
		}
	})
}

// stop ends the attempt's clock; the connection, if kept, has no deadline.
// The clock ran out if its timer fired or its deadline passed: the connection's
// deadline can end a read a moment before the timer fires.
func (c *handshakeClock) stop() (expired bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.paused == 0 && !c.until.IsZero() && !time.Now().Before(c.until) {
		c.expired = true
	}
	if c.conn != nil && !c.expired {
		_ = c.conn.SetDeadline(time.Time{})
	}
	c.conn = nil
	return c.expired
}

func (c *handshakeClock) pause() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.paused++
	if c.paused == 1 && c.conn != nil {
		c.timer.Stop()
		c.until = time.Time{}
		_ = c.conn.SetDeadline(time.Time{})
	}
}

func (c *handshakeClock) resume() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.paused--
	if c.paused == 0 && c.conn != nil && !c.expired {
		c.until = time.Now().Add(c.d)
		_ = c.conn.SetDeadline(c.until)
		c.timer.Reset(c.d)
	}
}

// whilePrompting makes every prompt of o stop the clock while it is open.
func (c *handshakeClock) whilePrompting(o Options) Options {
	if f := o.Password; f != nil {
		o.Password = func(user, host string) (string, error) { c.pause(); defer c.resume(); return f(user, host) }
	}
	if f := o.Passphrase; f != nil {
		o.Passphrase = func(file string) (string, error) { c.pause(); defer c.resume(); return f(file) }
	}
	if f := o.Question; f != nil {
		o.Question = func(user, host, instruction, question string, echo bool) (string, error) {
			c.pause()
			defer c.resume()
			return f(user, host, instruction, question, echo)
		}
	}
	if f := o.HostKeys.Ask; f != nil {
		o.HostKeys.Ask = func(host, keyType, fingerprint string) (HostKeyDecision, error) {
			c.pause()
			defer c.resume()
			return f(host, keyType, fingerprint)
		}
	}
	return o
}
