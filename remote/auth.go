package remote

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Authentication, per hop, in OpenSSH's order (sshconnect2.c): public keys,
// then keyboard-interactive, then password. Keys go to every hop; the
// password and keyboard-interactive answers go to the VM alone.
//
// Public keys are offered one at a time, in the order pubkey_prepare gives
// them:
//  1. certificates named by CertificateFile,
//  2. agent keys that a configured IdentityFile (or its -cert.pub) names,
//  3. the agent's other keys, unless IdentitiesOnly,
//  4. the configured files the agent does not hold.
//
// A file's private half is read only when the server has accepted its public
// half, so a passphrase is asked only for a key that would get us in.

// passphrasePrompts is OpenSSH's NumberOfPasswordPrompts default.
const passphrasePrompts = 3

// errUnauthenticated: every method was tried, none got in.
var errUnauthenticated = errors.New("ssh: unable to authenticate")

// errNoPassphrase: an encrypted key that nobody could unlock; the login goes on
// without it.
var errNoPassphrase = errors.New("encrypted, no passphrase given")

// errPassphraseNotGiven: Options.Passphrase was asked and failed.
var errPassphraseNotGiven = errors.New("encrypted, passphrase not given")

// authenticator is one handshake's authentication: it hands the SSH client
// one method after another (ClientConfig.AuthCallback) and remembers what it
// offered, for the error when nothing gets in.
type authenticator struct {
	hop  Hop
	jump bool
	o    Options

	started bool     // the server has said which methods it accepts
	allowed []string // what it accepted last

	prepared  bool
	ids       []*identity
	pos       int // next identity to offer
	agentName string
	agentConn net.Conn // closed by close
	agentNote string   // why the agent gave no keys, when it did not
	leftOut   int      // agent keys IdentitiesOnly kept back
	loaded    map[string]loadedKey

	kbdTried, passwordTried bool
	password                func() (string, error)
	kbdNote, passwordNote   string // why no answer or password was sent
	unanswered              error
	noPassphrase            []string // files skipped for lack of a passphrase
}

// stepError is what our own callbacks fail a method with (a key left locked,
// a password not given): the client goes on to the next method, and explain
// tells it from a failure of the connection.
type stepError struct{ err error }

func (e *stepError) Error() string { return e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

// identity is one public key to offer: from the agent, a file, or a
// certificate paired with either.
type identity struct {
	label string        // as the operator knows it: a file name, or "agent"
	pub   ssh.PublicKey // nil: only the (encrypted) private file knows it
	file  string        // private key file, for keys the agent does not sign
	agent ssh.Signer    // set when the agent holds this very key (or certificate)
	// cert is set for a certificate that another identity's key signs for.
	cert    *ssh.Certificate
	key     *identity // the key cert certifies
	sibling string    // KEY of KEY-cert.pub, when the certificate lies beside it
	// agentOnly: one of the agent's keys that no configured file names.
	agentOnly bool
	status    string // "": not offered; "offered"; else why it failed
}

type loadedKey struct {
	signer ssh.Signer
	err    error
}

func newAuthenticator(hop Hop, jump bool, o Options) *authenticator {
	a := &authenticator{hop: hop, jump: jump, o: o, loaded: map[string]loadedKey{}}
	if !jump && o.Password != nil {
		// Asked once: keyboard-interactive and password share the answer, and
		// only the VM's handshake (one a Dial) gets this far.
		a.password = sync.OnceValues(func() (string, error) { return o.Password(hop.User, hop.HostName) })
	}
	return a
}

// next is the ClientConfig.AuthCallback: the next thing to try that the
// server accepts, or nil when there is nothing left.
func (a *authenticator) next(ctx *ssh.ClientAuthContext) (ssh.AuthMethod, error) {
	a.started = true
	a.allowed = ctx.AllowedMethods
	if slices.Contains(ctx.AllowedMethods, "publickey") {
		a.prepare()
		for a.pos < len(a.ids) {
			id := a.ids[a.pos]
			a.pos++
			if id.status != "" { // skipped when prepared
				continue
			}
			id.status = "offered"
			return a.publicKey(id), nil
		}
	}
	// The password is the VM's: a jump host offered it could keep it.
	if a.jump {
		return nil, nil
	}
	// OpenSSH asks keyboard-interactive before password.
	if !a.kbdTried && (a.password != nil || a.o.Question != nil) && slices.Contains(ctx.AllowedMethods, "keyboard-interactive") {
		a.kbdTried = true
		return ssh.KeyboardInteractive(a.answer), nil
	}
	if !a.passwordTried && a.password != nil && slices.Contains(ctx.AllowedMethods, "password") {
		a.passwordTried = true
		return ssh.PasswordCallback(func() (string, error) {
			pw, err := a.password()
			if err != nil {
				a.passwordNote = "not given: " + err.Error()
				return "", &stepError{err}
			}
			return pw, nil
		}), nil
	}
	return nil, nil
}

func (a *authenticator) answer(_, instruction string, questions []string, echos []bool) ([]string, error) {
	answers := make([]string, len(questions))
	for i, q := range questions {
		var err error
		switch {
		case a.password != nil && isPasswordPrompt(q, echos[i]):
			answers[i], err = a.password()
		case a.o.Question != nil:
			answers[i], err = a.o.Question(a.hop.User, a.hop.HostName, instruction, q, echos[i])
		default:
			err = &UnansweredError{Host: a.hop.String(), Question: q}
			a.unanswered = err
		}
		if err != nil {
			a.kbdNote = "not answered: " + err.Error()
			return nil, &stepError{err}
		}
	}
	return answers, nil
}

// publicKey offers one identity. Its private half is read only when the
// server accepts the public half (then the x/crypto client signs).
func (a *authenticator) publicKey(id *identity) ssh.AuthMethod {
	return ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		load := func() (ssh.Signer, error) {
			s, err := a.signer(id)
			if err != nil {
				id.status = err.Error()
				return nil, &stepError{err}
			}
			return s, nil
		}
		if id.pub == nil {
			// No public half to ask about: the private key is read (and its
			// passphrase asked) first, as OpenSSH does.
			s, err := load()
			if err != nil {
				return nil, err
			}
			return []ssh.Signer{s}, nil
		}
		return []ssh.Signer{&lazySigner{pub: id.pub, load: load}}, nil
	})
}

// signer is what signs for id: the agent, a certificate over its key's
// signer, or the private key file.
func (a *authenticator) signer(id *identity) (ssh.Signer, error) {
	switch {
	case id.agent != nil:
		return id.agent, nil
	case id.cert != nil:
		s, err := a.signer(id.key)
		if err != nil {
			return nil, err
		}
		return ssh.NewCertSigner(id.cert, s)
	default:
		return a.privateKey(id.file)
	}
}

// privateKey reads a key file once a handshake, asking its passphrase when it
// is encrypted.
func (a *authenticator) privateKey(path string) (ssh.Signer, error) {
	if k, ok := a.loaded[path]; ok {
		return k.signer, k.err
	}
	s, err := a.readPrivateKey(path)
	a.loaded[path] = loadedKey{s, err}
	if errors.Is(err, errNoPassphrase) || errors.Is(err, errPassphraseNotGiven) {
		a.noPassphrase = append(a.noPassphrase, path)
	}
	return s, err
}

func (a *authenticator) readPrivateKey(path string) (ssh.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("unreadable: %v", unwrapPathError(err))
	}
	s, err := ssh.ParsePrivateKey(data)
	var missing *ssh.PassphraseMissingError
	if !errors.As(err, &missing) {
		if err != nil {
			return nil, fmt.Errorf("not a private key: %v", err)
		}
		return s, nil
	}
	if a.o.Passphrase == nil {
		return nil, errNoPassphrase
	}
	for range passphrasePrompts {
		pw, err := a.o.Passphrase(path)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errPassphraseNotGiven, err)
		}
		if pw == "" { // OpenSSH: an empty answer means try the next key
			return nil, errNoPassphrase
		}
		s, err := ssh.ParsePrivateKeyWithPassphrase(data, []byte(pw))
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, x509.IncorrectPasswordError) {
			return nil, fmt.Errorf("encrypted, cannot decrypt: %v", err)
		}
	}
	return nil, errors.New("encrypted, wrong passphrase")
}

// prepare lists the identities to offer, in OpenSSH's order.
func (a *authenticator) prepare() {
	if a.prepared {
		return
	}
	a.prepared = true
	files := a.fileIdentities()
	var certs []*identity
	for _, f := range a.hop.CertificateFiles {
		c, _ := certificateFile(ExpandHome(f))
		certs = append(certs, c)
	}
	var held, others []*identity
	for _, s := range a.agentKeys() {
		if id := withKey(files, s.PublicKey()); id != nil && id.agent == nil {
			id.agent = s
			id.label += " (in the agent)"
			held = append(held, id)
			continue
		}
		if a.hop.IdentitiesOnly {
			a.leftOut++
			continue
		}
		others = append(others, &identity{label: "agent", pub: s.PublicKey(), agent: s, agentOnly: true})
	}
	a.ids = append(a.ids, certs...)
	a.ids = append(a.ids, held...)
	a.ids = append(a.ids, others...)
	for _, id := range files {
		if id.agent == nil {
			a.ids = append(a.ids, id)
		}
	}
	a.pairCertificates()
}

// fileIdentities are the IdentityFile keys (OpenSSH's defaults when none is
// configured), each followed by its KEY-cert.pub when there is one.
func (a *authenticator) fileIdentities() []*identity {
	files, configured := a.hop.IdentityFiles, true
	if len(files) == 0 {
		files, configured = DefaultIdentityFiles(), false
	}
	var ids []*identity
	seen := map[string]bool{}
	for _, f := range files {
		f = ExpandHome(f)
		if seen[f] {
			continue
		}
		seen[f] = true
		id := &identity{label: tildePath(f), file: f}
		pub, err := publicKeyOf(f)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if !configured {
				continue
			}
			id.status = "no such file"
		case err != nil:
			id.status = err.Error()
		default:
			id.pub = pub
		}
		ids = append(ids, id)
		if c, err := certificateFile(f + "-cert.pub"); !errors.Is(err, os.ErrNotExist) {
			c.sibling = f
			ids = append(ids, c)
		}
	}
	return ids
}

// certificateFile reads a user certificate; its key is found later. A
// certificate that cannot be used has its status say why.
func certificateFile(path string) (*identity, error) {
	id := &identity{label: "certificate " + tildePath(path)}
	data, err := os.ReadFile(path)
	if err != nil {
		id.status = unwrapPathError(err).Error()
		return id, err
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		id.status = "not a certificate: " + err.Error()
		return id, err
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok || cert.CertType != ssh.UserCert {
		id.status = "not a user certificate"
		return id, errors.New(id.status)
	}
	id.pub, id.cert = cert, cert
	return id, nil
}

// pairCertificates finds each certificate's key: an identity with that
// public key, else the private file it lies beside. A certificate whose key
// is nowhere is skipped.
func (a *authenticator) pairCertificates() {
	for _, c := range a.ids {
		if c.cert == nil || c.agent != nil || c.status != "" {
			continue
		}
		for _, k := range a.ids {
			if k.cert == nil && k.pub != nil && bytes.Equal(k.pub.Marshal(), c.cert.Key.Marshal()) {
				c.key = k
				break
			}
		}
		if c.key == nil && c.sibling != "" {
			c.key = &identity{file: c.sibling}
		}
		if c.key == nil {
			c.status = "its key is in no IdentityFile and not in the agent"
		}
	}
}

// withKey is the identity among ids whose public key is pub.
func withKey(ids []*identity, pub ssh.PublicKey) *identity {
	for _, id := range ids {
		if id.pub != nil && bytes.Equal(id.pub.Marshal(), pub.Marshal()) {
			return id
		}
	}
	return nil
}

// publicKeyOf reads an identity's public key as OpenSSH does: the file
// itself when it is a public key, FILE.pub, or the private file (whose
// OpenSSH format keeps the public half readable when encrypted). A nil key
// with no error: only the passphrase tells.
func publicKeyOf(path string) (ssh.PublicKey, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		// A key the agent or a token holds may be named by its .pub alone.
		if pub, perr := readPublicKey(path + ".pub"); perr == nil {
			return pub, nil
		}
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("unreadable: %v", unwrapPathError(err))
	}
	if pub, _, _, _, err := ssh.ParseAuthorizedKey(data); err == nil {
		return pub, nil
	}
	if pub, err := readPublicKey(path + ".pub"); err == nil {
		return pub, nil
	}
	s, err := ssh.ParsePrivateKey(data)
	var missing *ssh.PassphraseMissingError
	switch {
	case err == nil:
		return s.PublicKey(), nil
	case errors.As(err, &missing):
		return missing.PublicKey, nil
	default:
		return nil, fmt.Errorf("not a key: %v", err)
	}
}

func readPublicKey(path string) (ssh.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
	return pub, err
}

// agentKeys lists the agent's keys (certificates too, as they come), keeping
// the connection for signing until close.
func (a *authenticator) agentKeys() []ssh.Signer {
	sock, name := agentSocket(a.hop.IdentityAgent)
	a.agentName = name
	if sock == "" {
		return nil
	}
	conn, err := net.DialTimeout("unix", sock, a.timeout())
	if err != nil {
		a.agentNote = fmt.Sprintf("unreachable: %v", err)
		return nil
	}
	// An agent that hangs must not hold the login past the handshake's time.
	_ = conn.SetDeadline(time.Now().Add(a.timeout()))
	a.agentConn = conn
	signers, err := agent.NewClient(conn).Signers()
	if err != nil {
		a.agentNote = fmt.Sprintf("cannot list its keys: %v", err)
		return nil
	}
	if len(signers) == 0 {
		a.agentNote = "no keys"
	}
	return signers
}

func (a *authenticator) timeout() time.Duration {
	if a.o.Timeout > 0 {
		return a.o.Timeout
	}
	return 20 * time.Second
}

// agentSocket reads IdentityAgent as ssh_config(5) says: "" (unset) and
// SSH_AUTH_SOCK mean that variable, "none" no agent, $VAR another variable,
// anything else the socket's path. name is how the error shows it.
func agentSocket(setting string) (sock, name string) {
	switch {
	case setting == "" || setting == "SSH_AUTH_SOCK":
		return os.Getenv("SSH_AUTH_SOCK"), ""
	case strings.EqualFold(setting, "none"):
		return "", "none"
	case strings.HasPrefix(setting, "$"):
		return os.Getenv(setting[1:]), setting
	default:
		return ExpandHome(setting), setting
	}
}

// close ends the agent connection; nothing signs after the handshake.
func (a *authenticator) close() {
	if a.agentConn != nil {
		a.agentConn.Close()
		a.agentConn = nil
	}
}

// explain adds to a failed handshake's error what was tried, once the server
// had asked us to log in (before, the failure is not about credentials).
func (a *authenticator) explain(err error) error {
	if err == nil || !a.started {
		return err
	}
	e := &AuthError{Tried: a.tried(), Accepted: a.allowed, Err: err}
	var step *stepError
	switch {
	case a.unanswered != nil:
		// The question is what stopped us, whatever was tried after it.
		e.Err = a.unanswered
	case errors.As(err, &step) || strings.Contains(err.Error(), "ssh: unable to authenticate"):
		// Tried says it better than the client's list of method names, and
		// holds the last method's own reason.
		e.Err = errUnauthenticated
	}
	var hints []string
	if len(a.noPassphrase) > 0 {
		hints = append(hints, fmt.Sprintf("a key was skipped for lack of a passphrase: load it into the ssh-agent (ssh-add %s) or run where its passphrase can be asked", tildePath(a.noPassphrase[0])))
	}
	if strings.Contains(err.Error(), "Too many authentication failures") {
		hints = append(hints, "the server stops after a few keys (MaxAuthTries): name the right key by IdentityFile and set IdentitiesOnly yes")
	}
	e.Hint = strings.Join(hints, "; ")
	return e
}

// tried lists, in order, what was offered or skipped; never a secret.
func (a *authenticator) tried() []string {
	var out []string
	agentAt, agentKeys, notReached := -1, 0, 0
	for _, id := range a.ids {
		switch {
		case id.status == "":
			notReached++
		case id.agentOnly:
			if agentAt < 0 {
				agentAt = len(out)
				out = append(out, "")
			}
			agentKeys++
		case id.status == "offered":
			out = append(out, id.label)
		default:
			out = append(out, id.label+" ("+id.status+")")
		}
	}
	agent := "agent"
	if a.agentName != "" {
		agent += " " + a.agentName
	}
	if agentAt >= 0 {
		out[agentAt] = fmt.Sprintf("%s (%s)", agent, plural(agentKeys, "key"))
	}
	switch {
	case a.leftOut > 0:
		out = append(out, fmt.Sprintf("%s (%s left out by IdentitiesOnly)", agent, plural(a.leftOut, "key")))
	case a.agentNote != "":
		out = append(out, fmt.Sprintf("%s (%s)", agent, a.agentNote))
	case a.prepared && a.agentName == "none":
		out = append(out, "no agent (IdentityAgent none)")
	case a.prepared && a.agentName == "" && os.Getenv("SSH_AUTH_SOCK") == "":
		out = append(out, "no agent ($SSH_AUTH_SOCK unset)")
	}
	if notReached > 0 {
		out = append(out, plural(notReached, "more key")+" not reached")
	}
	if a.prepared && len(a.ids) == 0 {
		out = append(out, "no key files")
	}
	if a.kbdTried {
		switch {
		case a.unanswered != nil:
			out = append(out, "keyboard-interactive (a question nobody could answer)")
		case a.kbdNote != "":
			out = append(out, "keyboard-interactive ("+a.kbdNote+")")
		default:
			out = append(out, "keyboard-interactive")
		}
	}
	if a.passwordTried {
		if a.passwordNote != "" {
			out = append(out, "password ("+a.passwordNote+")")
		} else {
			out = append(out, "password")
		}
	}
	if len(out) == 0 {
		out = append(out, "nothing")
	}
	return out
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// AuthError: no way we had of logging in was accepted. Tried says what was
// offered, in order, and why a key was skipped; it never holds a secret.
type AuthError struct {
	Tried    []string
	Accepted []string // the methods the server offered
	Hint     string
	Err      error
}

func (e *AuthError) Error() string {
	msg := fmt.Sprintf("%v; tried: %s", e.Err, strings.Join(e.Tried, ", "))
	if len(e.Accepted) > 0 {
		msg += "; the server accepts " + strings.Join(e.Accepted, ", ")
	}
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

func (e *AuthError) Unwrap() error { return e.Err }

// lazySigner reads the private key only when the server has accepted the
// public one.
type lazySigner struct {
	pub  ssh.PublicKey
	load func() (ssh.Signer, error)
}

func (l *lazySigner) PublicKey() ssh.PublicKey { return l.pub }

func (l *lazySigner) Sign(rand io.Reader, data []byte) (*ssh.Signature, error) {
	s, err := l.load()
	if err != nil {
		return nil, err
	}
	return s.Sign(rand, data)
}

func (l *lazySigner) SignWithAlgorithm(rand io.Reader, data []byte, algorithm string) (*ssh.Signature, error) {
	s, err := l.load()
	if err != nil {
		return nil, err
	}
	as, ok := s.(ssh.AlgorithmSigner)
	if !ok {
		return nil, fmt.Errorf("the key for %s cannot sign with %s", l.pub.Type(), algorithm)
	}
	return as.SignWithAlgorithm(rand, data, algorithm)
}

// isPasswordPrompt: only a hidden question about the password gets the password,
// never a one-time code or anything else the server thinks up.
func isPasswordPrompt(question string, echo bool) bool {
	return !echo && strings.Contains(strings.ToLower(question), "password")
}

// UnansweredError: the VM's login asked something that only the operator can
// answer, and there was no one to ask.
type UnansweredError struct {
	Host, Question string
}

func (e *UnansweredError) Error() string {
	return fmt.Sprintf("%s asks %q, which vm2mesh cannot answer headless: log in to the VM with a key instead (vm.identityFile or the ssh-agent)",
		e.Host, strings.TrimSpace(e.Question))
}

// tildePath shows a path under the home directory as ~/...
func tildePath(p string) string {
	home, err := os.UserHomeDir()
	if err != nil || home == "" || home == "/" {
		return p
	}
	if rel, err := filepath.Rel(home, p); err == nil && !strings.HasPrefix(rel, "..") && rel != "." {
		return "~/" + rel
	}
	return p
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
