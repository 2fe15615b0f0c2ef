package app_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vm2mesh/vm2mesh/internal/testvm"
)

// Resolvers match names in any letter case and a file edited on Windows ends its
// lines in \r\n: older lines for istiod in those forms would still win at lookup.
// They are replaced and reported; every other line stays byte for byte.
func TestOlderIstiodLinesInOtherCaseOrCRLFAreReplaced(t *testing.T) {
	testvm.Skip(t)
	vm := testvm.Start(t, testvm.Options{})
	path, _, _ := onboardingAnswers(t, vm, vmCase{family: testvm.Debian, user: "root"})
	const others = "127.0.0.1\tlocalhost\r\n10.1.1.1 db.internal\r\n"
	vm.MustExec(t, `printf '`+others+`10.9.9.9 ISTIOD.Istio-System.svc\r\n10.8.8.8 istiod.istio-system.svc\r\n10.7.7.7 keep.me istiod.istio-system.SVC\r\n' > /etc/hosts`)
	r := run(t, nil, "apply", "-f", path, "--yes", "--only", "vm")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	got := vm.MustExec(t, "cat /etc/hosts")
	want := others + "10.7.7.7 keep.me\r\n" + fmt.Sprintf("%s istiod.istio-system.svc # managed by vm2mesh\n", vm.HostAddr)
	if got != want {
		t.Errorf("/etc/hosts:\n%q\nwant\n%q", got, want)
	}
	if n := strings.Count(r.stdout, "replaced an older line for istiod.istio-system.svc"); n != 3 {
		t.Errorf("%d replacements reported, want 3:\n%s", n, r.stdout)
	}
	// Now in place: the next run finds nothing to do there.
	r = run(t, nil, "apply", "-f", path, "--yes", "--only", "vm")
	if r.code != 0 || !strings.Contains(r.stdout, "Place the files on the VM — skipped") {
		t.Errorf("second run: exit %d\n%s", r.code, r.stdout)
	}
}
