package steps

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/vm2mesh/vm2mesh/k8s"
)

// Revision is the control plane revision the steps work with (the istio-<rev>
// mesh ConfigMap, the istiod-<rev> Service): revision as the cluster resolved
// it (a tag becomes its revision; with one revision and none asked for, that
// one), else revision as given.
// The default revision is "", as in the answers file.
func (e *Env) Revision() string {
	if !e.resolved {
		return e.Settings.Revision
	}
	if e.revision == "default" {
		return ""
	}
	return e.revision
}

// installsControlPlane: vm2mesh runs istioctl install for the control plane.
// With installIstio: auto only when no istiod runs anywhere in the cluster: a
// second control plane beside a running mesh (a revision in another namespace,
// one installed by Helm) is never what auto means.
func (e *Env) installsControlPlane() bool {
	switch e.Settings.InstallIstio {
	case InstallAlways:
		return true
	case InstallNever:
		return false
	}
	return len(e.Mesh.Istiods) == 0
}

// pickIstiod chooses, before anything changes, the istiod the VM joins: the
// revision (or tag) asked for, else the only revision there is, in
// istioNamespace. Several revisions and none asked for, a revision the cluster
// does not have, or an istiod only in another namespace are errors that list
// what runs. installIstio: always installs what it is asked to, so there only
// a tag is resolved.
func (e *Env) pickIstiod() error {
	s, m := e.Settings, e.Mesh
	e.revision, e.resolved = s.Revision, true
	if len(m.Istiods) == 0 {
		return nil
	}
	always := s.InstallIstio == InstallAlways
	rev := s.Revision
	if rev != "" {
		r, _, ok := m.Resolve(rev)
		switch {
		case ok:
			rev = r
		case !always:
			return FieldError{Key: "revision", Problem: fmt.Sprintf("%q is neither a revision nor a tag of the cluster's Istio, which has %s; set revision to one of them (installIstio: always would install revision %s)",
				rev, choices(m), rev)}
		}
	}
	if rev == "" {
		from := m.In(s.IstioNamespace)
		if len(from) == 0 {
			from = m.Istiods
		}
		revs := revisions(from)
		switch {
		case len(revs) == 1:
			rev = revs[0]
		case !always:
			return FieldError{Key: "revision", Problem: fmt.Sprintf("is empty, but the cluster runs several Istio revisions: %s; set revision to the one the VM joins (a tag works too)", choices(k8s.Mesh{Istiods: from, Tags: m.Tags}))}
		}
	}
	e.revision = rev
	if is, ok := m.Find(s.IstioNamespace, rev); ok {
		e.Istiod = is
		return nil
	}
	if always {
		return nil
	}
	var where []string
	for _, is := range m.Istiods {
		if is.Revision == orDefault(rev) {
			where = append(where, is.Namespace)
		}
	}
	return FieldError{Key: "istioNamespace", Problem: fmt.Sprintf("%s runs no istiod of revision %s, which runs in %s; set istioNamespace to %s (vm2mesh installs no second control plane beside a running one)",
		s.IstioNamespace, orDefault(rev), strings.Join(where, ", "), where[0])}
}

// choices lists the revisions with their istiods and the tags, for errors.
func choices(m k8s.Mesh) string {
	var revs []string
	for _, is := range m.Istiods {
		revs = append(revs, fmt.Sprintf("%s (istiod %s in %s, %s)", is.Revision, orUnknown(is.Version), is.Namespace, is.ManagedBy()))
	}
	out := "revisions " + strings.Join(revs, ", ")
	var tags []string
	for _, t := range m.Tags {
		v := ""
		for _, is := range m.Istiods {
			if is.Revision == t.Revision {
				v = " (istiod " + orUnknown(is.Version) + ")"
			}
		}
		tags = append(tags, fmt.Sprintf("%s -> %s%s", t.Name, t.Revision, v))
	}
	if len(tags) > 0 {
		out += "; tags " + strings.Join(tags, ", ")
	}
	return out
}

func revisions(istiods []k8s.IstiodInfo) []string {
	var out []string
	for _, is := range istiods {
		if !slices.Contains(out, is.Revision) {
			out = append(out, is.Revision)
		}
	}
	return out
}

func orDefault(rev string) string {
	if rev == "" {
		return "default"
	}
	return rev
}

// EastWestMethod is how the east-west gateway is installed when it is missing:
// eastwestInstall, with auto resolved to istioctl beside a mesh istioctl made
// (or one vm2mesh installs now) and to manifests beside any other, so that one
// installer does not take over what another owns.
func (e *Env) EastWestMethod() string {
	switch m := e.Settings.EastWestInstall; m {
	case EastWestIstioctl, EastWestManifests, EastWestNone:
		return m
	}
	if e.installsControlPlane() || e.Istiod.Manager == k8s.ManagedByIstioctl {
		return EastWestIstioctl
	}
	return EastWestManifests
}

// checkEastWestNone: with eastwestInstall: none the VM needs a gateway that is
// already there, or gatewayAddress.
func (e *Env) checkEastWestNone(ctx context.Context) error {
	s := e.Settings
	if e.EastWestMethod() != EastWestNone || s.GatewayAddress != "" {
		return nil
	}
	ok, err := e.Client.ServiceExists(ctx, s.IstioNamespace, EastWestService)
	if err != nil || ok {
		return err
	}
	return FieldError{Key: "eastwestInstall", Problem: fmt.Sprintf("is none, but there is no service %s/%s and gatewayAddress is empty; install the gateway (eastwestInstall: auto does), or set gatewayAddress to where VMs reach istiod",
		s.IstioNamespace, EastWestService)}
}

// MeshLine is the cluster's Istio in one line, and which istiod the VM joins
// when there is a choice.
func (e *Env) MeshLine() string {
	line := e.Mesh.Summary()
	if e.Istiod.Found && len(e.Mesh.Istiods) > 1 {
		line += fmt.Sprintf("; the VM joins revision %s in %s", e.Istiod.Revision, e.Istiod.Namespace)
	}
	return line
}
