package k8s

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
)

// FieldManager is who vm2mesh is in managedFields.
const FieldManager = "vm2mesh"

// ParseObjects splits multi-document YAML into objects, skipping empty documents.
func ParseObjects(data []byte) ([]*unstructured.Unstructured, error) {
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		obj := map[string]any{}
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("parsing manifest: %w", err)
		}
		if len(obj) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		if u.GetKind() == "" || u.GetAPIVersion() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("manifest document without apiVersion, kind or metadata.name")
		}
		out = append(out, u)
	}
}

// Describe names an object the way kubectl prints it: kind/name (namespace).
func Describe(u *unstructured.Unstructured) string {
	if ns := u.GetNamespace(); ns != "" {
		return fmt.Sprintf("%s/%s in %s", u.GetKind(), u.GetName(), ns)
	}
	return fmt.Sprintf("%s/%s", u.GetKind(), u.GetName())
}

func (c *Client) resource(u *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := u.GroupVersionKind()
	m, err := c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		// CRDs may have arrived since discovery was cached (istioctl install).
		c.Mapper.Reset()
		m, err = c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if meta.IsNoMatchError(err) {
		return nil, fmt.Errorf("the cluster has no %s in %s: are Istio's CRDs installed? (install Istio first)", gvk.Kind, gvk.GroupVersion())
	}
	if err != nil {
		return nil, err
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return c.Dynamic.Resource(m.Resource).Namespace(u.GetNamespace()), nil
	}
	return c.Dynamic.Resource(m.Resource), nil
}

// Apply server-side applies obj as vm2mesh. Conflicts with other field managers
// are errors that say who owns the field: we do not take fields over silently.
func (c *Client) Apply(ctx context.Context, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	return c.apply(ctx, obj, false)
}

func (c *Client) apply(ctx context.Context, obj *unstructured.Unstructured, dryRun bool) (*unstructured.Unstructured, error) {
	ri, err := c.resource(obj)
	if err != nil {
		return nil, err
	}
	ctx, cancel := WithTimeout(ctx)
	defer cancel()
	opts := metav1.ApplyOptions{FieldManager: FieldManager}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	out, err := ri.Apply(ctx, obj.GetName(), obj, opts)
	if apierrors.IsConflict(err) {
		return nil, fmt.Errorf("%s: another tool manages fields we would change (%v); change them back, or delete the object so vm2mesh can own it", Describe(obj), err)
	}
	if err != nil {
		return nil, fmt.Errorf("applying %s: %w", Describe(obj), err)
	}
	return out, nil
}

// UpToDate says whether applying obj would change nothing: the object exists and a
// server-side dry-run apply returns it unchanged (ignoring bookkeeping metadata).
func (c *Client) UpToDate(ctx context.Context, obj *unstructured.Unstructured) (bool, error) {
	ri, err := c.resource(obj)
	if err != nil {
		return false, err
	}
	gctx, cancel := WithTimeout(ctx)
	defer cancel()
	live, err := ri.Get(gctx, obj.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	would, err := c.apply(ctx, obj, true)
	if err != nil {
		return false, err
	}
	return reflect.DeepEqual(strip(live.Object), strip(would.Object)), nil
}

// strip drops what changes on every write without changing the object's meaning.
func strip(obj map[string]any) map[string]any {
	u := (&unstructured.Unstructured{Object: obj}).DeepCopy()
	u.SetManagedFields(nil)
	u.SetResourceVersion("")
	u.SetGeneration(0)
	return u.Object
}

// Exists says whether the object named like obj is in the cluster.
func (c *Client) Exists(ctx context.Context, obj *unstructured.Unstructured) (bool, error) {
	ri, err := c.resource(obj)
	if err != nil {
		return false, err
	}
	ctx, cancel := WithTimeout(ctx)
	defer cancel()
	_, err = ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}
