package testcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/vm2mesh/vm2mesh/vmconfig"
)

// Kube is a typed client for test set-up.
func (c *Cluster) Kube(t testing.TB) kubernetes.Interface {
	t.Helper()
	k, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// CreateConfigMap creates (or replaces) a ConfigMap, creating its namespace.
func (c *Cluster) CreateConfigMap(t testing.TB, ns, name string, data map[string]string) {
	t.Helper()
	k := c.Kube(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.CreateNamespace(t, ns)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: data}
	_, err := k.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		_, err = k.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
}

// CreateNamespace creates ns unless it exists.
func (c *Cluster) CreateNamespace(t testing.TB, ns string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.Kube(t).CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// CreateServiceAccount creates ns/name unless it exists.
func (c *Cluster) CreateServiceAccount(t testing.TB, ns, name string) {
	t.Helper()
	c.CreateNamespace(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.Kube(t).CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// CreateIstiodDeploymentStandIn creates the istiod Deployment object that
// `istioctl install` would, so that detection (version from the image tag, its
// env) has something to read. It is a stand-in: this cluster has no nodes, so no
// pod ever runs from it.
func (c *Cluster) CreateIstiodDeploymentStandIn(t testing.TB, ns, name, image string) {
	t.Helper()
	c.CreateNamespace(t, ns)
	labels := map[string]string{"app": "istiod"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "discovery",
					Image: image,
					Env:   []corev1.EnvVar{{Name: "PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION", Value: "true"}},
				}}},
			},
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Kube(t).AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// InstallIstioCRDs applies Istio's real CRDs (from the istio.io/api module) and
// waits until the API server serves them.
func (c *Cluster) InstallIstioCRDs(t testing.TB) {
	t.Helper()
	path, err := IstioCRDs()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var names []string
	for {
		obj := map[string]any{}
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{Object: obj}
		if u.GetKind() != "CustomResourceDefinition" {
			continue
		}
		if _, err := crds.Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: "testcluster", Force: true}); err != nil {
			t.Fatalf("applying CRD %s: %v", u.GetName(), err)
		}
		names = append(names, u.GetName())
	}
	for _, name := range names {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			u, err := crds.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			for _, cnd := range conds {
				m, _ := cnd.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Fatalf("CRD %s not established: %v", name, err)
		}
	}
}

// RootCertWriterStandIn does what istiod does for every namespace: it writes the
// istio-ca-root-cert ConfigMap into each of the given namespaces once they exist.
// No istiod runs in these tests; this stands in for that one effect, until the
// test ends.
func (c *Cluster) RootCertWriterStandIn(t testing.TB, cert string, namespaces ...string) {
	t.Helper()
	k := c.Kube(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		pending := slices.Clone(namespaces)
		for len(pending) > 0 {
			for i := 0; i < len(pending); i++ {
				ns := pending[i]
				if _, err := k.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
					continue
				}
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "istio-ca-root-cert", Namespace: ns},
					Data: map[string]string{"root-cert.pem": cert}}
				if _, err := k.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err == nil || apierrors.IsAlreadyExists(err) {
					pending = slices.Delete(pending, i, i+1)
					i--
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
}

// UniqueName appends a random suffix to prefix, so that repeated runs of a test
// against the shared cluster (-count=N) start from nothing.
func UniqueName(prefix string) string {
	return fmt.Sprintf("%s-%04x", prefix, rand.Uint32()&0xffff)
}

// GatewayServiceStandIn creates the east-west gateway's LoadBalancer Service
// that istioctl install would make (nothing serves it), replacing an older one,
// and, when ingress is given, sets it as the load balancer status a cloud's
// controller would. It returns errors, so goroutines can report them.
func (c *Cluster) GatewayServiceStandIn(ns, name string, ingress []corev1.LoadBalancerIngress, externalIPs []string) error {
	k, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = k.CoreV1().Services(ns).Delete(ctx, name, metav1.DeleteOptions{})
	_, err = k.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalIPs: externalIPs,
			Ports: []corev1.ServicePort{{Name: "tls-istiod", Port: 15012}}},
	}, metav1.CreateOptions{})
	if err != nil || ingress == nil {
		return err
	}
	return c.SetLoadBalancerIngress(ns, name, ingress)
}

// SetLoadBalancerIngress gives a Service its load balancer status, as a cloud's
// controller would.
func (c *Cluster) SetLoadBalancerIngress(ns, name string, ingress []corev1.LoadBalancerIngress) error {
	k, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc, err := k.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	svc.Status.LoadBalancer.Ingress = ingress
	_, err = k.CoreV1().Services(ns).UpdateStatus(ctx, svc, metav1.UpdateOptions{})
	return err
}

// SameVMFiles checks that istioctl (in dir theirs) and vm2mesh (in dir ours)
// generated the same five files: byte for byte, the token by its claims (each
// run mints its own): subject, lifetime, and one and the same audience.
func SameVMFiles(t testing.TB, theirs, ours string) {
	t.Helper()
	for _, name := range vmconfig.FileNames {
		a, errA := os.ReadFile(filepath.Join(theirs, name))
		b, errB := os.ReadFile(filepath.Join(ours, name))
		if errA != nil || errB != nil {
			t.Fatalf("%s: %v %v", name, errA, errB)
		}
		if name == "istio-token" {
			ca, _ := vmconfig.ParseTokenClaims(string(a))
			cb, _ := vmconfig.ParseTokenClaims(string(b))
			if ca.Subject != cb.Subject || ca.Expiry-ca.IssuedAt != cb.Expiry-cb.IssuedAt || len(ca.Audience) != 1 || !slices.Equal(ca.Audience, cb.Audience) {
				t.Errorf("token claims differ: istioctl %+v, vm2mesh %+v", ca, cb)
			}
			continue
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs\n--- istioctl\n%s\n--- vm2mesh\n%s", name, a, b)
		}
	}
}
