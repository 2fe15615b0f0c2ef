package k8s

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// WorkloadGroup reads a WorkloadGroup from the API server, as JSON, in the
// version the cluster prefers (Istio before 1.22 serves no v1).
func (c *Client) WorkloadGroup(ctx context.Context, namespace, name string) ([]byte, error) {
	m, err := c.Mapper.RESTMapping(schema.GroupKind{Group: "networking.istio.io", Kind: "WorkloadGroup"})
	if meta.IsNoMatchError(err) {
		return nil, fmt.Errorf("the cluster has no WorkloadGroup resource: are Istio's CRDs installed?")
	}
	if err != nil {
		return nil, err
	}
	ctx, cancel := WithTimeout(ctx)
	defer cancel()
	wg, err := c.Dynamic.Resource(m.Resource).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("workloadgroup %s not found in namespace %s: check --name and -n (kubectl get workloadgroups -A lists them)", name, namespace)
	}
	if err != nil {
		return nil, fmt.Errorf("reading workloadgroup %s in namespace %s: %w", name, namespace, err)
	}
	return wg.MarshalJSON()
}
