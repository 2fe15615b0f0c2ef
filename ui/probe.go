package ui

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vm2mesh/vm2mesh/k8s"
)

// clusterInfo is what the settings pages show about a kube context and take
// defaults from. Read-only.
type clusterInfo struct {
	summary    string   // API server, Kubernetes version, istiod
	namespaces []string // existing namespaces, as suggestions
	gateway    string   // the east-west gateway's discovered address, if any
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
	istiod, err := c.Istiod(ctx, ns, "")
	switch {
	case err != nil:
		info.summary = fmt.Sprintf("%s · Kubernetes %s · istiod: %v", c.Server, version, err)
	case istiod.Found:
		info.summary = fmt.Sprintf("%s · Kubernetes %s · istiod %s runs in %s", c.Server, version, orDash(istiod.Version), ns)
	default:
		info.summary = fmt.Sprintf("%s · Kubernetes %s · no istiod in %s yet", c.Server, version, ns)
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

func orDash(s string) string {
	if s == "" {
		return "(version unknown)"
	}
	return s
}
