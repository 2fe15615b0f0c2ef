// Package meshtest makes, for tests, the objects by which vm2mesh recognises a
// running mesh and its installer: istiod Deployments labelled as Helm's chart,
// istioctl or the Sail operator leave them, Helm's release Secrets, revision tag
// webhooks. They are stand-ins: the test API server has no nodes, so no pod runs
// from them. Everything made is deleted when the test ends, because istiod is
// looked for in every namespace of the shared cluster.
package meshtest

import (
	"context"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Istiod is one istiod Deployment stand-in.
type Istiod struct {
	Namespace, Name string
	Image           string // its discovery container's, which the version is read from
	Labels          map[string]string
	Annotations     map[string]string
	Owner           *metav1.OwnerReference
	Env             []corev1.EnvVar
	// NoDiscovery gives the pod a container of another name: a Deployment named
	// like istiod that is not one.
	NoDiscovery bool
}

// HelmIstiod is istiod as `helm install istiod-<rev> istio/istiod --set
// revision=<rev>` leaves it (the chart's labels, Helm's annotations), in ns.
// Revision "" is the chart's default revision, Deployment istiod.
func HelmIstiod(ns, revision, image string, env ...corev1.EnvVar) Istiod {
	name, release, rev := "istiod", "istiod", "default"
	if revision != "" {
		name, release, rev = "istiod-"+revision, "istiod-"+revision, revision
	}
	return Istiod{Namespace: ns, Name: name, Image: image, Env: env,
		Labels: map[string]string{
			"app": "istiod", "istio.io/rev": rev, "istio": "istiod", "release": release,
			"install.operator.istio.io/owning-resource": "unknown", "operator.istio.io/component": "Pilot",
			"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": release,
			"app.kubernetes.io/name": "istiod", "app.kubernetes.io/part-of": "istio",
		},
		Annotations: map[string]string{"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": ns},
	}
}

// IstioctlIstiod is istiod as `istioctl install` leaves it: the chart's labels as
// istioctl renders them (managed-by Helm included) and istioctl's own.
func IstioctlIstiod(ns, image string, env ...corev1.EnvVar) Istiod {
	return Istiod{Namespace: ns, Name: "istiod", Image: image, Env: env,
		Labels: map[string]string{
			"app": "istiod", "istio.io/rev": "default", "istio": "pilot",
			"install.operator.istio.io/owning-resource": "installed-state", "install.operator.istio.io/owning-resource-namespace": ns,
			"operator.istio.io/component": "Pilot", "operator.istio.io/managed": "Reconcile", "operator.istio.io/version": "1.31.1",
			"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/name": "istiod",
		},
	}
}

// Create makes the Deployment (and its namespace) and deletes it when the test ends.
func (is Istiod) Create(t testing.TB, kube kubernetes.Interface) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	Namespace(t, kube, is.Namespace)
	selector := map[string]string{"vm2mesh-test": is.Name}
	container := "discovery"
	if is.NoDiscovery {
		container = "server"
	}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: is.Name, Namespace: is.Namespace, Labels: is.Labels, Annotations: is.Annotations},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: selector},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: container, Image: is.Image, Env: is.Env}}},
			},
		},
	}
	if is.Owner != nil {
		d.OwnerReferences = []metav1.OwnerReference{*is.Owner}
	}
	if _, err := kube.AppsV1().Deployments(is.Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { DeleteDeployment(t, kube, is.Namespace, is.Name) })
}

// DeleteDeployment deletes ns/name if it is there.
func DeleteDeployment(t testing.TB, kube kubernetes.Interface, ns, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kube.AppsV1().Deployments(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Error(err)
	}
}

// HelmReleaseSecret is the Secret Helm keeps a release's first version in
// (only its type and labels matter to vm2mesh).
func HelmReleaseSecret(t testing.TB, kube kubernetes.Interface, ns, release string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	Namespace(t, kube, ns)
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "sh.helm.release.v1." + release + ".v1", Namespace: ns,
			Labels: map[string]string{"owner": "helm", "name": release, "status": "deployed", "version": "1"}},
		Type: "helm.sh/release.v1",
		Data: map[string][]byte{"release": []byte("stand-in")},
	}
	if _, err := kube.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// Injector is an injection webhook of revision rev served by istiod-<rev> in ns:
// tag "" is the revision's own webhook (named as the chart names it), another
// tag a revision tag's, as `istioctl tag set` or the chart's revisionTags
// make it. It is deleted when the test ends.
func Injector(t testing.TB, kube kubernetes.Interface, ns, rev, tag string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	labels := map[string]string{"istio.io/rev": rev, "app": "sidecar-injector"}
	name := "istio-sidecar-injector"
	service := "istiod"
	if rev != "default" {
		name += "-" + rev
		service += "-" + rev
	}
	if tag != "" {
		labels["istio.io/tag"] = tag
		name = "istio-revision-tag-" + tag
	}
	name += "-" + ns
	none := admissionv1.SideEffectClassNone
	port := int32(443)
	w := &admissionv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Webhooks: []admissionv1.MutatingWebhook{{
			Name:                    "rev.object.sidecar-injector.istio.io",
			ClientConfig:            admissionv1.WebhookClientConfig{Service: &admissionv1.ServiceReference{Name: service, Namespace: ns, Port: &port}},
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	if _, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, w, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Error(err)
		}
	})
}

// Namespace creates ns unless it exists.
func Namespace(t testing.TB, kube kubernetes.Interface, ns string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}
