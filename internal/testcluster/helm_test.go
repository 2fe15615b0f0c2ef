package testcluster

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// The helm built from hack/tools/helm renders the three charts of the pinned
// istio.io/istio as the Helm end-to-end test installs them: a quick check, with
// no cluster and no root, that helm and the charts still agree.
func TestIstioChartsRenderWithHelm(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	render := func(release, chart string, values ...string) map[string]*unstructured.Unstructured {
		t.Helper()
		path, err := IstioChart(chart)
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"template", release, path, "--namespace", "istio-system"}
		for _, v := range values {
			args = append(args, "--set", v)
		}
		out, err := RunHelm(ctx, t.TempDir(), args...)
		if err != nil {
			t.Fatal(err)
		}
		objs := map[string]*unstructured.Unstructured{}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader([]byte(out)), 4096)
		for {
			obj := map[string]any{}
			if err := dec.Decode(&obj); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				t.Fatalf("%s: %v", chart, err)
			}
			if len(obj) > 0 {
				u := &unstructured.Unstructured{Object: obj}
				objs[u.GetKind()+"/"+u.GetName()] = u
			}
		}
		return objs
	}
	has := func(objs map[string]*unstructured.Unstructured, keys ...string) {
		t.Helper()
		for _, k := range keys {
			if objs[k] == nil {
				t.Errorf("rendered no %s", k)
			}
		}
	}

	has(render("istio-base", "base"), "CustomResourceDefinition/workloadgroups.networking.istio.io")
	istiod := render("istiod-canary", "istio-control/istio-discovery", "revision=canary", "revisionTags={prod}")
	has(istiod, "Deployment/istiod-canary", "ConfigMap/istio-canary", "MutatingWebhookConfiguration/istio-revision-tag-prod", "Service/istiod-revision-tag-prod")
	if d := istiod["Deployment/istiod-canary"]; d != nil {
		containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
		revision := ""
		for _, c := range containers {
			env, _, _ := unstructured.NestedSlice(c.(map[string]any), "env")
			for _, e := range env {
				if m := e.(map[string]any); m["name"] == "REVISION" {
					revision, _ = m["value"].(string)
				}
			}
		}
		if revision != "canary" {
			t.Errorf("istiod-canary's REVISION is %q, want canary (the istiod the harness runs takes its env)", revision)
		}
	}
	has(render("istio-eastwestgateway", "gateway", "name=istio-eastwestgateway"), "Deployment/istio-eastwestgateway", "Service/istio-eastwestgateway")
}
