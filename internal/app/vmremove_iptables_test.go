package app_test

import (
	"strings"
	"testing"

	"github.com/vm2mesh/vm2mesh/internal/testvm"
)

// istio-iptables --cleanup-only deletes only the rules its configuration makes
// (the stand-in pilot-agent deletes none): whatever ISTIO_ chains are left,
// remove deletes with the jumps into them, in each backend and table, and
// nothing else. The rules go from iptables-save to iptables-restore without a
// shell, so a comment in them is never run.
func TestRemoveSweepsTheIstioChainsLeftBehind(t *testing.T) {
	testvm.Skip(t)
	t.Parallel()
	vm := testvm.Start(t, testvm.Options{})
	path, _, _ := onboardingAnswers(t, vm, vmCase{user: "root"})
	if r := run(t, nil, "apply", "-f", path, "--yes", "--only", "vm"); r.code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	vm.MustExec(t, `set -e
for b in iptables-legacy iptables-nft; do
	$b -t nat -N ISTIO_INBOUND
	$b -t nat -A ISTIO_INBOUND -p tcp --dport 22 -j RETURN
	$b -t nat -A PREROUTING -p tcp -m comment --comment 'see "$(touch /tmp/pwned)"' -j ISTIO_INBOUND
	$b -t mangle -N ISTIO_DIVERT
	$b -t mangle -A PREROUTING -p tcp -j ISTIO_DIVERT
	$b -t nat -N OPERATOR_CHAIN
	$b -t nat -A PREROUTING -p udp -j OPERATOR_CHAIN
done`)
	rules := `for b in iptables-legacy iptables-nft; do for t in nat mangle; do echo "== $b $t"; $b -t $t -S; done; done`
	r := run(t, nil, "remove", "-f", path, "--yes", "--only", "vm")
	if r.code != 0 {
		t.Fatalf("remove: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"istio-iptables --cleanup-only left :ISTIO_DIVERT :ISTIO_INBOUND", "✓ Remove the agent's iptables rules: ISTIO_ chains removed"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("remove's output lacks %q:\n%s", want, r.stdout)
		}
	}
	after := vm.MustExec(t, rules)
	if strings.Contains(after, "ISTIO_") || strings.Count(after, "-A PREROUTING -p udp -j OPERATOR_CHAIN") != 2 || strings.Count(after, "-N OPERATOR_CHAIN") != 2 {
		t.Errorf("after remove, want no ISTIO_ chain and the operator's chain in both backends:\n%s", after)
	}
	if got := vm.MustExec(t, "ls /tmp/pwned 2>/dev/null || true"); got != "" {
		t.Errorf("a comment in a rule was run as a command")
	}
}
