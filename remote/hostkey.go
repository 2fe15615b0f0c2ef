package remote

import (
	"encoding/base64"
	"errors"
	"fmt"
	"iter"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyDecision is the operator's answer about an unknown host key.
type HostKeyDecision int

const (
	RejectHost HostKeyDecision = iota
	AcceptOnce
	AcceptAndRemember
)

// HostKeyPolicy says how unknown hosts are treated; a changed or revoked key is
// always refused. The hop's ssh_config settings (known_hosts files,
// HostKeyAlias, StrictHostKeyChecking, HashKnownHosts) apply as OpenSSH applies
// them; the policy's own values win over them.
type HostKeyPolicy struct {
	// KnownHostsFile, when set, replaces the hop's UserKnownHostsFile list
	// (OpenSSH's default ~/.ssh/known_hosts ~/.ssh/known_hosts2). The global
	// files are read either way; new keys go to the first user file.
	KnownHostsFile string
	// Pinned is a SHA256:... fingerprint that a first-contact key must have; any
	// of the server's host keys may be the pinned one. Such a key is remembered.
	Pinned string
	// AcceptNew remembers unknown hosts without asking (OpenSSH's accept-new).
	AcceptNew bool
	// Ask is asked about an unknown key when neither of the above decides; nil
	// refuses (headless).
	Ask func(host, keyType, fingerprint string) (HostKeyDecision, error)
	// NoRemember never writes known_hosts: a pinned key (or one Ask said to
	// remember) is trusted for this connection only and accept-new (here or in
	// ssh_config) refuses, for commands that promise to change nothing (doctor).
	NoRemember bool
}

// UnknownHostError: the host is not in known_hosts and nothing allowed it.
type UnknownHostError struct {
	Host, KeyType, Fingerprint string
	// Strict is ssh_config's StrictHostKeyChecking when it is why nobody was
	// asked ("yes") or worth saying ("no": treated as ask).
	Strict string
	// OtherTypes are key types known_hosts has for the host that the server did
	// not show: then a new key is never added unasked.
	OtherTypes []string
	// Certificate says why the server's host certificate did not vouch for it.
	Certificate string
}

func (e *UnknownHostError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "host %s is not in known_hosts (it offers %s key %s)", e.Host, e.KeyType, e.Fingerprint)
	if e.Certificate != "" {
		fmt.Fprintf(&b, "; %s", e.Certificate)
	}
	if len(e.OtherTypes) > 0 {
		fmt.Fprintf(&b, "; known_hosts has its %s key, which it did not show, so vm2mesh adds this one only when pinned or answered", strings.Join(e.OtherTypes, ", "))
	}
	switch e.Strict {
	case "yes":
		b.WriteString("; ssh_config's StrictHostKeyChecking yes forbids adding an unknown host (ssh refuses too): check the fingerprint on the VM's console, then set vm.hostKeyFingerprint to it, or add the key to known_hosts")
		return b.String()
	case "no":
		b.WriteString("; ssh_config's StrictHostKeyChecking no is treated as ask (vm2mesh never connects to an unknown host silently, and always refuses a changed key)")
	}
	b.WriteString(": check the fingerprint on the VM's console, then set vm.hostKeyFingerprint to it (or answer the prompt in the wizard)")
	return b.String()
}

// HostKeyChangedError: known_hosts has another key of the same type for the host.
type HostKeyChangedError struct {
	Host, KeyType, Fingerprint string
	KnownHosts                 string // the file with the old key
	Line                       int    // its line there (0: unknown)
	// Name is the host as known_hosts names it (HostKeyAlias, host, or
	// [host]:port); "" means Host's known_hosts form.
	Name string
}

func (e *HostKeyChangedError) Error() string {
	where := e.KnownHosts
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d", e.KnownHosts, e.Line)
	}
	name := e.Name
	if name == "" {
		name = knownhosts.Normalize(e.Host)
	}
	return fmt.Sprintf(`@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
The %s host key for %s has changed; it is now %s.
The old key is in %s.
vm2mesh refuses to connect. If the VM was reinstalled, remove its old key
(%s) and run again.`, e.KeyType, e.Host, e.Fingerprint, where, forgetCommand(name, e.KnownHosts))
}

// forgetCommand removes name's keys from a known_hosts file. ssh-keygen -R
// matches the name as written there (host on port 22, [host]:port otherwise,
// or the HostKeyAlias), hashed entries too; -f names the file, which need not
// be the default one. Quoted so that a shell does not glob the brackets.
func forgetCommand(name, file string) string {
	cmd := "ssh-keygen -R " + Quote(name)
	if file != "" {
		cmd += " -f " + Quote(file)
	}
	return cmd
}

// FingerprintMismatchError: none of the host's keys is the pinned one.
type FingerprintMismatchError struct {
	Host, Pinned string
	Offered      string   // the first key's fingerprint
	Shown        []string // every key the server showed: "TYPE SHA256:..."
}

func (e *FingerprintMismatchError) Error() string {
	shown := e.Shown
	if len(shown) == 0 {
		shown = []string{e.Offered}
	}
	return fmt.Sprintf("host %s offers keys %s, but vm.hostKeyFingerprint pins %s: refusing to connect; compare the pin with ssh-keygen -lf on the VM's /etc/ssh/ssh_host_*_key.pub",
		e.Host, strings.Join(shown, ", "), e.Pinned)
}

// RevokedHostKeyError: known_hosts marks the host's key, or the CA that signed
// its certificate, @revoked.
type RevokedHostKeyError struct {
	Host, KeyType, Fingerprint string
	KnownHosts                 string
	Line                       int
	CA                         bool // the revoked key is the certificate's CA
}

func (e *RevokedHostKeyError) Error() string {
	what, fix := "host key "+e.Fingerprint, "the VM needs a new host key"
	if e.CA {
		what, fix = "host certificate's CA (for key "+e.Fingerprint+")", "the VM needs a certificate from another CA"
	}
	return fmt.Sprintf("WARNING: REVOKED HOST KEY DETECTED: the %s %s of %s is marked @revoked in %s:%d, so vm2mesh refuses it as ssh does (a stolen key may be impersonating the VM): %s; remove the @revoked line only if the revocation is a mistake",
		e.KeyType, what, e.Host, e.KnownHosts, e.Line, fix)
}

// hostKeys verifies one hop's host key across the handshake rounds of a Dial.
type hostKeys struct {
	policy HostKeyPolicy
	// name is how known_hosts names the hop: HostKeyAlias, else host on port
	// 22 and [host]:port otherwise. portless is the host alone for another
	// port without an alias, where ssh also accepts a key known without the
	// port.
	name, portless string
	principal      string // a host certificate must name it: HostKeyAlias or HostName
	strict         string // yes, accept-new, ask or no
	hash           bool
	userFiles      []string // the first gets new keys; none: not remembered
	files          []string // user then global, as read

	mu    sync.Mutex
	known knownHosts
	// What the rounds learnt: the keys the server showed, the server's host
	// key algorithms (once a round offered none of them), the last mismatch.
	shown      []ssh.PublicKey
	serverAlgs []string
	mismatch   *FingerprintMismatchError
	round      int
}

// newHostKeys is the host key verification for one hop, by its known_hosts
// settings and the policy.
func newHostKeys(p HostKeyPolicy, hop Hop) (*hostKeys, error) {
	strict, err := strictHostKeyChecking(hop.StrictHostKeyChecking)
	if err != nil {
		return nil, err
	}
	user := hop.UserKnownHostsFiles
	if p.KnownHostsFile != "" {
		user = []string{p.KnownHostsFile}
	} else if len(user) == 0 {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("no home directory for ~/.ssh/known_hosts (%v): set vm.knownHostsFile", err)
		}
		user = []string{filepath.Join(home, ".ssh", "known_hosts"), filepath.Join(home, ".ssh", "known_hosts2")}
	}
	global := hop.GlobalKnownHostsFiles
	if len(global) == 0 {
		global = []string{"/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"}
	}
	h := &hostKeys{
		policy:    p,
		strict:    strict,
		hash:      hop.HashKnownHosts,
		userFiles: knownHostsFiles(user),
		principal: strings.ToLower(hop.HostName),
	}
	h.files = append(slices.Clone(h.userFiles), knownHostsFiles(global)...)
	if hop.HostKeyAlias != "" {
		h.name, h.principal = hop.HostKeyAlias, hop.HostKeyAlias
	} else {
		h.name = strings.ToLower(knownhosts.Normalize(hop.Addr()))
		if hop.Port != 22 && hop.Port != 0 {
			h.portless = strings.ToLower(hop.HostName)
		}
	}
	h.known, err = readKnownHosts(h.files)
	return h, err
}

// knownHostsFiles are the files of a UserKnownHostsFile or
// GlobalKnownHostsFile list, ~ expanded; "none" is no file.
func knownHostsFiles(list []string) []string {
	var out []string
	for _, f := range list {
		if f != "" && !strings.EqualFold(f, "none") {
			out = append(out, ExpandHome(f))
		}
	}
	return out
}

// strictHostKeyChecking reads ssh_config's StrictHostKeyChecking as ssh does
// (ssh -G prints yes as "true" and no/off as "false"); no/off become "no",
// which vm2mesh treats as ask.
func strictHostKeyChecking(v string) (string, error) {
	switch strings.ToLower(v) {
	case "", "ask":
		return "ask", nil
	case "yes", "true":
		return "yes", nil
	case "accept-new":
		return "accept-new", nil
	case "no", "off", "false":
		return "no", nil
	}
	return "", fmt.Errorf("ssh_config's StrictHostKeyChecking %q is none of yes, accept-new, ask, no, off: fix it in ssh_config", v)
}

// openSSHHostKeyAlgorithms is ssh's default HostKeyAlgorithms, in its order,
// without the FIDO (sk-) kinds that no sshd uses as host keys.
var openSSHHostKeyAlgorithms = []string{
	ssh.CertAlgoED25519v01, ssh.CertAlgoECDSA256v01, ssh.CertAlgoECDSA384v01, ssh.CertAlgoECDSA521v01,
	ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01,
	ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
	ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256,
}

// keyFamilies group the plain algorithms by the kind of key a server has: a
// pin is searched for one family per round.
var keyFamilies = [][]string{
	{ssh.KeyAlgoED25519},
	{ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521},
	{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256},
}

// keyType is the plain key type an algorithm's key has (ssh-rsa for
// rsa-sha2-*, the certified key's for a certificate).
func keyType(algorithm string) string {
	switch algorithm {
	case ssh.CertAlgoED25519v01:
		return ssh.KeyAlgoED25519
	case ssh.CertAlgoECDSA256v01:
		return ssh.KeyAlgoECDSA256
	case ssh.CertAlgoECDSA384v01:
		return ssh.KeyAlgoECDSA384
	case ssh.CertAlgoECDSA521v01:
		return ssh.KeyAlgoECDSA521
	case ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256:
		return ssh.KeyAlgoRSA
	}
	return algorithm
}

func isCertAlgorithm(algorithm string) bool { return strings.Contains(algorithm, "-cert-v01@") }

// algorithms are the host key algorithms to offer, ordered as ssh orders
// them: its default list as is when known_hosts has a key of its first kind;
// otherwise the kinds known_hosts has keys for first (every certificate kind
// when a @cert-authority line applies), the rest after in default order. So a
// new host shows its ED25519 key, and a known one the kind already known.
func (h *hostKeys) algorithms() []string {
	known, ca := map[string]bool{}, false
	for _, e := range h.known.named(h.name) {
		switch e.marker {
		case markerNone:
			known[e.key.Type()] = true
		case markerCA:
			ca = true
		}
	}
	all := openSSHHostKeyAlgorithms
	if known[keyType(all[0])] {
		return slices.Clone(all)
	}
	var first, last []string
	for _, alg := range all {
		if (ca && isCertAlgorithm(alg)) || known[keyType(alg)] {
			first = append(first, alg)
		} else {
			last = append(last, alg)
		}
	}
	return append(first, last...)
}

// rounds are the host key algorithms to offer, one list per handshake: ssh's
// list first; then, while a pin matches none of the keys shown, one family of
// keys per round (in the first list's order) that the server has and has not
// shown yet, so the pin may name any of its keys.
func (h *hostKeys) rounds() iter.Seq[[]string] {
	return func(yield func([]string) bool) {
		h.mu.Lock()
		first := h.algorithms()
		h.mu.Unlock()
		if !yield(first) {
			return
		}
		// Families in the first list's order: known kinds first.
		position := func(family []string) int {
			return slices.IndexFunc(first, func(a string) bool { return slices.Contains(family, a) })
		}
		families := slices.Clone(keyFamilies)
		slices.SortStableFunc(families, func(a, b []string) int { return position(a) - position(b) })
		for _, family := range families {
			h.mu.Lock()
			h.round++
			skip := h.shownFamily(family) || (h.serverAlgs != nil && !slices.ContainsFunc(family, func(a string) bool { return slices.Contains(h.serverAlgs, a) }))
			h.mu.Unlock()
			if skip {
				continue
			}
			if !yield(family) {
				return
			}
		}
	}
}

func (h *hostKeys) shownFamily(family []string) bool {
	for _, k := range h.shown {
		if slices.ContainsFunc(family, func(a string) bool { return keyType(a) == k.Type() }) {
			return true
		}
	}
	return false
}

// again says whether another round may do better than this one's err: the
// pin was not the key shown, or (after ssh's list) the server has no key of
// the family offered; the latter error lists the algorithms it has.
func (h *hostKeys) again(err error) bool {
	var mismatch *FingerprintMismatchError
	if errors.As(err, &mismatch) {
		return true
	}
	var none *ssh.AlgorithmNegotiationError
	if errors.As(err, &none) && none.What == "host key" {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.round > 0 {
			h.serverAlgs = none.RequestedAlgorithms
			return true
		}
	}
	return false
}

// noMatch is the error after the last round: the pin matched none of the keys
// shown in all of them.
func (h *hostKeys) noMatch(last error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mismatch != nil {
		return h.mismatch
	}
	return last
}

func (h *hostKeys) callback(hostname string, _ net.Addr, key ssh.PublicKey) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	plain := key
	cert, isCert := key.(*ssh.Certificate)
	if isCert {
		plain = cert.Key
	}
	fp := ssh.FingerprintSHA256(plain)
	if !slices.ContainsFunc(h.shown, func(k ssh.PublicKey) bool { return sameKey(k, plain) }) {
		h.shown = append(h.shown, plain)
	}
	if e := h.known.revoked(h.name, plain); e != nil {
		return &RevokedHostKeyError{Host: hostname, KeyType: plain.Type(), Fingerprint: fp, KnownHosts: e.file, Line: e.line}
	}
	var certProblem string
	if isCert {
		if e := h.known.revoked(h.name, cert.SignatureKey); e != nil {
			return &RevokedHostKeyError{Host: hostname, KeyType: plain.Type(), Fingerprint: fp, KnownHosts: e.file, Line: e.line, CA: true}
		}
		var vouched bool
		if vouched, certProblem = h.checkCertificate(cert); vouched {
			return nil
		}
		// As ssh does, a certificate no trusted CA vouches for is checked as
		// the plain key it certifies.
	}
	found, changed, others := h.known.lookup(h.name, plain)
	if found == nil && changed == nil && h.portless != "" {
		// ssh accepts a key known for the host without its port, read-only.
		found, _, _ = h.known.lookup(h.portless, plain)
	}
	if found != nil {
		return nil
	}
	if changed != nil {
		return &HostKeyChangedError{Host: hostname, KeyType: plain.Type(), Fingerprint: fp, KnownHosts: changed.file, Line: changed.line, Name: h.name}
	}
	return h.unknown(hostname, plain, others, certProblem)
}

// unknown decides about a key known_hosts does not have: the pin, then
// accept-new (the policy's or ssh_config's), then StrictHostKeyChecking yes,
// then the prompt.
func (h *hostKeys) unknown(hostname string, key ssh.PublicKey, others []string, certProblem string) error {
	fp := ssh.FingerprintSHA256(key)
	refusal := &UnknownHostError{Host: hostname, KeyType: key.Type(), Fingerprint: fp, OtherTypes: others, Certificate: certProblem}
	if h.strict == "no" {
		refusal.Strict = "no"
	}
	decision := RejectHost
	switch {
	case h.policy.Pinned != "":
		if fp != h.policy.Pinned {
			h.mismatch = &FingerprintMismatchError{Host: hostname, Pinned: h.policy.Pinned, Offered: ssh.FingerprintSHA256(h.shown[0])}
			for _, k := range h.shown {
				h.mismatch.Shown = append(h.mismatch.Shown, k.Type()+" "+ssh.FingerprintSHA256(k))
			}
			return h.mismatch
		}
		decision = AcceptAndRemember
		if h.policy.NoRemember {
			decision = AcceptOnce
		}
	case (h.policy.AcceptNew || h.strict == "accept-new") && len(others) == 0 && !h.policy.NoRemember:
		decision = AcceptAndRemember
	case h.strict == "yes":
		refusal.Strict = "yes"
		return refusal
	case h.policy.Ask != nil:
		var notes []string
		if certProblem != "" {
			notes = append(notes, certProblem)
		}
		if len(others) > 0 {
			notes = append(notes, "known_hosts has its "+strings.Join(others, ", ")+" key, which it did not show")
		}
		if h.strict == "no" {
			notes = append(notes, "ssh_config's StrictHostKeyChecking no is treated as ask; a changed key is always refused")
		}
		host := hostname
		if len(notes) > 0 {
			host += " (" + strings.Join(notes, "; ") + ")"
		}
		var err error
		if decision, err = h.policy.Ask(host, key.Type(), fp); err != nil {
			return err
		}
	}
	switch decision {
	case AcceptOnce:
		return nil
	case AcceptAndRemember:
		if h.policy.NoRemember {
			return nil // whoever decided, nothing is written
		}
		return h.remember(key)
	}
	return refusal
}

// checkCertificate: is the host certificate signed by a CA a @cert-authority
// line trusts for this host, for this host (its principals name it), and
// valid now? A problem is said only when such a CA signed it.
func (h *hostKeys) checkCertificate(cert *ssh.Certificate) (bool, string) {
	ca := h.known.authority(h.name, cert.SignatureKey)
	if ca == nil {
		return false, ""
	}
	from := fmt.Sprintf("its host certificate from the CA in %s:%d", ca.file, ca.line)
	if cert.CertType != ssh.HostCert {
		return false, from + " is not a host certificate"
	}
	// x/crypto accepts a certificate without principals for any name; ssh
	// host certificates name their hosts, so must this one.
	if !slices.Contains(cert.ValidPrincipals, h.principal) {
		return false, fmt.Sprintf("%s is for %s, not %s", from, strings.Join(cert.ValidPrincipals, ", "), h.principal)
	}
	var checker ssh.CertChecker
	if err := checker.CheckCert(h.principal, cert); err != nil {
		return false, fmt.Sprintf("%s is not valid: %v", from, err)
	}
	return true, ""
}

// remember appends the key to the first user known_hosts file (created 0600
// in a 0700 directory), under the hop's known_hosts name, hashed when
// HashKnownHosts says so. Without a user file (UserKnownHostsFile none) it is
// trusted for this connection only, as ssh does.
func (h *hostKeys) remember(key ssh.PublicKey) error {
	if len(h.userFiles) == 0 {
		return nil
	}
	file := h.userFiles[0]
	name := h.name
	if h.hash {
		name = xknownhosts.HashHostname(name)
	}
	line := name + " " + key.Type() + " " + base64.StdEncoding.EncodeToString(key.Marshal()) + "\n"
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("remembering the host key: %w", err)
	}
	f, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("remembering the host key: %w", err)
	}
	// A last line without its newline would swallow ours.
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err == nil && last[0] != '\n' {
			line = "\n" + line
		}
	}
	_, werr := f.WriteString(line)
	if err := errors.Join(werr, f.Close()); err != nil {
		return fmt.Errorf("remembering the host key in %s: %w", file, err)
	}
	h.known, err = readKnownHosts(h.files)
	return err
}
