package ui

import (
	"strings"
	"testing"

	"charm.land/huh/v2"

	"github.com/vm2mesh/vm2mesh/k8s"
)

// TestRevisionChoiceShowsVersions: the settings page offers each revision with
// its istiod's version and installer (the default revision first) and each tag
// with where it points; one revision is chosen by leaving revision empty.
func TestRevisionChoiceShowsVersions(t *testing.T) {
	canary := k8s.IstiodInfo{Found: true, Name: "istiod-canary", Namespace: "istio-system", Revision: "canary", Version: "1.31.1", Manager: k8s.ManagedByHelm, Owner: "istiod-canary"}
	stable := k8s.IstiodInfo{Found: true, Name: "istiod-stable", Namespace: "istio-system", Revision: "stable", Version: "1.30.2", Manager: k8s.ManagedByHelm, Owner: "istiod-stable"}
	show := func(opts []huh.Option[string]) string {
		var out []string
		for _, o := range opts {
			out = append(out, o.Value+"="+o.Key)
		}
		return strings.Join(out, "\n")
	}
	two := k8s.Mesh{Istiods: []k8s.IstiodInfo{canary, stable}, Tags: []k8s.RevisionTag{{Name: "prod", Revision: "canary"}}, DefaultRevision: "stable"}
	want := "stable=stable: istiod 1.30.2 in istio-system (Helm release istiod-stable)\n" +
		"canary=canary: istiod 1.31.1 in istio-system (Helm release istiod-canary)\n" +
		"prod=prod: tag -> canary (istiod 1.31.1)"
	if got := show(revisionOptions(two, "")); got != want {
		t.Errorf("two revisions:\n%s\nwant\n%s", got, want)
	}
	if got := show(revisionOptions(k8s.Mesh{Istiods: []k8s.IstiodInfo{canary}}, "")); got != "=canary: istiod 1.31.1 in istio-system (Helm release istiod-canary), the only one" {
		t.Errorf("one revision: %s", got)
	}
	if got := show(revisionOptions(k8s.Mesh{}, "")); got != "=default: no istiod runs, vm2mesh installs one" {
		t.Errorf("no istiod: %s", got)
	}
	if got := show(revisionOptions(two, "1-32")); !strings.HasSuffix(got, "\n1-32=1-32: as the answers file says") {
		t.Errorf("an answers file's revision is not kept:\n%s", got)
	}
}
