package k8s

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
)

// What istiod's autoregistration (pilot/pkg/autoregistration) puts on the
// WorkloadEntry it creates for a connected proxy.
const (
	// AutoRegistrationGroupAnnotation names the WorkloadGroup the entry was made from.
	AutoRegistrationGroupAnnotation = "istio.io/autoRegistrationGroup"
	// HealthChecksAnnotation is set when the group's template has a probe, so
	// the agent reports health and istiod keeps a Healthy condition.
	HealthChecksAnnotation = "proxy.istio.io/health-checks-enabled"
)

var workloadEntries = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "workloadentries"}

// WorkloadEntry is what vm-verify reports of an autoregistered entry.
type WorkloadEntry struct {
	Namespace, Name string
	Address         string
	Network         string
	Labels          map[string]string
	HealthChecks    bool   // the entry is health-checked
	Health          string // the Healthy condition's status ("True", "False"); "" when there is none yet
	HealthMessage   string
	Deleting        bool // istiod is removing it
}

// HealthText says the entry's health in words.
func (w WorkloadEntry) HealthText() string {
	switch {
	case !w.HealthChecks:
		return "not health-checked (the WorkloadGroup has no probe)"
	case w.Health == "True":
		return "healthy"
	case w.Health == "False":
		if w.HealthMessage != "" {
			return "unhealthy: " + w.HealthMessage
		}
		return "unhealthy"
	}
	return "health not reported yet"
}

// LabelText is the labels as key=value, sorted.
func (w WorkloadEntry) LabelText() string {
	var kv []string
	for k, v := range w.Labels {
		kv = append(kv, k+"="+v)
	}
	slices.Sort(kv)
	return strings.Join(kv, ",")
}

// AutoregisteredName is the name istiod gives the entry of a proxy at address
// in group: <group>-<ip>[-<network>], ':' of an IPv6 address made '-'.
func AutoregisteredName(group, address, network string) string {
	p := []string{group, strings.ReplaceAll(address, ":", "-")}
	if network != "" {
		p = append(p, network)
	}
	name := strings.Join(p, "-")
	if len(name) > 253 { // istiod keeps the end
		name = name[len(name)-253:]
	}
	return name
}

// WorkloadEntries lists the entries istiod autoregistered in namespace for
// group; with address set, only those at that address.
func (c *Client) WorkloadEntries(ctx context.Context, namespace, group, address string) ([]WorkloadEntry, error) {
	ctx, cancel := WithTimeout(ctx)
	defer cancel()
	list, err := c.Dynamic.Resource(workloadEntries).Namespace(namespace).List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("the cluster has no WorkloadEntry kind (networking.istio.io/v1): is Istio installed?")
	}
	if err != nil {
		return nil, c.explain(err)
	}
	var out []WorkloadEntry
	for _, u := range list.Items {
		if u.GetAnnotations()[AutoRegistrationGroupAnnotation] != group {
			continue
		}
		w := workloadEntryOf(&u)
		if address == "" || w.Address == address {
			out = append(out, w)
		}
	}
	return out, nil
}

func workloadEntryOf(u *unstructured.Unstructured) WorkloadEntry {
	w := WorkloadEntry{Namespace: u.GetNamespace(), Name: u.GetName(), Deleting: u.GetDeletionTimestamp() != nil}
	w.Address, _, _ = unstructured.NestedString(u.Object, "spec", "address")
	w.Network, _, _ = unstructured.NestedString(u.Object, "spec", "network")
	w.Labels, _, _ = unstructured.NestedStringMap(u.Object, "spec", "labels")
	if len(w.Labels) == 0 {
		w.Labels = u.GetLabels()
	}
	w.HealthChecks = u.GetAnnotations()[HealthChecksAnnotation] == "true"
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok || m["type"] != "Healthy" {
			continue
		}
		w.Health, _ = m["status"].(string)
		w.HealthMessage, _ = m["message"].(string)
	}
	return w
}

// WaitWorkloadEntry polls until istiod has registered an entry for group at
// address (any address when empty), or timeout passes: then it returns nil and
// no error, and the caller says why that may be.
func (c *Client) WaitWorkloadEntry(ctx context.Context, namespace, group, address string, timeout time.Duration) (*WorkloadEntry, error) {
	var found *WorkloadEntry
	var lastErr error
	listed := false // one answer is enough to say there is none; the wait's end can cut off the last request
	_ = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		ws, err := c.WorkloadEntries(ctx, namespace, group, address)
		if err != nil {
			lastErr = err // the API server may be briefly away: keep asking until the wait ends
			return false, nil
		}
		listed = true
		for i := range ws {
			if !ws[i].Deleting {
				found = &ws[i]
				return true, nil
			}
		}
		return false, nil
	})
	if found != nil {
		return found, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if !listed {
		return nil, lastErr
	}
	// The wait ran out: no entry is the caller's verdict to give.
	return nil, nil
}

var workloadGroups = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "workloadgroups"}

// WorkloadGroupNamespaces are the namespaces that hold a WorkloadGroup named
// name, so a missing entry can be blamed on a group in the wrong place.
func (c *Client) WorkloadGroupNamespaces(ctx context.Context, name string) ([]string, error) {
	ctx, cancel := WithTimeout(ctx)
	defer cancel()
	list, err := c.Dynamic.Resource(workloadGroups).List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		return nil, c.explain(err)
	}
	var ns []string
	for _, u := range list.Items {
		ns = append(ns, u.GetNamespace())
	}
	slices.Sort(ns)
	return ns, nil
}
