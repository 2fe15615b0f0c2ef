package remote

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// These tests run an SSH server and an agent in-process: no root, no VM. They
// check the order keys are offered in and what a failed login says.

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pubOf(t *testing.T, k crypto.PrivateKey) ssh.PublicKey {
	t.Helper()
	s, err := ssh.NewSignerFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return s.PublicKey()
}

// writeKey writes k in OpenSSH's format, encrypted when passphrase is set;
// no .pub beside it.
func writeKey(t *testing.T, path string, k crypto.PrivateKey, passphrase string) {
	t.Helper()
	var block *pem.Block
	var err error
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(k, "")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(k, "", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeCert writes a user certificate for key, signed by ca, valid an hour
// either side of now.
func writeCert(t *testing.T, path string, ca crypto.PrivateKey, key ssh.PublicKey, principals ...string) {
	t.Helper()
	caSigner, err := ssh.NewSignerFromKey(ca)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cert := &ssh.Certificate{
		Key:             key,
		CertType:        ssh.UserCert,
		KeyId:           "vm2mesh test",
		ValidPrincipals: principals,
		ValidAfter:      uint64(now.Add(-time.Hour).Unix()),
		ValidBefore:     uint64(now.Add(time.Hour).Unix()),
		Permissions:     ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}},
	}
	if err := cert.SignCert(rand.Reader, caSigner); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
		t.Fatal(err)
	}
}

// testAgent is an agent on a unix socket that counts its open connections.
type testAgent struct {
	sock string
	open atomic.Int32
}

func startTestAgent(t *testing.T, keys ...crypto.PrivateKey) *testAgent {
	t.Helper()
	keyring := agent.NewKeyring()
	for _, k := range keys {
		if err := keyring.Add(agent.AddedKey{PrivateKey: k}); err != nil {
			t.Fatal(err)
		}
	}
	a := &testAgent{sock: filepath.Join(t.TempDir(), "agent.sock")}
	l, err := net.Listen("unix", a.sock)
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
			a.open.Add(1)
			go func() {
				defer a.open.Add(-1)
				_ = agent.ServeAgent(keyring, c)
				c.Close()
			}()
		}
	}()
	return a
}

// closed waits a moment for every connection to the agent to end.
func (a *testAgent) closed() bool {
	for range 100 {
		if a.open.Load() == 0 {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// keyServer is an SSH server that records the public keys it is offered, in
// order, and accepts only those accept says yes to, signed with one of
// algorithms (default: x/crypto's).
func keyServer(t *testing.T, accept func(ssh.PublicKey) bool, algorithms ...string) (hop Hop, hostKey ssh.PublicKey, offered func() []ssh.PublicKey) {
	t.Helper()
	var mu sync.Mutex
	var seen []ssh.PublicKey
	cfg := &ssh.ServerConfig{
		MaxAuthTries:            -1,
		PublicKeyAuthAlgorithms: algorithms,
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			mu.Lock()
			seen = append(seen, key)
			mu.Unlock()
			if accept != nil && accept(key) {
				return nil, nil
			}
			return nil, errors.New("not this key")
		},
	}
	hostSigner, err := ssh.NewSignerFromKey(newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.AddHostKey(hostSigner)
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
			go func() {
				sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
				if err != nil {
					c.Close()
					return
				}
				go ssh.DiscardRequests(reqs)
				go func() {
					for nc := range chans {
						nc.Reject(ssh.Prohibited, "nothing here")
					}
				}()
				_ = sc.Wait()
			}()
		}
	}()
	addr := l.Addr().(*net.TCPAddr)
	hop = Hop{Alias: "keyserver", HostName: "127.0.0.1", Port: addr.Port, User: "tester"}
	return hop, hostSigner.PublicKey(), func() []ssh.PublicKey {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}

// login authenticates to one hop as handshake in dial.go does, with the
// host key known: newAuthenticator, its AuthCallback, explain, close.
func login(hop Hop, o Options, hostKey ssh.PublicKey) error {
	a := newAuthenticator(hop, false, o)
	defer a.close()
	c, err := ssh.Dial("tcp", hop.Addr(), &ssh.ClientConfig{
		User:            hop.User,
		AuthCallback:    a.next,
		HostKeyCallback: ssh.FixedHostKey(hostKey),
		Timeout:         10 * time.Second,
	})
	if err != nil {
		return a.explain(err)
	}
	return c.Close()
}

func samePub(a, b ssh.PublicKey) bool { return bytes.Equal(a.Marshal(), b.Marshal()) }

// names turns offered keys into the test's names for them.
func names(keys []ssh.PublicKey, known map[string]ssh.PublicKey) []string {
	var out []string
	for _, k := range keys {
		name := "unknown " + k.Type()
		for n, p := range known {
			if samePub(k, p) {
				name = n
			}
		}
		out = append(out, name)
	}
	return out
}

func TestAuthOrderAsOpenSSH(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	ca, certKey, held, agentOnly, fileOnly := newKey(t), newKey(t), newKey(t), newKey(t), newKey(t)
	writeKey(t, filepath.Join(home, "cert_key"), certKey, "")
	writeCert(t, filepath.Join(home, "issued", "user-cert.pub"), ca, pubOf(t, certKey), "tester")
	writeKey(t, filepath.Join(home, "held"), held, "")
	writeKey(t, filepath.Join(home, "file_only"), fileOnly, "open sesame")
	// The agent lists the unconfigured key first: configured ones still lead.
	ag := startTestAgent(t, agentOnly, held)
	t.Setenv("SSH_AUTH_SOCK", ag.sock)

	certPub, err := os.ReadFile(filepath.Join(home, "issued", "user-cert.pub"))
	if err != nil {
		t.Fatal(err)
	}
	cert, _, _, _, err := ssh.ParseAuthorizedKey(certPub)
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]ssh.PublicKey{
		"CertificateFile": cert, "cert_key": pubOf(t, certKey), "held": pubOf(t, held),
		"agent only": pubOf(t, agentOnly), "file_only": pubOf(t, fileOnly),
	}
	configured := func(hop Hop) Hop {
		hop.IdentityFiles = []string{"~/file_only", "~/held", "~/cert_key"}
		hop.CertificateFiles = []string{"~/issued/user-cert.pub"}
		return hop
	}

	t.Run("all refused: OpenSSH's order, no passphrase asked", func(t *testing.T) {
		hop, hostKey, offered := keyServer(t, nil)
		asked := 0
		err := login(configured(hop), Options{Passphrase: func(string) (string, error) { asked++; return "open sesame", nil }}, hostKey)
		want := []string{"CertificateFile", "held", "agent only", "file_only", "cert_key"}
		if got := names(offered(), known); !slices.Equal(got, want) {
			t.Errorf("IdentityFile+CertificateFile+agent: offered %q, want OpenSSH's order %q", got, want)
		}
		if asked != 0 {
			t.Errorf("IdentityFile ~/file_only: passphrase asked %d times for a key the server refused", asked)
		}
		var ae *AuthError
		if !errors.As(err, &ae) {
			t.Fatalf("want an AuthError, got %v", err)
		}
		wantTried := []string{"certificate ~/issued/user-cert.pub", "~/held (in the agent)", "agent (1 key)", "~/file_only", "~/cert_key"}
		if !slices.Equal(ae.Tried, wantTried) {
			t.Errorf("tried %q, want %q", ae.Tried, wantTried)
		}
		if !ag.closed() {
			t.Error("IdentityAgent: the agent connection is still open after the handshake")
		}
	})

	t.Run("IdentitiesOnly leaves out the agent's other keys", func(t *testing.T) {
		hop, hostKey, offered := keyServer(t, nil)
		hop = configured(hop)
		hop.IdentitiesOnly = true
		err := login(hop, Options{}, hostKey)
		want := []string{"CertificateFile", "held", "file_only", "cert_key"}
		if got := names(offered(), known); !slices.Equal(got, want) {
			t.Errorf("IdentitiesOnly yes: offered %q, want %q", got, want)
		}
		if err == nil || !strings.Contains(err.Error(), "agent (1 key left out by IdentitiesOnly)") {
			t.Errorf("IdentitiesOnly yes: the error should say the agent's other key was left out: %v", err)
		}
	})

	t.Run("the passphrase is asked when the server accepts the key", func(t *testing.T) {
		hop, hostKey, offered := keyServer(t, func(k ssh.PublicKey) bool { return samePub(k, pubOf(t, fileOnly)) })
		var asked []string
		err := login(configured(hop), Options{Passphrase: func(f string) (string, error) { asked = append(asked, f); return "open sesame", nil }}, hostKey)
		if err != nil {
			t.Fatalf("IdentityFile ~/file_only (encrypted): %v", err)
		}
		if want := []string{filepath.Join(home, "file_only")}; !slices.Equal(asked, want) {
			t.Errorf("IdentityFile ~/file_only: passphrase asked for %q, want once for %q", asked, want)
		}
		if got := names(offered(), known); len(got) != 4 || got[3] != "file_only" {
			t.Errorf("IdentityFile ~/file_only: offered %q", got)
		}
		if !ag.closed() {
			t.Error("IdentityAgent: the agent connection is still open after a login")
		}
	})

	t.Run("no passphrase: the key is skipped and the error says so", func(t *testing.T) {
		hop, hostKey, _ := keyServer(t, func(k ssh.PublicKey) bool { return samePub(k, pubOf(t, fileOnly)) })
		err := login(configured(hop), Options{}, hostKey)
		if err == nil {
			t.Fatal("IdentityFile ~/file_only: logged in with an encrypted key and no passphrase")
		}
		for _, want := range []string{"ssh: unable to authenticate", "~/file_only (encrypted, no passphrase given)", "ssh-add ~/file_only"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("IdentityFile ~/file_only without Passphrase: the error lacks %q: %v", want, err)
			}
		}
		if strings.Contains(err.Error(), "open sesame") {
			t.Errorf("the error shows a secret: %v", err)
		}
	})

	t.Run("wrong passphrase: asked three times, as OpenSSH", func(t *testing.T) {
		hop, hostKey, _ := keyServer(t, func(k ssh.PublicKey) bool { return samePub(k, pubOf(t, fileOnly)) })
		asked := 0
		err := login(configured(hop), Options{Passphrase: func(string) (string, error) { asked++; return "wrong", nil }}, hostKey)
		if err == nil || !strings.Contains(err.Error(), "~/file_only (encrypted, wrong passphrase)") || asked != 3 {
			t.Errorf("IdentityFile ~/file_only with a wrong passphrase: asked %d times, error %v", asked, err)
		}
	})
}

func TestAuthAgentSocketSetting(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("SSH_AUTH_SOCK", "/run/default.sock")
	t.Setenv("OTHER_AGENT", "/run/other.sock")
	for _, tc := range []struct{ setting, sock string }{
		{"", "/run/default.sock"},
		{"SSH_AUTH_SOCK", "/run/default.sock"},
		{"none", ""},
		{"$OTHER_AGENT", "/run/other.sock"},
		{"~/agent.sock", filepath.Join(home, "agent.sock")},
		{"/run/third.sock", "/run/third.sock"},
	} {
		if sock, _ := agentSocket(tc.setting); sock != tc.sock {
			t.Errorf("IdentityAgent %q: socket %q, want %q", tc.setting, sock, tc.sock)
		}
	}
}

// RSA keys sign with SHA-2 (servers refuse ssh-rsa's SHA-1 nowadays), whether
// the key is read lazily from its file or held by the agent.
func TestAuthRSAKeysSignWithSHA2(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("SSH_AUTH_SOCK", "")
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	writeKey(t, filepath.Join(home, "id_rsa"), k, "")
	accept := func(p ssh.PublicKey) bool { return samePub(p, pubOf(t, k)) }
	for _, algorithm := range []string{ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSASHA512} {
		hop, hostKey, _ := keyServer(t, accept, algorithm)
		hop.IdentityFiles = []string{"~/id_rsa"}
		if err := login(hop, Options{}, hostKey); err != nil {
			t.Errorf("IdentityFile ~/id_rsa, server wanting %s: %v", algorithm, err)
		}
		ag := startTestAgent(t, k)
		hop.IdentityFiles = nil
		hop.IdentityAgent = ag.sock
		if err := login(hop, Options{}, hostKey); err != nil {
			t.Errorf("IdentityAgent holding an RSA key, server wanting %s: %v", algorithm, err)
		}
	}
}
