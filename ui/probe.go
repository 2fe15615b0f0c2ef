package ui

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"charm.land/huh/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vm2mesh/vm2mesh/k8s"
)

// clusterInfo is what the settings pages show about a kube context and take
// defaults from. Read-only.
type clusterInfo struct {
	summary    string   // API server, Kubernetes version, the mesh in one line
	namespaces []string // existing namespaces, as suggestions
	gateway    string   // the east-west gateway's discovered address, if any
	mesh       k8s.Mesh // every istiod and tag, for the revision choice
}

// prober looks each context up once, in the background of the form (huh runs
// these functions as commands), with a short deadline.
type prober struct {
	kubeconfig string
	istioNS    func() string
	mu         sync.Mutex
	seen       map[string]*probe
}

type probe struct {
	once sync.Once
	info clusterInfo
}

func (p *prober) get(context string) clusterInfo {
	p.mu.Lock()
	if p.seen == nil {
		p.seen = map[string]*probe{}
	}
	pr, ok := p.seen[context]
	if !ok {
		pr = &probe{}
		p.seen[context] = pr
	}
	p.mu.Unlock()
	pr.once.Do(func() { pr.info = p.look(context) })
	return pr.info
}

func (p *prober) look(kubeContext string) clusterInfo {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := k8s.New(k8s.Options{Kubeconfig: p.kubeconfig, Context: kubeContext, NoStdin: true})
	if err != nil {
		return clusterInfo{summary: err.Error()}
	}
	version, err := c.Ping(ctx)
	if err != nil {
		return clusterInfo{summary: err.Error()}
	}
	info := clusterInfo{}
	ns := p.istioNS()
	mesh, err := c.DiscoverMesh(ctx)
	if err != nil {
		info.summary = fmt.Sprintf("%s · Kubernetes %s · istiod: %v", c.Server, version, err)
	} else {
		info.mesh = mesh
		info.summary = fmt.Sprintf("%s · Kubernetes %s · %s", c.Server, version, mesh.Summary())
	}
	if list, err := c.Kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); err == nil {
		for _, n := range list.Items {
			info.namespaces = append(info.namespaces, n.Name)
		}
		sort.Strings(info.namespaces)
	}
	if addr, err := c.GatewayAddress(ctx, ns, "istio-eastwestgateway", nil); err == nil {
		info.gateway = addr.IP + " (" + addr.Source + ")"
	}
	return info
}

// revisionOptions are the revisions and tags the VM can join, the default
// revision first, each with its istiod's version; with no istiod, the one
// vm2mesh installs. current stays a choice, so an answers file's revision is
// kept (the preflight says what is wrong with it).
func revisionOptions(m k8s.Mesh, current string) []huh.Option[string] {
	var opts []huh.Option[string]
	has := map[string]bool{}
	add := func(label, value string) {
		if !has[value] {
			has[value] = true
			opts = append(opts, huh.NewOption(label, value))
		}
	}
	istiods := append([]k8s.IstiodInfo(nil), m.Istiods...)
	sort.SliceStable(istiods, func(a, b int) bool {
		return istiods[a].Revision == m.DefaultRevision && istiods[b].Revision != m.DefaultRevision
	})
	version := map[string]string{}
	revisions := map[string]bool{}
	for _, is := range istiods {
		version[is.Revision] = orDash(is.Version)
		revisions[is.Revision] = true
	}
	switch {
	case len(istiods) == 0:
		add("default: no istiod runs, vm2mesh installs one", "")
	case len(revisions) == 1 && current == "":
		// Left empty, as an answers file would: the only revision is the one.
		is := istiods[0]
		add(fmt.Sprintf("%s: istiod %s in %s (%s), the only one", is.Revision, orDash(is.Version), is.Namespace, is.ManagedBy()), "")
	default:
		for _, is := range istiods {
			add(fmt.Sprintf("%s: istiod %s in %s (%s)", is.Revision, orDash(is.Version), is.Namespace, is.ManagedBy()), is.Revision)
		}
	}
	for _, t := range m.Tags {
		add(fmt.Sprintf("%s: tag -> %s (istiod %s)", t.Name, t.Revision, version[t.Revision]), t.Name)
	}
	if current != "" {
		add(current+": as the answers file says", current)
	}
	return opts
}

func orDash(s string) string {
	if s == "" {
		return "(version unknown)"
	}
	return s
}
