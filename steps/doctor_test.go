package steps

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The check list is data: every name is unique, and a check needs only checks
// that run before it (a later one would always read as not run).
func TestDoctorChecksNeedEarlierChecks(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range doctorChecks {
		if seen[c.name] {
			t.Errorf("%s is listed twice", c.name)
		}
		for _, n := range c.needs {
			if !seen[n] {
				t.Errorf("%s needs %s, which does not run before it", c.name, n)
			}
		}
		if c.section != SectionCluster && c.section != SectionVM {
			t.Errorf("%s: section %q", c.name, c.section)
		}
		seen[c.name] = true
	}
}

func TestDoctorSkipsAfterAFailedPrerequisite(t *testing.T) {
	d := &doctor{}
	c := doctorCheck{name: "b", needs: []string{"a"}, run: func(context.Context, *doctor) CheckResult { return ok("ran") }}
	for status, want := range map[CheckStatus]string{
		CheckFail: "needs a, which failed",
		CheckSkip: "needs a, which was skipped",
		CheckWarn: "ran",
		CheckOK:   "ran",
	} {
		r := d.runCheck(t.Context(), c, map[string]CheckStatus{"a": status})
		if r.Found != want {
			t.Errorf("after a %s: %q, want %q", status, r.Found, want)
		}
	}
}

// What istio-iptables leaves in the nat table (iptables -t nat -S), with DNS
// capture and inbound capture, and without.
func TestDoctorReadsTheNatTable(t *testing.T) {
	const full = `-P PREROUTING ACCEPT
-P OUTPUT ACCEPT
-N ISTIO_INBOUND
-N ISTIO_IN_REDIRECT
-N ISTIO_OUTPUT
-N ISTIO_REDIRECT
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -d 10.0.0.2/32 -p udp -m udp --dport 53 -j REDIRECT --to-ports 15053
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
`
	const outboundOnly = "-N ISTIO_OUTPUT\n-N ISTIO_REDIRECT\n-A OUTPUT -j ISTIO_OUTPUT\n"
	for _, c := range []struct {
		name, rules string
		chains      CheckStatus
		dns         CheckStatus
	}{
		{"everything", full, CheckOK, CheckOK},
		{"no inbound capture, no DNS", outboundOnly, CheckOK, CheckFail},
		{"nothing", "-P OUTPUT ACCEPT\n", CheckFail, CheckFail},
		{"inbound without outbound", "-N ISTIO_INBOUND\n-N ISTIO_IN_REDIRECT\n", CheckFail, CheckFail},
		{"another port 53 rule", outboundOnly + "-A OUTPUT -p udp --dport 5353 -j REDIRECT --to-ports 15053\n", CheckOK, CheckFail},
	} {
		if r := judgeChains(c.rules, "h"); r.Status != c.chains {
			t.Errorf("%s: chains %s (%s), want %s", c.name, r.Status, r.Found, c.chains)
		}
		if r := judgeDNS(c.rules, "h"); r.Status != c.dns {
			t.Errorf("%s: DNS %s (%s), want %s", c.name, r.Status, r.Found, c.dns)
		}
	}
}

func TestDoctorJudgesTheTokenByItsClaims(t *testing.T) {
	now := time.Unix(2_000_000_000, 0)
	jwt := func(claims string) string {
		return "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(claims)) + ".c2ln"
	}
	for _, c := range []struct {
		name, token string
		certValid   bool
		status      CheckStatus
		found       string
	}{
		{"fresh", jwt(`{"aud":["istio-ca"],"exp":2000003600,"sub":"system:serviceaccount:vm:vm"}`), false, CheckOK, "expires 2033-05-18T04:33:20Z (in 1h0m0s)"},
		{"another audience", jwt(`{"aud":"https://kubernetes.default.svc","exp":2000003600}`), false, CheckFail, "audience https://kubernetes.default.svc, not istio-ca"},
		{"expired, the agent has its certificate", jwt(`{"aud":["istio-ca"],"exp":1999999000}`), true, CheckOK, "fine, the agent has its certificate"},
		{"expired, no certificate", jwt(`{"aud":["istio-ca"],"exp":1999999000}`), false, CheckFail, "the agent has no valid certificate"},
		{"not a JWT", "opaque-value-42", false, CheckFail, "is not a JWT"},
	} {
		r := judgeToken(c.token, c.certValid, now)
		if r.Status != c.status || !strings.Contains(r.Found, c.found) {
			t.Errorf("%s: %s %q, want %s and %q", c.name, r.Status, r.Found, c.status, c.found)
		}
		if strings.Contains(r.Found+r.Hint, c.token) {
			t.Errorf("%s: the token was shown", c.name)
		}
	}
}

// testCA makes a CA and signs a workload certificate for uri, valid until notAfter.
func testCA(t *testing.T, name string) (caPEM string, sign func(uri string, notAfter time.Time) string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{name}},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, ca, ca, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(der)
	pemOf := func(der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	return pemOf(der), func(uri string, notAfter time.Time) string {
		u, _ := url.Parse(uri)
		leaf := &x509.Certificate{SerialNumber: big.NewInt(2), URIs: []*url.URL{u},
			NotBefore: time.Now().Add(-24 * time.Hour), NotAfter: notAfter}
		der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		return pemOf(der) + pemOf(caCert.Raw)
	}
}

func TestDoctorJudgesTheAgentCertificate(t *testing.T) {
	root, sign := testCA(t, "cluster.local")
	other, _ := testCA(t, "another mesh")
	id := "spiffe://cluster.local/ns/vm/sa/vm"
	later := time.Now().Add(time.Hour)
	for _, c := range []struct {
		name, chain, root string
		status            CheckStatus
		found             string
	}{
		{"the mesh's", sign(id, later), root, CheckOK, id + ", issued by O=cluster.local, expires "},
		{"none yet", "\n", root, CheckFail, "no certificate at /etc/certs/cert-chain.pem"},
		{"another CA's", sign(id, later), other, CheckFail, "does not verify with root-cert.pem"},
		{"expired", sign(id, time.Now().Add(-time.Hour)), root, CheckFail, ": expired"},
		{"another identity", sign("spiffe://cluster.local/ns/vm/sa/other", later), root, CheckFail, "not .../ns/vm/sa/vm"},
		{"not a certificate", "garbage", root, CheckFail, "holds no certificate"},
	} {
		r := judgeAgentCert(c.chain, c.root, "vm", "vm")
		if r.Status != c.status || !strings.Contains(r.Found, c.found) {
			t.Errorf("%s: %s %q, want %s and %q", c.name, r.Status, r.Found, c.status, c.found)
		}
	}
}

func TestDoctorJudgesTheAgentLog(t *testing.T) {
	const (
		cert = "2026-11-21T07:04:57.000000Z\tinfo\tcache\tgenerated new workload certificate\tlatency=1ms\n"
		bad  = "2026-11-21T07:04:50.000000Z\terror\tcitadelclient\tfailed to connect: connection refused\x1b[31m\n"
		warn = "2026-11-21T07:04:51.000000Z\twarn\tca\tretrying\n"
	)
	for _, c := range []struct {
		name, log string
		status    CheckStatus
		found     string
	}{
		{"joined", warn + cert, CheckOK, "the agent got its certificate"},
		{"error, then joined", bad + cert, CheckWarn, "1 error-level line(s) before the agent got its certificate"},
		{"joined, then an error", cert + bad, CheckFail, "last error: 2026-11-21T07:04:50.000000Z error citadelclient failed to connect: connection refused"},
		{"quiet", warn, CheckOK, "no error-level lines"},
	} {
		r := judgeLog(c.log)
		if r.Status != c.status || !strings.Contains(r.Found, c.found) || strings.Contains(r.Found, "\x1b") {
			t.Errorf("%s: %s %q, want %s and %q", c.name, r.Status, r.Found, c.status, c.found)
		}
		if c.status == CheckFail && !strings.Contains(r.Hint, "cannot reach istiod") {
			t.Errorf("%s: hint %q", c.name, r.Hint)
		}
	}
}
