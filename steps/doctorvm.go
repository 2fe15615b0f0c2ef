package steps

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vm2mesh/vm2mesh/k8s"
	"github.com/vm2mesh/vm2mesh/remote"
)

// The VM's half of doctor. Root runs only what reads root's own state (the
// package database, the process table, /etc/hosts, the nat table); the agent's
// files and logs are read as istio-proxy (asAgent), as apply does.

const fixVM = "run vm2mesh apply -f answers.yaml --only vm to put it back"

// clipped keeps what the VM said to one cleaned line of at most max runes.
func clipped(s string, max int) string {
	s = strings.Join(strings.Fields(remote.CleanText(s)), " ")
	if r := []rune(s); len(r) > max {
		return string(r[:max]) + "…"
	}
	return s
}

func checkSSH(ctx context.Context, d *doctor) CheckResult {
	env := d.env
	v := env.Settings.VM
	if v.Host == "" {
		return skipped("vm.host is not set in the answers file: no VM to check")
	}
	if errs := env.Settings.ValidateVM(); len(errs) > 0 {
		for _, e := range errs {
			if e.Key != "vm.package" { // doctor installs nothing
				return failed("fix the answers file", "%s: %s", e.Key, e.Problem)
			}
		}
	}
	// d.prompts ask for passwords at most: an unknown host is refused unless
	// pinned (trusted for this connection only, never written to known_hosts).
	if err := env.dialVM(ctx, d.prompts); err != nil {
		hint := HintOf(err)
		var unknown *remote.UnknownHostError
		if errors.As(err, &unknown) {
			hint = "doctor never remembers a host key: run vm2mesh apply first, or pin the key with vm.hostKeyFingerprint"
		}
		if hint == "" {
			hint = "check vm.host, vm.user and vm.identityFile (ssh to the VM as the answers file says)"
		}
		return failed(hint, "%s", clipped(err.Error(), 400))
	}
	f := env.Facts
	return ok("%s as %s: %s (%s, %s), root: %s", env.VM.Target.HostName, env.VM.Target.User, f.OS, f.Family, f.Arch, f.Root)
}

func checkPackage(ctx context.Context, d *doctor) CheckResult {
	env := d.env
	// dpkg keeps a removed package's version while its conffiles stay: only
	// "ii" (wanted and installed) counts.
	query := "dpkg-query -W -f '${db:Status-Abbrev}|${Version}' istio-sidecar 2>/dev/null"
	if env.Facts.Family == "rpm" {
		query = "rpm -q --qf 'ii |%{VERSION}-%{RELEASE}' istio-sidecar 2>/dev/null"
	}
	out, err := env.VM.RunRoot(ctx, query)
	status, version, _ := strings.Cut(out, "|")
	if strings.TrimSpace(status) != "ii" {
		version = ""
	}
	version = clipped(version, 80)
	var exit *remote.ExitError
	if errors.As(err, &exit) || (err == nil && version == "") {
		return failed("run vm2mesh apply -f answers.yaml --only vm to install it", "istio-sidecar is not installed")
	}
	if err != nil {
		return failed("check the connection to the VM", "reading the package database: %v", err)
	}
	istiod := env.Istiod.Version
	if istiod == "" {
		return ok("istio-sidecar %s (istiod's version unknown: not compared)", version)
	}
	if skew, known := k8s.MinorSkew(version, istiod); known && skew > 1 {
		return failed(fmt.Sprintf("install istio-sidecar %s (vm.package) and run vm2mesh apply --only vm", istiod),
			"istio-sidecar %s is more than one minor version from istiod %s", version, istiod)
	}
	return ok("istio-sidecar %s, istiod %s", version, istiod)
}

// placedFile checks one placed file: there, istio-proxy's, with its mode.
func placedFile(file string) func(context.Context, *doctor) CheckResult {
	return func(ctx context.Context, d *doctor) CheckResult {
		var target, mode string
		for _, p := range placement {
			if p.file == file {
				target, mode = p.target, strings.TrimPrefix(p.mode, "0")
			}
		}
		out, err := d.env.asAgent(ctx, "stat -c '%U %a %F' "+remote.Quote(target)+" 2>/dev/null || echo missing")
		if err != nil {
			return failed("check the connection to the VM", "reading %s as %s: %v", target, agentUser, clipped(err.Error(), 300))
		}
		got := strings.TrimSpace(out)
		want := agentUser + " " + mode + " regular file"
		switch {
		case got == "missing":
			return failed(fixVM, "%s is missing (or %s cannot reach it)", target, agentUser)
		case got == want, got == agentUser+" "+mode+" regular empty file":
			return ok("%s, %s, mode %s", target, agentUser, mode)
		case file == "root-cert.pem" && got == agentUser+" 600 regular file":
			// The agent rewrites it with the root its CA answered, 0600.
			return ok("%s, %s, mode 600 (as the agent rewrites it)", target, agentUser)
		}
		return failed(fixVM, "%s is %s; want %s, mode %s, a regular file", target, clipped(got, 100), agentUser, mode)
	}
}

// checkRootCert compares the VM's root cert with the cluster's (ConfigMap
// istio-ca-root-cert in the VM's namespace, as istiod writes it); without the
// cluster, with the work directory's copy, and says so.
func checkRootCert(ctx context.Context, d *doctor) CheckResult {
	s := d.env.Settings
	var cluster []byte
	source := ""
	if d.env.Client == nil {
		b, err := os.ReadFile(d.env.File("root-cert.pem"))
		if err != nil {
			return failed("see cluster-api: the cluster's CA could not be read", "no cluster to compare with, and %v", err)
		}
		cluster, source = b, "the cluster was not reached: compared with "+d.env.File("root-cert.pem")
	} else {
		cm, err := d.env.Client.ConfigMap(ctx, s.Namespace, "istio-ca-root-cert")
		if err != nil {
			return failed("istiod writes it into every namespace: check that istiod runs", "ConfigMap %s/istio-ca-root-cert: %v", s.Namespace, err)
		}
		cluster = []byte(cm.Data["root-cert.pem"])
	}
	have, err := d.env.asAgent(ctx, "cat /etc/certs/root-cert.pem")
	if err != nil {
		return failed(fixVM, "reading /etc/certs/root-cert.pem as %s: %v", agentUser, clipped(err.Error(), 300))
	}
	if !sameCertificates(cluster, []byte(have)) {
		what := "other bytes"
		if c := parseCertificates([]byte(have)); len(c) > 0 {
			what = "a certificate of " + c[0].Subject.String()
		}
		return failed("the agent would not trust istiod: run vm2mesh apply -f answers.yaml (it fetches the current root cert and places it)",
			"/etc/certs/root-cert.pem is not the cluster's CA (it holds %s)", what)
	}
	if source != "" {
		return warned("see cluster-api", "the same as the work directory's (%s)", source)
	}
	if c := parseCertificates(cluster); len(c) > 0 {
		return ok("the cluster's CA: %s, expires %s", c[0].Subject.String(), c[0].NotAfter.UTC().Format(time.RFC3339))
	}
	return ok("the same as ConfigMap %s/istio-ca-root-cert", s.Namespace)
}

// checkAgentCert reads the certificate the agent writes (istio-start.sh's
// OUTPUT_CERTS) and judges it by the root cert placed beside it.
func checkAgentCert(ctx context.Context, d *doctor) CheckResult {
	out, err := d.env.asAgent(ctx, "cat "+agentCertPath+" 2>/dev/null; echo; echo ----root; cat /etc/certs/root-cert.pem 2>/dev/null; true")
	if err != nil {
		return failed("check the connection to the VM", "reading %s as %s: %v", agentCertPath, agentUser, clipped(err.Error(), 300))
	}
	chainPEM, rootPEM, _ := strings.Cut(out, "----root")
	r := judgeAgentCert(chainPEM, rootPEM, d.env.Settings.Namespace, d.env.Settings.ServiceAccount)
	d.agentCertValid = r.Status == CheckOK
	return r
}

// judgeAgentCert reads the agent's certificate chain: its SPIFFE ID, issuer
// and expiry, verified by the root cert placed beside it.
func judgeAgentCert(chainPEM, rootPEM, namespace, serviceAccount string) CheckResult {
	if strings.TrimSpace(chainPEM) == "" {
		// The real agent writes one as soon as istiod signs: without one the VM
		// has no identity in the mesh.
		return failed("once the agent has joined it writes one there; if it runs, see vm-agent-log",
			"no certificate at %s: the agent has not written one", agentCertPath)
	}
	certs := parseCertificates([]byte(chainPEM))
	if len(certs) == 0 {
		return failed("move it aside and restart the agent: vm2mesh apply --only vm does both", "%s holds no certificate", agentCertPath)
	}
	leaf := certs[0]
	id := "no SPIFFE ID"
	for _, u := range leaf.URIs {
		if u.Scheme == "spiffe" {
			id = u.String()
		}
	}
	what := fmt.Sprintf("%s, issued by %s, expires %s", id, leaf.Issuer.String(), leaf.NotAfter.UTC().Format(time.RFC3339))
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(rootPEM)) {
		return warned("see vm-root-cert", "%s (not verified: /etc/certs/root-cert.pem holds no certificate)", what)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return failed("the agent renews before expiry, so it has stopped: restart it (vm2mesh apply --only vm)", "%s: expired", what)
	case err != nil:
		return failed("it is from another CA: run vm2mesh apply --only vm (it moves it aside and restarts the agent)", "%s: does not verify with root-cert.pem (%v)", what, err)
	}
	want := fmt.Sprintf("/ns/%s/sa/%s", namespace, serviceAccount)
	if !strings.HasSuffix(id, want) {
		return failed("the VM has another workload's identity: check namespace and serviceAccount, then vm2mesh apply", "%s: not ...%s", what, want)
	}
	return ok("%s", what)
}

// checkToken reads the token's claims (never the token itself) as the agent.
func checkToken(ctx context.Context, d *doctor) CheckResult {
	const file = "/var/run/secrets/tokens/istio-token"
	out, err := d.env.asAgent(ctx, "cat "+file)
	if err != nil {
		return failed(fixVM, "reading %s as %s failed", file, agentUser)
	}
	return judgeToken(out, d.agentCertValid, time.Now())
}

// judgeToken reads a token's audience and expiry; certValid: the agent holds a
// valid certificate, so an expired token is no longer needed.
func judgeToken(token string, certValid bool, now time.Time) CheckResult {
	const file = "/var/run/secrets/tokens/istio-token"
	var claims struct {
		Aud any     `json:"aud"`
		Exp float64 `json:"exp"`
		Sub string  `json:"sub"`
	}
	parts := strings.Split(strings.TrimSpace(token), ".")
	if len(parts) != 3 {
		return failed(fixVM, "%s is not a JWT", file)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(payload, &claims) != nil {
		return failed(fixVM, "%s has no readable claims", file)
	}
	var aud []string
	switch a := claims.Aud.(type) {
	case string:
		aud = []string{a}
	case []any:
		for _, x := range a {
			if s, ok := x.(string); ok {
				aud = append(aud, s)
			}
		}
	}
	if !slices.Contains(aud, "istio-ca") {
		return failed("istiod accepts only tokens for istio-ca: run vm2mesh apply -f answers.yaml to mint one", "audience %s, not istio-ca", strings.Join(aud, ", "))
	}
	exp := time.Unix(int64(claims.Exp), 0).UTC()
	left := exp.Sub(now).Round(time.Minute)
	switch {
	case exp.After(now):
		return ok("audience istio-ca, for %s, expires %s (in %s)", claims.Sub, exp.Format(time.RFC3339), left)
	case certValid:
		return ok("audience istio-ca, expired %s: fine, the agent has its certificate and renews with it", exp.Format(time.RFC3339))
	}
	return failed("the agent has no certificate to renew with: run vm2mesh apply -f answers.yaml (a fresh token) and it restarts the agent",
		"audience istio-ca, expired %s, and the agent has no valid certificate", exp.Format(time.RFC3339))
}

func checkAgentRunning(ctx context.Context, d *doctor) CheckResult {
	env := d.env
	line := "pgrep -f '" + agentPattern + "' >/dev/null"
	how := "its process"
	if env.Facts.Systemd {
		line, how = "systemctl is-active --quiet istio", "systemd unit istio"
	}
	_, err := env.VM.RunRoot(ctx, line)
	var exit *remote.ExitError
	if errors.As(err, &exit) {
		fix := "start it: vm2mesh apply -f answers.yaml --only vm"
		if env.Facts.Systemd {
			fix = "start it: systemctl start istio (journalctl -u istio says why it stopped)"
		}
		return failed(fix, "the agent is not running (%s)", how)
	}
	if err != nil {
		return failed("check the connection to the VM", "%v", err)
	}
	return ok("running (%s)", how)
}

func checkHostsLine(ctx context.Context, d *doctor) CheckResult {
	if d.hostsErr != nil {
		return failed(HintOf(d.hostsErr), "%v", d.hostsErr)
	}
	out, err := d.env.VM.RunRoot(ctx, hostsLineScript(d.istiodName))
	if err != nil {
		return failed("check the connection to the VM", "reading /etc/hosts: %v", err)
	}
	want := fmt.Sprintf("%s %s %s", d.gatewayIP, d.istiodName, hostsMark)
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	switch {
	case len(lines) == 0:
		return failed("the agent resolves istiod by it: "+fixVM, "/etc/hosts has no line for %s", d.istiodName)
	case len(lines) == 1 && lines[0] == want:
		return ok("%s", want)
	}
	return failed("/etc/hosts must send "+d.istiodName+" to the gateway "+d.gatewayIP+" only: "+fixVM,
		"/etc/hosts has %s for %s", clipped(strings.Join(lines, " | "), 200), d.istiodName)
}

func checkIstiodPort(ctx context.Context, d *doctor) CheckResult {
	if d.hostsErr != nil {
		return failed(HintOf(d.hostsErr), "%v", d.hostsErr)
	}
	if _, err := d.env.VM.Exec(ctx, remote.Cmd{Line: reachScript(d.gatewayIP), Root: true}); err != nil {
		return failed("the agent reaches istiod there: check the gateway address, routes and firewalls between the VM and the gateway",
			"%s:15012 does not answer from the VM (as %s)", d.gatewayIP, agentUser)
	}
	return ok("%s:15012 answers from the VM (as %s)", d.gatewayIP, agentUser)
}

// natRules is the VM's nat table as iptables -S prints it, from every iptables
// backend there (istio-iptables uses legacy where legacy already has rules, nft
// otherwise, whatever the default iptables is): root reading its own kernel's
// state. "" with a reason when it cannot be read.
func (d *doctor) natRules(ctx context.Context) (string, string) {
	out, err := d.env.VM.RunRoot(ctx, natRulesScript)
	switch {
	case err != nil:
		return "", "iptables -t nat -S failed: " + clipped(err.Error(), 200)
	case strings.TrimSpace(out) == "no iptables":
		return "", "the VM has no iptables command"
	}
	return out, ""
}

// natRulesScript prints the nat table of each iptables backend the VM has.
const natRulesScript = `found=
for b in iptables-legacy iptables-nft iptables; do
	command -v $b >/dev/null 2>&1 || continue
	found=1
	$b -t nat -S 2>/dev/null
done
[ -n "$found" ] || echo 'no iptables'`

// The chains istio-iptables makes for the agent.
var agentChains = []string{"ISTIO_OUTPUT", "ISTIO_REDIRECT", "ISTIO_IN_REDIRECT", "ISTIO_INBOUND"}

func checkIptables(ctx context.Context, d *doctor) CheckResult {
	const hint = "istio-start.sh runs istio-iptables as the agent starts: restart the agent (vm2mesh apply --only vm) and read istio.log if they stay missing"
	rules, why := d.natRules(ctx)
	if why != "" {
		return warned(hint, "cannot see the agent's traffic capture: %s", why)
	}
	return judgeChains(rules, hint)
}

// judgeChains reads iptables -t nat -S for the agent's chains.
func judgeChains(rules, hint string) CheckResult {
	var have, missing []string
	for _, c := range agentChains {
		if strings.Contains(rules, "-N "+c+"\n") || strings.HasSuffix(rules, "-N "+c) {
			have = append(have, c)
		} else {
			missing = append(missing, c)
		}
	}
	switch {
	case len(have) == 0:
		// istio-start.sh makes them before the agent starts: an agent started
		// otherwise captures nothing, and says nothing about it.
		return failed(hint, "no ISTIO_* chains in the nat table: the VM's traffic is not captured")
	case !slices.Contains(have, "ISTIO_OUTPUT"):
		return failed(hint, "the nat table has %s but not ISTIO_OUTPUT: outbound traffic is not captured", strings.Join(have, ", "))
	case len(missing) > 0:
		// The inbound chains exist only when ISTIO_INBOUND_PORTS captures some.
		return ok("%s in the nat table (not %s: no inbound capture)", strings.Join(have, ", "), strings.Join(missing, ", "))
	}
	return ok("%s in the nat table", strings.Join(have, ", "))
}

func checkDNSCapture(ctx context.Context, d *doctor) CheckResult {
	if !d.env.Settings.CaptureDNS {
		return skipped("captureDNS is off")
	}
	const hint = "with captureDNS on, istio-iptables sends DNS (port 53) to the agent's 15053: restart the agent (vm2mesh apply --only vm)"
	rules, why := d.natRules(ctx)
	if why != "" {
		return warned(hint, "cannot see DNS capture: %s", why)
	}
	return judgeDNS(rules, hint)
}

// judgeDNS reads iptables -t nat -S for the rule sending DNS to the agent.
func judgeDNS(rules, hint string) CheckResult {
	for _, l := range strings.Split(rules, "\n") {
		if f := strings.Fields(l); slices.Contains(f, "53") && slices.Contains(f, "15053") && slices.Contains(f, "--dport") {
			return ok("DNS redirected to the agent: %s", clipped(l, 160))
		}
	}
	if !strings.Contains(rules, "ISTIO_OUTPUT") {
		return failed(hint, "no DNS redirect rule (and no ISTIO_* chains at all)")
	}
	return failed(hint, "no rule redirects port 53 to the agent's 15053")
}

// checkAgentLog reads istio.log's tail as istio-proxy: the last error-level
// line fails when nothing better (a certificate line) followed it.
func checkAgentLog(ctx context.Context, d *doctor) CheckResult {
	out, err := d.env.asAgent(ctx, "tail -n 2000 "+agentLog+" 2>/dev/null || echo 'vm2mesh: no log'")
	if err != nil {
		return failed("check the connection to the VM", "reading %s as %s: %v", agentLog, agentUser, clipped(err.Error(), 300))
	}
	if strings.TrimSpace(out) == "vm2mesh: no log" {
		return warned("the agent writes it once started: see vm-agent", "%s does not exist", agentLog)
	}
	return judgeLog(out)
}

// judgeLog reads the log's tail: error-level lines, and whether the agent's
// certificate line came after the last of them.
func judgeLog(out string) CheckResult {
	var errs []string
	joined := -1
	for _, l := range strings.Split(out, "\n") {
		switch Judge(l) {
		case Joined:
			joined = len(errs)
		case AgentFailed:
			errs = append(errs, clipped(l, 240))
		}
	}
	switch {
	case len(errs) == 0 && joined >= 0:
		return ok("no error-level lines; the agent got its certificate")
	case len(errs) == 0:
		return ok("no error-level lines (and no certificate line in the last 2000)")
	case joined == len(errs):
		return warned("", "%d error-level line(s) before the agent got its certificate; last: %s", len(errs), errs[len(errs)-1])
	}
	last := errs[len(errs)-1]
	return failed(knownCauses(last), "last error: %s", last)
}
