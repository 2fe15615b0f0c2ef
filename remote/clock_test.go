package remote_test

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vm2mesh/vm2mesh/internal/testvm"
	"github.com/vm2mesh/vm2mesh/remote"
)

// The handshake's time limit is for the network and the server: an operator
// reading a fingerprint for longer than it still gets in.
func TestAPromptDoesNotRunTheHandshakeOutOfTime(t *testing.T) {
	vm := testvm.Start(t, testvm.Options{})
	o := options(t, vm, "root")
	o.HostKeys.Pinned, o.Timeout = "", time.Second
	o.HostKeys.Ask = func(host, keyType, fp string) (remote.HostKeyDecision, error) {
		time.Sleep(2500 * time.Millisecond) // reading it, slowly
		return remote.AcceptOnce, nil
	}
	c, err := remote.Dial(context.Background(), o)
	if err != nil {
		t.Fatalf("a 2.5 s answer to the host key prompt with a 1 s handshake limit: %v", err)
	}
	c.Close()
}

// A server that never answers runs the handshake out of time, and says so.
func TestASilentServerRunsOutOfTime(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accepts, says nothing
		}
	}()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	p, _ := strconv.Atoi(port)
	dir := t.TempDir()
	start := time.Now()
	_, err = remote.Dial(context.Background(), remote.Options{Host: "127.0.0.1", Port: p, User: "root",
		SSHConfig: filepath.Join(dir, "none"), HostKeys: remote.HostKeyPolicy{KnownHostsFile: filepath.Join(dir, "kh")}, Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "the handshake took longer than 1s") || time.Since(start) > 10*time.Second {
		t.Errorf("a silent server: %v after %v", err, time.Since(start))
	}
}
