package remote

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"

	"github.com/vm2mesh/vm2mesh/internal/testvm"
)

// The hop's ssh_config host key settings (as `ssh -G` resolves them), each
// against a sandbox VM: the hop is built here, not resolved.

// dialVM logs in to the VM as root through one hop with these settings. The
// global known_hosts files are the test's own unless the hop names some.
func dialVM(t *testing.T, vm *testvm.VM, hop Hop, p HostKeyPolicy) (*Client, error) {
	t.Helper()
	hop.HostName = vm.Addr
	if hop.Port == 0 {
		hop.Port = vm.Port
	}
	hop.Alias, hop.User = vm.Addr, "root"
	hop.IdentityFiles, hop.IdentityAgent, hop.IdentitiesOnly = []string{vm.ClientKey}, "none", true
	if hop.GlobalKnownHostsFiles == nil {
		hop.GlobalKnownHostsFiles = []string{filepath.Join(t.TempDir(), "ssh_known_hosts")}
	}
	o := Options{HostKeys: p, Timeout: 10 * time.Second}
	sc, err := dialHop(context.Background(), nil, hop, false, o)
	if err != nil {
		return nil, err
	}
	c := &Client{ssh: sc, Target: hop, opts: o}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// mustLogIn: the dial worked and is a root login.
func mustLogIn(t *testing.T, setting string, c *Client, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", setting, err)
	}
	ctx := context.Background()
	if err := c.Root(ctx, nil); err != nil {
		t.Fatalf("%s: root: %v", setting, err)
	}
	if out, err := c.RunRoot(ctx, "id -u"); err != nil || out != "0\n" {
		t.Fatalf("%s: id -u as root: %q %v", setting, out, err)
	}
}

func knownHostsLine(name string, key ssh.PublicKey) string {
	return name + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
}

func TestHashKnownHosts(t *testing.T) {
	vm := testvm.Start(t, testvm.Options{})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	hop := Hop{UserKnownHostsFiles: []string{kh}, HashKnownHosts: true}
	c, err := dialVM(t, vm, hop, HostKeyPolicy{Pinned: vm.Fingerprint})
	mustLogIn(t, "HashKnownHosts yes, pinned", c, err)
	data, _ := os.ReadFile(kh)
	if !strings.HasPrefix(string(data), "|1|") || strings.Contains(string(data), vm.Addr) || strings.Count(string(data), "\n") != 1 {
		t.Fatalf("HashKnownHosts yes: the entry written is not one hashed line: %q", data)
	}
	c, err = dialVM(t, vm, hop, HostKeyPolicy{})
	mustLogIn(t, "HashKnownHosts yes, the second Dial (no pin: the hashed entry must be found)", c, err)
	if _, err := exec.LookPath("ssh-keygen"); err == nil {
		if out, err := exec.Command("ssh-keygen", "-F", vm.Addr, "-f", kh).CombinedOutput(); err != nil {
			t.Errorf("HashKnownHosts yes: ssh-keygen -F %s does not find the hashed entry: %v %s", vm.Addr, err, out)
		}
	}
}

func TestHostKeyAlias(t *testing.T) {
	// sshd on two ports: two known_hosts names for one host key.
	vm := testvm.Start(t, testvm.Options{SSHDConfig: "Port 22\nPort 2222\n"})
	const alias = "vm2mesh-alias"
	kh := filepath.Join(t.TempDir(), "known_hosts")
	hop := Hop{UserKnownHostsFiles: []string{kh}, HostKeyAlias: alias}
	c, err := dialVM(t, vm, hop, HostKeyPolicy{Pinned: vm.Fingerprint})
	mustLogIn(t, "HostKeyAlias "+alias+", pinned", c, err)
	data, _ := os.ReadFile(kh)
	if want := knownHostsLine(alias, vm.HostKey) + "\n"; string(data) != want {
		t.Fatalf("HostKeyAlias %s: known_hosts has %q, want %q", alias, data, want)
	}

	hop.Port = 2222
	c, err = dialVM(t, vm, hop, HostKeyPolicy{})
	mustLogIn(t, "HostKeyAlias "+alias+" on port 2222 (known under the alias only)", c, err)
	var unknown *UnknownHostError
	if _, err := dialVM(t, vm, Hop{UserKnownHostsFiles: []string{kh}, Port: 2222}, HostKeyPolicy{}); !errors.As(err, &unknown) {
		t.Errorf("without HostKeyAlias, [%s]:2222 should be unknown: %v", vm.Addr, err)
	}

	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherKey, _ := ssh.NewSignerFromKey(other)
	if err := os.WriteFile(kh, []byte(knownHostsLine(alias, otherKey.PublicKey())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = dialVM(t, vm, hop, HostKeyPolicy{})
	var changed *HostKeyChangedError
	if !errors.As(err, &changed) || !strings.Contains(err.Error(), "ssh-keygen -R "+alias+" -f "+kh) {
		t.Errorf("HostKeyAlias %s with another key known for it: want a changed key naming ssh-keygen -R %s -f %s, got %v", alias, alias, kh, err)
	}
}

func TestGlobalKnownHostsFiles(t *testing.T) {
	vm := testvm.Start(t, testvm.Options{})
	dir := t.TempDir()
	global := filepath.Join(dir, "ssh_known_hosts")
	if err := os.WriteFile(global, []byte(vm.KnownHostsLine()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	user := filepath.Join(dir, "known_hosts")
	hop := Hop{UserKnownHostsFiles: []string{user}, GlobalKnownHostsFiles: []string{filepath.Join(dir, "missing"), global}}
	c, err := dialVM(t, vm, hop, HostKeyPolicy{})
	mustLogIn(t, "GlobalKnownHostsFile "+global+" holding the key", c, err)
	// vm.knownHostsFile replaces the user files, not the global ones.
	c, err = dialVM(t, vm, hop, HostKeyPolicy{KnownHostsFile: filepath.Join(dir, "answers_known_hosts")})
	mustLogIn(t, "GlobalKnownHostsFile "+global+" with vm.knownHostsFile set", c, err)
	if _, err := os.Stat(user); !os.IsNotExist(err) {
		t.Errorf("GlobalKnownHostsFile: a host known there was written to the user file too")
	}
}

// With no UserKnownHostsFile, ssh's own: ~/.ssh/known_hosts and known_hosts2
// are read, and new keys go to the first.
func TestDefaultUserKnownHostsFiles(t *testing.T) {
	vm := testvm.Start(t, testvm.Options{})
	home := t.TempDir()
	t.Setenv("HOME", home)
	c, err := dialVM(t, vm, Hop{}, HostKeyPolicy{Pinned: vm.Fingerprint})
	mustLogIn(t, "UserKnownHostsFile default, pinned", c, err)
	st, err := os.Stat(filepath.Join(home, ".ssh", "known_hosts"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("UserKnownHostsFile default: ~/.ssh/known_hosts not written 0600: %v", err)
	}
	if st, _ := os.Stat(filepath.Join(home, ".ssh")); st.Mode().Perm() != 0o700 {
		t.Errorf("UserKnownHostsFile default: ~/.ssh made %v, want 0700", st.Mode().Perm())
	}
	if err := os.Rename(filepath.Join(home, ".ssh", "known_hosts"), filepath.Join(home, ".ssh", "known_hosts2")); err != nil {
		t.Fatal(err)
	}
	c, err = dialVM(t, vm, Hop{}, HostKeyPolicy{})
	mustLogIn(t, "UserKnownHostsFile default: the key in ~/.ssh/known_hosts2", c, err)
}

func TestStrictHostKeyChecking(t *testing.T) {
	vm := testvm.Start(t, testvm.Options{})
	hop := func(t *testing.T, strict string) (Hop, string) {
		kh := filepath.Join(t.TempDir(), "known_hosts")
		return Hop{UserKnownHostsFiles: []string{kh}, StrictHostKeyChecking: strict}, kh
	}
	var asked []string
	ask := func(host, keyType, fp string) (HostKeyDecision, error) {
		asked = append(asked, host)
		return AcceptOnce, nil
	}

	t.Run("yes refuses an unknown host without asking", func(t *testing.T) {
		asked = nil
		h, _ := hop(t, "yes")
		_, err := dialVM(t, vm, h, HostKeyPolicy{Ask: ask})
		var unknown *UnknownHostError
		if !errors.As(err, &unknown) || !strings.Contains(err.Error(), "StrictHostKeyChecking yes") || len(asked) > 0 {
			t.Errorf("StrictHostKeyChecking yes: want refused unasked (asked %q), got %v", asked, err)
		}
	})
	t.Run("yes (as ssh -G prints it: true) takes a pin", func(t *testing.T) {
		h, _ := hop(t, "true")
		c, err := dialVM(t, vm, h, HostKeyPolicy{Pinned: vm.Fingerprint})
		mustLogIn(t, "StrictHostKeyChecking true with vm.hostKeyFingerprint", c, err)
	})
	t.Run("yes gives way to vm.acceptNewHostKey", func(t *testing.T) {
		h, _ := hop(t, "yes")
		c, err := dialVM(t, vm, h, HostKeyPolicy{AcceptNew: true})
		mustLogIn(t, "StrictHostKeyChecking yes with vm.acceptNewHostKey", c, err)
	})
	t.Run("accept-new remembers without asking", func(t *testing.T) {
		asked = nil
		h, kh := hop(t, "accept-new")
		c, err := dialVM(t, vm, h, HostKeyPolicy{Ask: ask})
		mustLogIn(t, "StrictHostKeyChecking accept-new", c, err)
		if data, _ := os.ReadFile(kh); string(data) != vm.KnownHostsLine()+"\n" || len(asked) > 0 {
			t.Fatalf("StrictHostKeyChecking accept-new: known_hosts %q, asked %q", data, asked)
		}
		h.StrictHostKeyChecking = "yes"
		c, err = dialVM(t, vm, h, HostKeyPolicy{})
		mustLogIn(t, "StrictHostKeyChecking yes after accept-new remembered the key", c, err)
	})
	t.Run("accept-new refuses a changed key", func(t *testing.T) {
		h, kh := hop(t, "accept-new")
		_, other, _ := ed25519.GenerateKey(rand.Reader)
		otherKey, _ := ssh.NewSignerFromKey(other)
		if err := os.WriteFile(kh, []byte(knownHostsLine(vm.Addr, otherKey.PublicKey())+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var changed *HostKeyChangedError
		if _, err := dialVM(t, vm, h, HostKeyPolicy{AcceptNew: true}); !errors.As(err, &changed) {
			t.Errorf("StrictHostKeyChecking accept-new with a changed key: %v", err)
		}
	})
	t.Run("no is ask, and says so", func(t *testing.T) {
		asked = nil
		h, kh := hop(t, "no")
		c, err := dialVM(t, vm, h, HostKeyPolicy{Ask: ask})
		mustLogIn(t, "StrictHostKeyChecking no, answered once", c, err)
		if len(asked) != 1 || !strings.Contains(asked[0], "StrictHostKeyChecking no is treated as ask") {
			t.Errorf("StrictHostKeyChecking no: the prompt should say it is treated as ask: %q", asked)
		}
		if _, err := os.Stat(kh); !os.IsNotExist(err) {
			t.Errorf("StrictHostKeyChecking no: the key was remembered silently")
		}
		var unknown *UnknownHostError
		_, err = dialVM(t, vm, h, HostKeyPolicy{})
		if !errors.As(err, &unknown) || !strings.Contains(err.Error(), "never connects to an unknown host silently") {
			t.Errorf("StrictHostKeyChecking no, headless: want refused, saying why, got %v", err)
		}
	})
}

// Unit tests of the pieces, no VM.

func TestKnownHostsMatchLikeSSH(t *testing.T) {
	for _, tc := range []struct {
		name, patterns string
		want           bool
	}{
		{"198.51.100.6", "198.51.100.6", true},
		{"198.51.100.6", "198.51.100.*", true},
		{"198.51.100.6", "198.51.100.?", true},
		{"198.51.100.16", "198.51.100.?", false},
		{"vm.example.com", "VM.Example.COM", true},
		{"vm.example.com", "*.example.com,!vm.example.com", false},
		{"db.example.com", "*.example.com,!vm.example.com", true},
		{"[198.51.100.6]:2222", "198.51.100.6", false},
		{"[198.51.100.6]:2222", "[198.51.100.6]:2222", true},
		{"[198.51.100.6]:2222", "*", true},
		{"[a.example.com]:2222", "*.example.com", false},
		{"a*b", "a*b", true},
		{"anything", "other,*", true},
		{"anything", "!*", false},
	} {
		if got := matchHostPatterns(tc.name, tc.patterns); got != tc.want {
			t.Errorf("known_hosts pattern %q for %s: %v, want %v", tc.patterns, tc.name, got, tc.want)
		}
	}
	hashed := xknownhosts.HashHostname("[198.51.100.6]:2222")
	if !hashedNameIs(hashed, "[198.51.100.6]:2222") || hashedNameIs(hashed, "198.51.100.6") {
		t.Errorf("HashKnownHosts entry %s matched wrongly", hashed)
	}
}

func TestKnownHostsTypesAndBadLines(t *testing.T) {
	ed, ec := newTestKey(t), newTestECDSA(t)
	data := strings.Join([]string{
		"# comment",
		"@unknown-marker host " + authorizedLine(ed),
		"host ssh-ed25519 not-base64",
		"host ssh-rsa " + strings.Fields(authorizedLine(ed))[1], // type and key disagree
		"1024 35 1234 old-rsa1-line",
		"host " + authorizedLine(ec) + " a comment",
	}, "\n")
	known := parseKnownHosts([]byte(data), "kh")
	if len(known) != 1 || known[0].line != 6 {
		t.Fatalf("known_hosts lines read: %+v, want line 6 alone", known)
	}
	// A key of another type than the one known is new, not changed (ssh
	// compares keys of one type).
	found, changed, others := known.lookup("host", ed)
	if found != nil || changed != nil || !slices.Equal(others, []string{ec.Type()}) {
		t.Errorf("an ED25519 key with an ECDSA one known: found %v changed %v others %v", found, changed, others)
	}
}

func TestHostKeyAlgorithmsInSSHOrder(t *testing.T) {
	dir := t.TempDir()
	ed, rsaKey := newTestKey(t), newTestRSA(t)
	for _, tc := range []struct {
		setting, knownHosts string
		first               []string
	}{
		{"no known key", "", openSSHHostKeyAlgorithms}, // ED25519 the first plain kind
		{"known ED25519 key", knownHostsLine("vm", ed), openSSHHostKeyAlgorithms},
		{"known RSA key", knownHostsLine("vm", rsaKey), []string{ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.CertAlgoED25519v01}},
		{"@cert-authority * and a known RSA key", "@cert-authority * " + authorizedLine(ed) + "\n" + knownHostsLine("vm", rsaKey),
			[]string{ssh.CertAlgoED25519v01, ssh.CertAlgoECDSA256v01, ssh.CertAlgoECDSA384v01, ssh.CertAlgoECDSA521v01, ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoED25519}},
	} {
		kh := filepath.Join(dir, strings.ReplaceAll(tc.setting, " ", "_"))
		if err := os.WriteFile(kh, []byte(tc.knownHosts+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		keys, err := newHostKeys(HostKeyPolicy{KnownHostsFile: kh}, Hop{HostName: "vm", Port: 22, GlobalKnownHostsFiles: []string{"none"}})
		if err != nil {
			t.Fatal(err)
		}
		got := keys.algorithms()
		if len(got) != len(openSSHHostKeyAlgorithms) || !slices.Equal(got[:len(tc.first)], tc.first) {
			t.Errorf("%s: host key algorithms %q, want them to start %q", tc.setting, got, tc.first)
		}
	}
}

func TestHostCertificateChecks(t *testing.T) {
	ca, otherCA, hostKey := newTestSigner(t), newTestSigner(t), newTestKey(t)
	cert := func(principals []string, signer ssh.Signer, validFor time.Duration) *ssh.Certificate {
		c := &ssh.Certificate{Key: hostKey, CertType: ssh.HostCert, ValidPrincipals: principals,
			ValidAfter: uint64(time.Now().Add(-time.Hour).Unix()), ValidBefore: uint64(time.Now().Add(validFor).Unix())}
		if err := c.SignCert(rand.Reader, signer); err != nil {
			t.Fatal(err)
		}
		return c
	}
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, []byte("@cert-authority *.example.com "+authorizedLine(ca.PublicKey())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := &net.TCPAddr{IP: net.IPv4(198, 51, 100, 6), Port: 22}
	for _, tc := range []struct {
		what      string
		hop       Hop
		cert      *ssh.Certificate
		problem   string // "": accepted
		unvouched bool   // no problem said: not this CA's
	}{
		{"for the host", Hop{HostName: "vm.example.com"}, cert([]string{"vm.example.com"}, ca, time.Hour), "", false},
		{"for another host", Hop{HostName: "vm.example.com"}, cert([]string{"db.example.com"}, ca, time.Hour), "is for db.example.com, not vm.example.com", false},
		{"without principals", Hop{HostName: "vm.example.com"}, cert(nil, ca, time.Hour), "not vm.example.com", false},
		{"expired", Hop{HostName: "vm.example.com"}, cert([]string{"vm.example.com"}, ca, -time.Minute), "is not valid", false},
		{"from another CA", Hop{HostName: "vm.example.com"}, cert([]string{"vm.example.com"}, otherCA, time.Hour), "", true},
		{"for a host the CA line does not cover", Hop{HostName: "vm.example.org"}, cert([]string{"vm.example.org"}, ca, time.Hour), "", true},
		{"for the HostKeyAlias", Hop{HostName: "198.51.100.6", HostKeyAlias: "vm.example.com"}, cert([]string{"vm.example.com"}, ca, time.Hour), "", false},
	} {
		tc.hop.Port = 22
		tc.hop.GlobalKnownHostsFiles = []string{"none"}
		keys, err := newHostKeys(HostKeyPolicy{KnownHostsFile: kh}, tc.hop)
		if err != nil {
			t.Fatal(err)
		}
		err = keys.callback(tc.hop.Addr(), addr, tc.cert)
		var unknown *UnknownHostError
		switch {
		case tc.problem == "" && !tc.unvouched:
			if err != nil {
				t.Errorf("@cert-authority, certificate %s: %v", tc.what, err)
			}
		case !errors.As(err, &unknown) || unknown.Fingerprint != ssh.FingerprintSHA256(hostKey):
			t.Errorf("@cert-authority, certificate %s: want its key unknown, got %v", tc.what, err)
		case !strings.Contains(unknown.Certificate, tc.problem) || (tc.unvouched && unknown.Certificate != ""):
			t.Errorf("@cert-authority, certificate %s: problem %q, want %q", tc.what, unknown.Certificate, tc.problem)
		}
	}
}

func TestStrictHostKeyCheckingValues(t *testing.T) {
	for v, want := range map[string]string{"": "ask", "ask": "ask", "yes": "yes", "true": "yes", "accept-new": "accept-new", "no": "no", "off": "no", "false": "no", "Yes": "yes"} {
		if got, err := strictHostKeyChecking(v); got != want || err != nil {
			t.Errorf("StrictHostKeyChecking %q: %q %v, want %q", v, got, err, want)
		}
	}
	if _, err := strictHostKeyChecking("maybe"); err == nil || !strings.Contains(err.Error(), "StrictHostKeyChecking") {
		t.Errorf("StrictHostKeyChecking maybe: %v", err)
	}
}

func newTestSigner(t *testing.T) ssh.Signer {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newTestKey(t *testing.T) ssh.PublicKey { return newTestSigner(t).PublicKey() }

func newTestECDSA(t *testing.T) ssh.PublicKey {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ssh.NewPublicKey(&priv.PublicKey)
	return k
}

func newTestRSA(t *testing.T) ssh.PublicKey {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ssh.NewPublicKey(&priv.PublicKey)
	return k
}

func authorizedLine(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}
