package k8s

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/metadata"
)

// Manager is who installed a control plane: what vm2mesh may add beside it
// (with istioctl, or as plain manifests) depends on it.
type Manager string

const (
	ManagedByIstioctl  Manager = "istioctl"
	ManagedByHelm      Manager = "Helm"
	ManagedBySail      Manager = "Sail operator"
	ManagedByManifests Manager = "manifests"
)

// The marks installers leave on istiod. istioctl renders Istio's Helm charts
// itself, so its objects carry app.kubernetes.io/managed-by: Helm and the
// charts' owning-resource label too: only istioctl's own labels
// (operator/pkg/install in Istio) and Helm's own annotation and release
// Secrets tell the two apart.
const (
	RevisionLabel = "istio.io/rev"
	TagLabel      = "istio.io/tag"

	istioctlManagedLabel  = "operator.istio.io/managed"                 // "Reconcile", set by istioctl only
	istioctlOwnerLabel    = "install.operator.istio.io/owning-resource" // the IstioOperator; "unknown" from a Helm install
	helmReleaseAnnotation = "meta.helm.sh/release-name"
	helmReleaseSecretType = "helm.sh/release.v1"
	sailOperatorGroup     = "sailoperator.io"
)

var (
	istioOperators = schema.GroupVersionResource{Group: "install.istio.io", Version: "v1alpha1", Resource: "istiooperators"}
	sailRevisions  = schema.GroupVersionResource{Group: sailOperatorGroup, Version: "v1", Resource: "istiorevisions"}
)

// IstiodDeployment names istiod's Deployment for a revision.
func IstiodDeployment(revision string) string {
	if revision == "" || revision == "default" {
		return "istiod"
	}
	return "istiod-" + revision
}

// IstiodInfo is what vm2mesh needs to know about a running istiod.
type IstiodInfo struct {
	Found     bool
	Name      string            // the Deployment
	Namespace string            // where it runs
	Revision  string            // istio.io/rev; "default" when it has none
	Version   string            // from the image tag; "" when it has none
	Env       map[string]string // the discovery container's literal env values
	Manager   Manager
	Owner     string // the Helm release, IstioOperator or IstioRevision; "" when unknown

	envFromRef   map[string]bool // env set from a ConfigMap, Secret or field: its value is not known here
	helmInstance string          // the chart's release label, to find the release Secret by
	meta         metav1.ObjectMeta
}

// istiodDefaults are the values istiod takes when its env leaves a setting unset
// or not a boolean (Istio's pilot/pkg/features).
var istiodDefaults = map[string]bool{
	"PILOT_ENABLE_WORKLOAD_ENTRY_AUTOREGISTRATION": true,
	"PILOT_ENABLE_WORKLOAD_ENTRY_HEALTHCHECKS":     true,
}

// Flag reads a boolean setting of istiod as istiod does: unset or unparsable
// is Istio's default. known is false when the value is not in the Deployment
// (set from a ConfigMap, say) or the default is not one vm2mesh knows.
func (i IstiodInfo) Flag(name string) (on, known bool) {
	if i.envFromRef[name] {
		return false, false
	}
	def, hasDefault := istiodDefaults[name]
	v, set := i.Env[name]
	if !set {
		return def, hasDefault
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return def, hasDefault
	}
	return b, true
}

// ManagedBy names the installer for people: "Helm release istiod-canary".
func (i IstiodInfo) ManagedBy() string {
	owner := func(what string) string {
		if i.Owner == "" {
			return ""
		}
		return what + i.Owner
	}
	switch i.Manager {
	case ManagedByHelm:
		if i.Owner == "" {
			return "Helm"
		}
		return "Helm release " + i.Owner
	case ManagedByIstioctl:
		return "istioctl" + owner(", IstioOperator ")
	case ManagedBySail:
		return "Sail operator" + owner(", IstioRevision ")
	}
	return "plain manifests"
}

// Describe is one istiod in one line: "istiod 1.31.1 revision canary in
// istio-system (Helm release istiod-canary)".
func (i IstiodInfo) Describe() string {
	v := i.Version
	if v == "" {
		v = "(version unknown)"
	}
	return fmt.Sprintf("istiod %s revision %s in %s (%s)", v, i.Revision, i.Namespace, i.ManagedBy())
}

// Istiod finds istiod's Deployment for the revision in namespace and reads its
// version from the image tag.
func (c *Client) Istiod(ctx context.Context, namespace, revision string) (IstiodInfo, error) {
	ctx, cancel := WithTimeout(ctx)
	defer cancel()
	d, err := c.Kube.AppsV1().Deployments(namespace).Get(ctx, IstiodDeployment(revision), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return IstiodInfo{}, nil
	}
	if err != nil {
		return IstiodInfo{}, err
	}
	return readIstiod(d), nil
}

// readIstiod reads what the Deployment says about its istiod; Manager is left
// for whoManages.
func readIstiod(d *appsv1.Deployment) IstiodInfo {
	info := IstiodInfo{Found: true, Name: d.Name, Namespace: d.Namespace, Env: map[string]string{}, envFromRef: map[string]bool{}, meta: d.ObjectMeta}
	labels := d.Labels
	info.helmInstance = labels["app.kubernetes.io/instance"]
	if info.helmInstance == "" {
		info.helmInstance = labels["release"]
	}
	containers := d.Spec.Template.Spec.Containers
	if len(containers) > 0 {
		discovery := containers[0]
		for _, ct := range containers {
			if ct.Name == "discovery" {
				discovery = ct
			}
		}
		info.Version = ImageTagVersion(discovery.Image)
		// A later entry of the same name wins, as in the pod.
		for _, e := range discovery.Env {
			if e.ValueFrom != nil {
				delete(info.Env, e.Name)
				info.envFromRef[e.Name] = true
				continue
			}
			delete(info.envFromRef, e.Name)
			info.Env[e.Name] = e.Value
		}
	}
	switch {
	case labels[RevisionLabel] != "":
		info.Revision = labels[RevisionLabel]
	case info.Env["REVISION"] != "":
		info.Revision = info.Env["REVISION"]
	case strings.HasPrefix(d.Name, "istiod-"):
		info.Revision = strings.TrimPrefix(d.Name, "istiod-")
	default:
		info.Revision = "default"
	}
	return info
}

// RevisionTag is an istio.io/tag webhook: an alias for a revision.
type RevisionTag struct {
	Name      string
	Revision  string
	Namespace string // of the istiod its webhook calls; "" when it names none
}

// Mesh is every Istio control plane in the cluster, as DiscoverMesh found it.
type Mesh struct {
	Istiods []IstiodInfo  // by namespace, then revision
	Tags    []RevisionTag // by name
	// DefaultRevision is the revision the tag "default" points at, else the
	// revision of the untagged istio-sidecar-injector webhook; "" when none.
	DefaultRevision string
}

// DiscoverMesh finds every istiod in the cluster (Deployments labelled
// app=istiod, or named istiod or istiod-<rev> with a discovery container), who
// installed each, the revision tags and the default revision. Lookups the
// credentials may not make (Secrets, other tools' resources) are left out
// rather than failing; every request has its deadline.
func (c *Client) DiscoverMesh(ctx context.Context) (Mesh, error) {
	var m Mesh
	istiods, err := c.istiods(ctx)
	if apierrors.IsForbidden(err) {
		return m, fmt.Errorf("looking for istiod in every namespace: %w; vm2mesh lists Deployments cluster-wide before it installs or joins a control plane: use credentials that may (it works as a cluster admin)", err)
	}
	if err != nil {
		return m, fmt.Errorf("looking for istiod Deployments: %w", err)
	}
	if err := c.whoManages(ctx, istiods); err != nil {
		return m, err
	}
	sort.Slice(istiods, func(a, b int) bool {
		if istiods[a].Namespace != istiods[b].Namespace {
			return istiods[a].Namespace < istiods[b].Namespace
		}
		return istiods[a].Revision < istiods[b].Revision
	})
	m.Istiods = istiods
	if err := c.revisionTags(ctx, &m); err != nil {
		return m, fmt.Errorf("looking for Istio's revision tags (MutatingWebhookConfigurations): %w", err)
	}
	return m, nil
}

func (c *Client) istiods(ctx context.Context) ([]IstiodInfo, error) {
	var out []IstiodInfo
	seen := map[string]bool{}
	err := pages(ctx, func(ctx context.Context, cont string) (string, error) {
		list, err := c.Kube.AppsV1().Deployments("").List(ctx, metav1.ListOptions{LabelSelector: "app=istiod", Limit: 500, Continue: cont})
		if err != nil {
			return "", err
		}
		for i := range list.Items {
			d := &list.Items[i]
			seen[d.Namespace+"/"+d.Name] = true
			out = append(out, readIstiod(d))
		}
		return list.Continue, nil
	})
	if err != nil {
		return nil, err
	}
	// An istiod without the label (a hand-written manifest) is found by its name:
	// names only are listed, and those that match are read in full.
	meta, err := metadata.NewForConfig(c.Config)
	if err != nil {
		return nil, err
	}
	deployments := meta.Resource(appsv1.SchemeGroupVersion.WithResource("deployments"))
	var named [][2]string
	err = pages(ctx, func(ctx context.Context, cont string) (string, error) {
		list, err := deployments.List(ctx, metav1.ListOptions{Limit: 500, Continue: cont})
		if err != nil {
			return "", err
		}
		for _, d := range list.Items {
			if (d.Name == "istiod" || strings.HasPrefix(d.Name, "istiod-")) && !seen[d.Namespace+"/"+d.Name] {
				named = append(named, [2]string{d.Namespace, d.Name})
			}
		}
		return list.Continue, nil
	})
	if err != nil {
		return nil, err
	}
	for _, n := range named {
		cctx, cancel := WithTimeout(ctx)
		d, err := c.Kube.AppsV1().Deployments(n[0]).Get(cctx, n[1], metav1.GetOptions{})
		cancel()
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(d.Spec.Template.Spec.Containers, func(ct corev1.Container) bool { return ct.Name == "discovery" }) {
			out = append(out, readIstiod(d))
		}
	}
	return out, nil
}

// pages runs a paged list call until the server has no more, each page under
// its own deadline.
func pages(ctx context.Context, page func(ctx context.Context, cont string) (string, error)) error {
	cont := ""
	for {
		cctx, cancel := WithTimeout(ctx)
		next, err := page(cctx, cont)
		cancel()
		if err != nil || next == "" {
			return err
		}
		cont = next
	}
}

// whoManages sets Manager and Owner: the Sail operator (its IstioRevision owns
// the Deployment), istioctl (its labels, or an installed-state IstioOperator of
// the revision), Helm (its annotation, or a release Secret of the chart's
// release), else plain manifests.
func (c *Client) whoManages(ctx context.Context, istiods []IstiodInfo) error {
	sail, err := c.sailRevisions(ctx)
	if err != nil {
		return err
	}
	operators := map[string]map[string]string{} // namespace -> revision -> installed-state IstioOperator
	releases := map[string]map[string]bool{}    // namespace -> Helm releases
	for i := range istiods {
		is := &istiods[i]
		d := &is.meta
		if owner := sailOwner(d, is, sail); owner != "" {
			is.Manager, is.Owner = ManagedBySail, owner
			continue
		}
		if d.Labels[istioctlManagedLabel] == "Reconcile" || (d.Labels[istioctlOwnerLabel] != "" && d.Labels[istioctlOwnerLabel] != "unknown") {
			is.Manager, is.Owner = ManagedByIstioctl, d.Labels[istioctlOwnerLabel]
			if is.Owner == "unknown" {
				is.Owner = ""
			}
			continue
		}
		if _, ok := operators[is.Namespace]; !ok {
			if operators[is.Namespace], err = c.installedStates(ctx, is.Namespace); err != nil {
				return err
			}
		}
		if iop := operators[is.Namespace][is.Revision]; iop != "" {
			is.Manager, is.Owner = ManagedByIstioctl, iop
			continue
		}
		if r := d.Annotations[helmReleaseAnnotation]; r != "" {
			is.Manager, is.Owner = ManagedByHelm, r
			continue
		}
		if _, ok := releases[is.Namespace]; !ok {
			if releases[is.Namespace], err = c.helmReleases(ctx, is.Namespace); err != nil {
				return err
			}
		}
		if is.helmInstance != "" && releases[is.Namespace][is.helmInstance] {
			is.Manager, is.Owner = ManagedByHelm, is.helmInstance
			continue
		}
		is.Manager = ManagedByManifests
	}
	return nil
}

// sailOwner is the IstioRevision behind the istiod, or "".
func sailOwner(d *metav1.ObjectMeta, is *IstiodInfo, sail map[string]string) string {
	for _, ref := range d.OwnerReferences {
		if group, _, _ := strings.Cut(ref.APIVersion, "/"); group == sailOperatorGroup {
			return ref.Name
		}
	}
	return sail[is.Namespace+"/"+is.Revision]
}

// sailRevisions maps namespace/revision to the Sail operator's IstioRevision;
// empty when the cluster has no Sail CRDs (or we may not list them).
func (c *Client) sailRevisions(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	ctx, cancel := WithTimeout(ctx)
	defer cancel()
	list, err := c.Dynamic.Resource(sailRevisions).List(ctx, metav1.ListOptions{})
	if absent(err) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing the Sail operator's IstioRevisions: %w", err)
	}
	for _, r := range list.Items {
		ns, _, _ := unstructured.NestedString(r.Object, "spec", "namespace")
		out[ns+"/"+r.GetName()] = r.GetName()
	}
	return out, nil
}

// installedStates maps revision to the installed-state IstioOperator istioctl
// saved in ns (older istioctl releases save one per install).
func (c *Client) installedStates(ctx context.Context, ns string) (map[string]string, error) {
	out := map[string]string{}
	ctx, cancel := WithTimeout(ctx)
	defer cancel()
	list, err := c.Dynamic.Resource(istioOperators).Namespace(ns).List(ctx, metav1.ListOptions{})
	if absent(err) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing IstioOperators in %s: %w", ns, err)
	}
	for _, o := range list.Items {
		if !strings.HasPrefix(o.GetName(), "installed-state") {
			continue
		}
		rev, _, _ := unstructured.NestedString(o.Object, "spec", "revision")
		if rev == "" {
			rev = "default"
		}
		out[rev] = o.GetName()
	}
	return out, nil
}

// helmReleases are the names of the Helm releases in ns, from their release
// Secrets' labels (only metadata is read: the Secrets hold whole charts).
func (c *Client) helmReleases(ctx context.Context, ns string) (map[string]bool, error) {
	out := map[string]bool{}
	meta, err := metadata.NewForConfig(c.Config)
	if err != nil {
		return nil, err
	}
	ctx, cancel := WithTimeout(ctx)
	defer cancel()
	list, err := meta.Resource(schema.GroupVersionResource{Version: "v1", Resource: "secrets"}).Namespace(ns).List(ctx,
		metav1.ListOptions{LabelSelector: "owner=helm", FieldSelector: "type=" + helmReleaseSecretType})
	if absent(err) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing Helm release Secrets in %s: %w", ns, err)
	}
	for _, s := range list.Items {
		if name := s.Labels["name"]; name != "" {
			out[name] = true
		}
	}
	return out, nil
}

// absent: the resource does not exist in this cluster, or these credentials
// may not list it. Either way there is nothing to learn from it.
func absent(err error) bool {
	return apierrors.IsNotFound(err) || apierrors.IsForbidden(err) || apierrors.IsMethodNotSupported(err)
}

// revisionTags reads the injector webhooks: those labelled istio.io/tag are
// tags; the default revision is the tag "default"'s, else the untagged
// istio-sidecar-injector's.
func (c *Client) revisionTags(ctx context.Context, m *Mesh) error {
	ctx, cancel := WithTimeout(ctx)
	defer cancel()
	list, err := c.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{LabelSelector: RevisionLabel})
	if apierrors.IsForbidden(err) {
		return nil
	}
	if err != nil {
		return err
	}
	untaggedDefault := ""
	for _, w := range list.Items {
		rev := w.Labels[RevisionLabel]
		ns := ""
		if len(w.Webhooks) > 0 && w.Webhooks[0].ClientConfig.Service != nil {
			ns = w.Webhooks[0].ClientConfig.Service.Namespace
		}
		if tag := w.Labels[TagLabel]; tag != "" {
			m.Tags = append(m.Tags, RevisionTag{Name: tag, Revision: rev, Namespace: ns})
			continue
		}
		if w.Name == "istio-sidecar-injector" || (ns != "" && w.Name == "istio-sidecar-injector-"+ns) {
			untaggedDefault = rev
		}
	}
	sort.Slice(m.Tags, func(a, b int) bool { return m.Tags[a].Name < m.Tags[b].Name })
	m.DefaultRevision = untaggedDefault
	for _, t := range m.Tags {
		if t.Name == "default" {
			m.DefaultRevision = t.Revision
		}
	}
	return nil
}

// Resolve turns a revision or a tag into a revision: a revision's name first,
// as istioctl does, then a tag. ok is false when it is neither.
func (m Mesh) Resolve(name string) (revision string, isTag, ok bool) {
	if name == "" {
		name = "default"
	}
	for _, is := range m.Istiods {
		if is.Revision == name {
			return name, false, true
		}
	}
	for _, t := range m.Tags {
		if t.Name == name {
			return t.Revision, true, true
		}
	}
	return "", false, false
}

// Find is the istiod of a revision in a namespace.
func (m Mesh) Find(namespace, revision string) (IstiodInfo, bool) {
	if revision == "" {
		revision = "default"
	}
	for _, is := range m.Istiods {
		if is.Namespace == namespace && is.Revision == revision {
			return is, true
		}
	}
	return IstiodInfo{}, false
}

// In lists the istiods of a namespace.
func (m Mesh) In(namespace string) []IstiodInfo {
	var out []IstiodInfo
	for _, is := range m.Istiods {
		if is.Namespace == namespace {
			out = append(out, is)
		}
	}
	return out
}

// Summary is the mesh in one line: every istiod, then the tags and the default
// revision.
func (m Mesh) Summary() string {
	if len(m.Istiods) == 0 {
		return "no istiod in the cluster" + m.tagSummary()
	}
	parts := make([]string, len(m.Istiods))
	for i, is := range m.Istiods {
		parts[i] = is.Describe()
	}
	return strings.Join(parts, ", ") + m.tagSummary()
}

func (m Mesh) tagSummary() string {
	var out string
	hasDefaultTag := false
	if len(m.Tags) > 0 {
		tags := make([]string, len(m.Tags))
		for i, t := range m.Tags {
			tags[i] = t.Name + " -> " + t.Revision
			hasDefaultTag = hasDefaultTag || t.Name == "default"
		}
		out = "; tags: " + strings.Join(tags, ", ")
	}
	if m.DefaultRevision != "" && !hasDefaultTag && len(m.Istiods) > 1 {
		out += "; default revision " + m.DefaultRevision
	}
	return out
}
