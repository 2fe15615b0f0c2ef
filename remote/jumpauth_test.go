package remote_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"

	"github.com/vm2mesh/vm2mesh/remote"
)

// These tests run sshd in-process on 127.0.0.1, so they need neither root nor a VM.

const (
	vmPassword = "s3cret"
	otpCode    = "424242"
)

// attempts records what a test server was offered, safe for its goroutines.
type attempts struct {
	mu   sync.Mutex
	list []string
}

func (a *attempts) add(format string, args ...any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.list = append(a.list, fmt.Sprintf(format, args...))
}

func (a *attempts) get() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.list...)
}

// serveSSH runs an SSH server with cfg on 127.0.0.1. Its only channel is
// direct-tcpip, and only to forwardTo ("" refuses all), so it is no open proxy.
func serveSSH(t *testing.T, cfg *ssh.ServerConfig, forwardTo string) (addr string, hostKey ssh.PublicKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AddHostKey(signer)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serveConn(c, cfg, forwardTo)
		}
	}()
	return l.Addr().String(), signer.PublicKey()
}

func serveConn(c net.Conn, cfg *ssh.ServerConfig, forwardTo string) {
	sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		c.Close()
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		var dest struct {
			Host       string
			Port       uint32
			OriginHost string
			OriginPort uint32
		}
		if nc.ChannelType() != "direct-tcpip" || ssh.Unmarshal(nc.ExtraData(), &dest) != nil {
			nc.Reject(ssh.UnknownChannelType, "only direct-tcpip")
			continue
		}
		to := net.JoinHostPort(dest.Host, strconv.Itoa(int(dest.Port)))
		if forwardTo == "" || to != forwardTo {
			nc.Reject(ssh.Prohibited, "not forwarding to "+to)
			continue
		}
		tcp, err := net.Dial("tcp", to)
		if err != nil {
			nc.Reject(ssh.ConnectionFailed, err.Error())
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			tcp.Close()
			continue
		}
		go ssh.DiscardRequests(creqs)
		go func() {
			io.Copy(ch, tcp)
			ch.CloseWrite()
		}()
		go func() {
			io.Copy(tcp, ch)
			tcp.Close()
		}()
	}
}

// clientKey writes a new ed25519 key for the client, returning its file and public half.
func clientKey(t *testing.T) (string, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return file, sshPub
}

// jumpServer accepts only the public key allowed, and records every password
// and keyboard-interactive answer it is sent.
func jumpServer(allowed ssh.PublicKey, saw *attempts) *ssh.ServerConfig {
	return &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(key.Marshal(), allowed.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
		PasswordCallback: func(_ ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			saw.add("password %q", pw)
			return nil, errors.New("no passwords here")
		},
		KeyboardInteractiveCallback: func(_ ssh.ConnMetadata, ask ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			answers, err := ask("", "", []string{"Password: "}, []bool{false})
			saw.add("keyboard-interactive %q %v", answers, err)
			return nil, errors.New("no passwords here")
		},
	}
}

// jumpAndTarget starts a jump server and a target behind it, and returns
// Options for "target" through "jump" by an ssh_config in a temp dir. Only
// jumpKey gets in to the jump; the client has no key for the target.
func jumpAndTarget(t *testing.T, target *ssh.ServerConfig, jumpKey ssh.PublicKey, clientKeyFile string) (remote.Options, *attempts) {
	t.Helper()
	t.Setenv("SSH_AUTH_SOCK", "")
	t.Setenv("HOME", t.TempDir()) // no default keys
	jumpSaw := &attempts{}
	targetAddr, targetHostKey := serveSSH(t, target, "")
	jumpAddr, jumpHostKey := serveSSH(t, jumpServer(jumpKey, jumpSaw), targetAddr)
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	lines := knownhosts.Line([]string{jumpAddr}, jumpHostKey) + "\n" + knownhosts.Line([]string{targetAddr}, targetHostKey) + "\n"
	if err := os.WriteFile(kh, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	_, jumpPort, _ := net.SplitHostPort(jumpAddr)
	_, targetPort, _ := net.SplitHostPort(targetAddr)
	cfg := filepath.Join(dir, "config")
	err := os.WriteFile(cfg, []byte(fmt.Sprintf(`Host jump
	HostName 127.0.0.1
	Port %s
	User hopper
	IdentityFile %s

Host target
	HostName 127.0.0.1
	Port %s
	User admin
	ProxyJump jump
`, jumpPort, clientKeyFile, targetPort)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return remote.Options{
		Host:      "target",
		SSHConfig: cfg,
		HostKeys:  remote.HostKeyPolicy{KnownHostsFile: kh},
		Timeout:   10 * time.Second,
	}, jumpSaw
}

// passwordOnly accepts the VM's password for admin, and nothing else.
func passwordOnly(saw *attempts) *ssh.ServerConfig {
	return &ssh.ServerConfig{
		PasswordCallback: func(m ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			saw.add("password %s %q", m.User(), pw)
			if m.User() == "admin" && string(pw) == vmPassword {
				return nil, nil
			}
			return nil, errors.New("wrong password")
		},
	}
}

// twoFactor refuses the password method and wants, by keyboard-interactive, an
// empty round (as sshd sends), the password (echo off), then a code (echo on).
func twoFactor(saw *attempts) *ssh.ServerConfig {
	return &ssh.ServerConfig{
		PasswordCallback: func(m ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			saw.add("password %q", pw)
			return nil, errors.New("a code is needed too")
		},
		KeyboardInteractiveCallback: func(m ssh.ConnMetadata, ask ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			if _, err := ask("", "", nil, nil); err != nil {
				return nil, err
			}
			pw, err := ask("", "", []string{"Password: "}, []bool{false})
			if err != nil {
				return nil, err
			}
			code, err := ask("", "Your authenticator app shows it.", []string{"Verification code: "}, []bool{true})
			if err != nil {
				return nil, err
			}
			saw.add("keyboard-interactive %q %q", pw, code)
			if len(pw) == 1 && pw[0] == vmPassword && len(code) == 1 && code[0] == otpCode {
				return nil, nil
			}
			return nil, errors.New("wrong password or code")
		},
	}
}

// countingPassword answers vmPassword and counts how often it was asked.
func countingPassword(asked *int) func(user, host string) (string, error) {
	var mu sync.Mutex
	return func(user, host string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		*asked++
		return vmPassword, nil
	}
}

func TestJumpHopsGetKeysOnlyTargetThePassword(t *testing.T) {
	ctx := context.Background()

	t.Run("password login through a jump", func(t *testing.T) {
		keyFile, pub := clientKey(t)
		targetSaw := &attempts{}
		o, jumpSaw := jumpAndTarget(t, passwordOnly(targetSaw), pub, keyFile)
		asked := 0
		o.Password = countingPassword(&asked)
		c, err := remote.Dial(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if got := jumpSaw.get(); len(got) != 0 {
			t.Errorf("the jump host was sent %q", got)
		}
		if got := targetSaw.get(); len(got) != 1 || got[0] != `password admin "s3cret"` {
			t.Errorf("the target saw %q", got)
		}
		if asked != 1 {
			t.Errorf("password asked %d times, want once", asked)
		}
	})

	t.Run("jump refusing our key is never sent the password", func(t *testing.T) {
		keyFile, _ := clientKey(t)
		_, otherPub := clientKey(t)
		o, jumpSaw := jumpAndTarget(t, passwordOnly(&attempts{}), otherPub, keyFile)
		asked := 0
		o.Password = countingPassword(&asked)
		_, err := remote.Dial(ctx, o)
		if err == nil || !strings.Contains(err.Error(), "jump host hopper@127.0.0.1:") || !strings.Contains(err.Error(), "keys") {
			t.Errorf("want the jump host's refusal of our keys, got %v", err)
		}
		if got := jumpSaw.get(); len(got) != 0 {
			t.Errorf("the jump host was sent %q", got)
		}
		if asked != 0 {
			t.Errorf("password asked %d times for a jump host", asked)
		}
	})

	t.Run("keyboard-interactive: the password once, the code from Question", func(t *testing.T) {
		keyFile, pub := clientKey(t)
		targetSaw := &attempts{}
		o, jumpSaw := jumpAndTarget(t, twoFactor(targetSaw), pub, keyFile)
		asked := 0
		o.Password = countingPassword(&asked)
		var questions []string
		o.Question = func(user, host, instruction, question string, echo bool) (string, error) {
			questions = append(questions, fmt.Sprintf("%s@%s %q %q echo=%v", user, host, instruction, question, echo))
			return otpCode, nil
		}
		c, err := remote.Dial(ctx, o)
		if err != nil {
			t.Fatalf("%v (target saw %q, questions %q)", err, targetSaw.get(), questions)
		}
		c.Close()
		if asked != 1 {
			t.Errorf("password asked %d times, want once for both methods", asked)
		}
		want := `admin@127.0.0.1 "Your authenticator app shows it." "Verification code: " echo=true`
		if len(questions) != 1 || questions[0] != want {
			t.Errorf("questions %q, want only %q", questions, want)
		}
		// keyboard-interactive comes first, as in OpenSSH: no password method needed.
		if got := targetSaw.get(); len(got) != 1 || got[0] != `keyboard-interactive ["s3cret"] ["424242"]` {
			t.Errorf("the target saw %q", got)
		}
		if got := jumpSaw.get(); len(got) != 0 {
			t.Errorf("the jump host was sent %q", got)
		}
	})

	t.Run("a question nobody can answer headless", func(t *testing.T) {
		keyFile, pub := clientKey(t)
		targetSaw := &attempts{}
		o, _ := jumpAndTarget(t, twoFactor(targetSaw), pub, keyFile)
		asked := 0
		o.Password = countingPassword(&asked)
		_, err := remote.Dial(ctx, o)
		if err == nil || !strings.Contains(err.Error(), "Verification code") || !strings.Contains(err.Error(), "headless") {
			t.Errorf("want an error naming the question, got %v", err)
		}
		for _, a := range targetSaw.get() {
			if strings.Contains(a, vmPassword+`"] [`) {
				t.Errorf("the password answered another question: %s", a)
			}
		}
		if asked != 1 {
			t.Errorf("password asked %d times, want once", asked)
		}
	})
}
