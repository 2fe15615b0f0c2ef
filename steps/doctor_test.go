package steps

import (
	"context"
	"testing"
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
		{"nothing", "-P OUTPUT ACCEPT\n", CheckWarn, CheckWarn},
		{"inbound without outbound", "-N ISTIO_INBOUND\n-N ISTIO_IN_REDIRECT\n", CheckFail, CheckWarn},
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
