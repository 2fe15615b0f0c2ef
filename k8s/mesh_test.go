package k8s_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/vm2mesh/vm2mesh/internal/meshtest"
	"github.com/vm2mesh/vm2mesh/internal/testcluster"
	"github.com/vm2mesh/vm2mesh/k8s"
)

// TestDiscoverMeshFindsEveryIstiodAndItsInstaller puts istiods of every kind of
// install into namespaces of their own and checks what discovery says of each.
func TestDiscoverMeshFindsEveryIstiodAndItsInstaller(t *testing.T) {
	ctx := context.Background()
	kube := cluster.Kube(t)
	helm, other := testcluster.UniqueName("mesh-helm"), testcluster.UniqueName("mesh-other")
	istioctlNS, oldIstioctlNS := testcluster.UniqueName("mesh-istioctl"), testcluster.UniqueName("mesh-iop")
	sailNS, plainNS := testcluster.UniqueName("mesh-sail"), testcluster.UniqueName("mesh-plain")

	// Helm: known by its annotation; or, without it, by the release Secret.
	meshtest.HelmIstiod(helm, "canary", "docker.io/istio/pilot:1.31.1").Create(t, kube)
	stable := meshtest.HelmIstiod(helm, "stable", "docker.io/istio/pilot:1.30.2-distroless")
	stable.Annotations = nil
	stable.Create(t, kube)
	meshtest.HelmReleaseSecret(t, kube, helm, "istiod-stable")
	// The chart rendered and applied by hand: Helm's labels, no release.
	rendered := meshtest.HelmIstiod(other, "", "docker.io/istio/pilot:1.31.1")
	rendered.Annotations = nil
	rendered.Create(t, kube)
	// istioctl: its labels, though the chart it renders says managed-by Helm.
	meshtest.IstioctlIstiod(istioctlNS, "docker.io/istio/pilot:1.31.1").Create(t, kube)
	// Older istioctl: no labels of its own, an installed-state IstioOperator.
	istioOperatorCRD(t)
	meshtest.Istiod{Namespace: oldIstioctlNS, Name: "istiod-1-29", Image: "docker.io/istio/pilot:1.29.0",
		Labels: map[string]string{"app": "istiod", "istio.io/rev": "1-29"}}.Create(t, kube)
	installedState(t, oldIstioctlNS, "installed-state-control-plane", "1-29")
	// The Sail operator: its IstioRevision owns the Deployment.
	meshtest.Istiod{Namespace: sailNS, Name: "istiod", Image: "quay.io/sail-dev/pilot:1.31.1",
		Labels:      map[string]string{"app": "istiod", "istio.io/rev": "default", "app.kubernetes.io/managed-by": "Helm"},
		Annotations: map[string]string{"meta.helm.sh/release-name": "default-istiod"},
		Owner:       &metav1.OwnerReference{APIVersion: "sailoperator.io/v1", Kind: "IstioRevision", Name: "default", UID: "0f0e0d0c-0000-4000-8000-000000000001"}}.Create(t, kube)
	// A hand-written istiod with no app label, found by its name; a lookalike
	// without a discovery container is not istiod.
	meshtest.Istiod{Namespace: plainNS, Name: "istiod-legacy", Image: "registry.example/pilot:1.28.3"}.Create(t, kube)
	meshtest.Istiod{Namespace: plainNS, Name: "istiod-dashboard", Image: "registry.example/dashboard:2", NoDiscovery: true}.Create(t, kube)
	// Tags: prod and default point at canary; stable's own webhook is no default.
	meshtest.Injector(t, kube, helm, "canary", "")
	meshtest.Injector(t, kube, helm, "stable", "")
	meshtest.Injector(t, kube, helm, "canary", "prod")
	meshtest.Injector(t, kube, helm, "canary", "default")

	m, err := newClient(t).DiscoverMesh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, is := range m.Istiods {
		got[is.Namespace+"/"+is.Name] = is.Describe()
	}
	for key, want := range map[string]string{
		helm + "/istiod-canary":        "istiod 1.31.1 revision canary in " + helm + " (Helm release istiod-canary)",
		helm + "/istiod-stable":        "istiod 1.30.2 revision stable in " + helm + " (Helm release istiod-stable)",
		other + "/istiod":              "istiod 1.31.1 revision default in " + other + " (plain manifests)",
		istioctlNS + "/istiod":         "istiod 1.31.1 revision default in " + istioctlNS + " (istioctl, IstioOperator installed-state)",
		oldIstioctlNS + "/istiod-1-29": "istiod 1.29.0 revision 1-29 in " + oldIstioctlNS + " (istioctl, IstioOperator installed-state-control-plane)",
		sailNS + "/istiod":             "istiod 1.31.1 revision default in " + sailNS + " (Sail operator, IstioRevision default)",
		plainNS + "/istiod-legacy":     "istiod 1.28.3 revision legacy in " + plainNS + " (plain manifests)",
	} {
		if got[key] != want {
			t.Errorf("%s: %q, want %q", key, got[key], want)
		}
	}
	if d, ok := got[plainNS+"/istiod-dashboard"]; ok {
		t.Errorf("a Deployment without a discovery container was taken for istiod: %s", d)
	}

	summary := m.Summary()
	for _, want := range []string{
		"istiod 1.31.1 revision canary in " + helm + " (Helm release istiod-canary), istiod 1.30.2 revision stable in " + helm,
		"; tags: default -> canary, prod -> canary",
	} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, summary)
		}
	}
	if m.DefaultRevision != "canary" {
		t.Errorf("default revision %q, want canary (the tag default's)", m.DefaultRevision)
	}
	for name, want := range map[string]string{"prod": "canary", "stable": "stable", "canary": "canary"} {
		if rev, _, ok := m.Resolve(name); !ok || rev != want {
			t.Errorf("Resolve(%s) = %q %v, want %s", name, rev, ok, want)
		}
	}
	if _, isTag, _ := m.Resolve("prod"); !isTag {
		t.Error("prod is not resolved as a tag")
	}
	if rev, _, ok := m.Resolve("nope"); ok {
		t.Errorf("Resolve(nope) = %q", rev)
	}
	if is, ok := m.Find(helm, "canary"); !ok || is.Name != "istiod-canary" || is.Manager != k8s.ManagedByHelm {
		t.Errorf("Find canary: %+v %v", is, ok)
	}
}

// TestIstiodFlagsReadAsIstiodReadsThem: an unset (or unparsable) env is Istio's
// default, which is on for autoregistration and health checks; a value from a
// ConfigMap is not known here.
func TestIstiodFlagsReadAsIstiodReadsThem(t *testing.T) {
	const auto = "PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION"
	ns := testcluster.UniqueName("mesh-flags")
	kube := cluster.Kube(t)
	for _, tc := range []struct {
		rev       string
		env       []corev1.EnvVar
		on, known bool
	}{
		{"unset", nil, true, true},
		{"true", []corev1.EnvVar{{Name: auto, Value: "true"}}, true, true},
		{"false", []corev1.EnvVar{{Name: auto, Value: "false"}}, false, true},
		{"zero", []corev1.EnvVar{{Name: auto, Value: "0"}}, false, true},
		{"garbled", []corev1.EnvVar{{Name: auto, Value: "yes please"}}, true, true},
		{"last-wins", []corev1.EnvVar{{Name: auto, Value: "true"}, {Name: auto, Value: "false"}}, false, true},
		{"from-configmap", []corev1.EnvVar{{Name: auto, ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "pilot-env"}, Key: "auto"}}}}, false, false},
	} {
		meshtest.HelmIstiod(ns, tc.rev, "docker.io/istio/pilot:1.31.1", tc.env...).Create(t, kube)
		is, err := newClient(t).Istiod(context.Background(), ns, tc.rev)
		if err != nil || !is.Found {
			t.Fatalf("%s: %+v %v", tc.rev, is, err)
		}
		if on, known := is.Flag(auto); on != tc.on || known != tc.known {
			t.Errorf("%s: Flag = %v known %v, want %v known %v", tc.rev, on, known, tc.on, tc.known)
		}
		if on, known := is.Flag("PILOT_ENABLE_WORKLOAD_ENTRY_HEALTHCHECKS"); !on || !known {
			t.Errorf("%s: health checks (unset) = %v known %v, want Istio's default, on", tc.rev, on, known)
		}
	}
}

// istioOperatorCRD serves IstioOperators as older Istio releases defined them,
// so that an installed-state object can be made.
func istioOperatorCRD(t *testing.T) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "istiooperators.install.istio.io"},
		"spec": map[string]any{
			"group": "install.istio.io", "scope": "Namespaced",
			"names": map[string]any{"kind": "IstioOperator", "listKind": "IstioOperatorList", "plural": "istiooperators", "singular": "istiooperator"},
			"versions": []any{map[string]any{"name": "v1alpha1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
		},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := crds.Apply(ctx, crd.GetName(), crd, metav1.ApplyOptions{FieldManager: "vm2mesh-test", Force: true}); err != nil {
		t.Fatal(err)
	}
	iops := dyn.Resource(schema.GroupVersionResource{Group: "install.istio.io", Version: "v1alpha1", Resource: "istiooperators"})
	for {
		if _, err := iops.List(ctx, metav1.ListOptions{}); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal("the IstioOperator CRD is not served")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func installedState(t *testing.T, ns, name, revision string) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	iop := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec":     map[string]any{"revision": revision, "profile": "default"},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := dyn.Resource(schema.GroupVersionResource{Group: "install.istio.io", Version: "v1alpha1", Resource: "istiooperators"}).
		Namespace(ns).Create(ctx, iop, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestDiscoverMeshWithoutRightsSaysWhatItNeeds: credentials that may not list
// Deployments in every namespace get an error naming that need.
func TestDiscoverMeshWithoutRightsSaysWhatItNeeds(t *testing.T) {
	cfg := rest.CopyConfig(cluster.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "vm2mesh-test-no-rights"}
	c, err := k8s.NewForConfig(cfg, testcluster.ContextName)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.DiscoverMesh(context.Background())
	if err == nil || !strings.Contains(err.Error(), "vm2mesh lists Deployments cluster-wide before it installs or joins a control plane") {
		t.Errorf("discovery without rights: %v", err)
	}
}
