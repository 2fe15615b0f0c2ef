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
