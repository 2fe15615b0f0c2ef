package steps

import (
	"strings"
	"testing"
)

// Lines as the real pilot-agent (built from istio.io/istio) and the stand-in
// agent write them.
func TestJudge(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Verdict
	}{
		{"2026-11-21T07:04:57.988316Z\tinfo\tStarting proxy agent", Undecided},
		{"2026/11/21 07:04:57 ERROR failed to set GOMEMLIMIT package=github.com/KimMachineGun/automemlimit/memlimit error=\"failed to set GOMEMLIMIT: process is not in cgroup\"", Undecided},
		{"2026-11-21T07:04:57.988836Z\twarn\tcannot parse the cert chain, using token instead: failed to read the cert, error is open etc/certs/cert-chain.pem: no such file or directory", Undecided},
		{"2026-11-21T07:04:58.102208Z\twarn\tsds\tfailed to warm certificate: failed to generate workload certificate: create certificate: rpc error: code = Unauthenticated desc = request authenticate failure", Undecided},
		{"2026-11-21T07:04:58.100000Z\twarn\tca\tca request failed, starting attempt 1 in 101.2ms", Undecided},
		{"2026-11-21T07:04:58.101647Z\terror\tcitadelclient\tfailed to sign CSR: create certificate: rpc error: code = Unauthenticated desc = request authenticate failure", AgentFailed},
		{"Error: failed to initialize envoy agent: failed to generate bootstrap config: open ./var/lib/istio/envoy/envoy_bootstrap_tmpl.json: no such file or directory", AgentFailed},
		{"sudo: unknown user istio-proxy", Undecided},
		{"/usr/local/bin/istio-start.sh: line 3: cluster.env: failed to open", AgentFailed},
		{"2026-11-21T07:05:58.708645Z\tinfo\tcache\tgenerated new workload certificate\tresourceName=default latency=113ms ttl=23h59m59s", Joined},
		{"2026-11-21T07:05:00.000000Z\terror\tvm2mesh-stand-in-agent\tfailed to start: /var/run/secrets/tokens/istio-token is missing", AgentFailed},
	} {
		if got := Judge(tc.line); got != tc.want {
			t.Errorf("Judge(%q) = %v, want %v", tc.line, got, tc.want)
		}
	}
}

// A certificate for another istiod's name (a second control plane, or a
// revision the hosts entry does not name) is not another CA.
func TestKnownCausesTellsANameMismatchFromAnotherCA(t *testing.T) {
	name := `2026-11-22T03:40:01Z	error	citadelclient	failed to sign CSR: rpc error: code = Unavailable desc = connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate is valid for istiod-canary.istio-system.svc, not istiod-prod.istio-system.svc"`
	if got := knownCauses(name); !strings.Contains(got, "does not name the istiod the agent dials") {
		t.Errorf("name mismatch: %s", got)
	}
	ca := `2026-11-22T03:40:01Z	error	citadelclient	failed to sign CSR: tls: failed to verify certificate: x509: certificate signed by unknown authority`
	if got := knownCauses(ca); !strings.Contains(got, "another CA") {
		t.Errorf("another CA: %s", got)
	}
}
