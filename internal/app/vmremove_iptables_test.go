package app_test

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
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
	// istio-proxy's cluster.env chooses what root runs only if its every
	// variable reaches root's command: a library preloaded into it.
	preload := preloadStandIn(t)
	vm.MustExec(t, "base64 -d > /var/lib/istio/envoy/x.so <<'EOF'\n"+preload+"\nEOF\n"+
		"chown istio-proxy: /var/lib/istio/envoy/x.so\n"+
		"printf 'LD_PRELOAD=/var/lib/istio/envoy/x.so\\nPATH=/var/lib/istio/envoy:/usr/bin:/bin\\n' >> /var/lib/istio/envoy/cluster.env")
	rules := `for b in iptables-legacy iptables-nft; do for t in nat mangle; do echo "== $b $t"; $b -t $t -S; done; done`
	r := run(t, nil, "remove", "-f", path, "--yes", "--only", "vm")
	if r.code != 0 {
		t.Fatalf("remove: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := vm.MustExec(t, "ls /tmp/pwned-preload 2>/dev/null || true"); got != "" {
		t.Errorf("a library istio-proxy named in cluster.env was loaded into root's command")
	}
	for _, want := range []string{"istio-iptables --cleanup-only left :ISTIO_DIVERT :ISTIO_INBOUND", "TRUST_DOMAIN, LD_PRELOAD, PATH", "✓ Remove the agent's iptables rules: ISTIO_ chains removed"} {
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

// preloadStandIn is a shared library, as base64, that makes /tmp/pwned-preload
// when a process loads it: the stand-in for what istio-proxy could preload.
func preloadStandIn(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "x.c")
	if err := os.WriteFile(src, []byte(`#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void pwn(void) { int fd = open("/tmp/pwned-preload", O_CREAT | O_WRONLY, 0644); if (fd >= 0) close(fd); }
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-shared", "-fPIC", "-o", filepath.Join(dir, "x.so"), src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "x.so"))
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}
