// Package k8s is vm2mesh's door to the cluster: kubeconfig loading the way kubectl
// does it, server-side apply of YAML, tokens, ConfigMaps, the gateway address and
// the istioctl runner. Every call takes a context; CallTimeout bounds the ones whose
// caller gave none.
package k8s

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
)

// CallTimeout bounds a single API request, so a dead API server is an error,
// not a hang.
const CallTimeout = 30 * time.Second

// Options say which cluster to talk to, as kubectl's --kubeconfig and --context do.
type Options struct {
	Kubeconfig string // empty: $KUBECONFIG, then ~/.kube/config
	Context    string // empty: the kubeconfig's current context
	// NoStdin tells exec credential plugins that stdin is not theirs (the TUI owns
	// the terminal).
	NoStdin bool
}

// Client bundles the typed, dynamic and discovery clients of one cluster.
type Client struct {
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	Mapper  *restmapper.DeferredDiscoveryRESTMapper
	Config  *rest.Config
	Context string // the context name in use
	Server  string // the API server URL
}

// Contexts lists the kubeconfig's context names and the current one.
func Contexts(kubeconfig string) (names []string, current string, err error) {
	raw, err := loader(Options{Kubeconfig: kubeconfig}).RawConfig()
	if err != nil {
		return nil, "", fmt.Errorf("reading kubeconfig: %w", err)
	}
	for name := range raw.Contexts {
		names = append(names, name)
	}
	return names, raw.CurrentContext, nil
}

func loader(o Options) clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.Kubeconfig
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: o.Context})
}

// New loads the kubeconfig and builds the clients. It does not contact the server;
// Ping does.
func New(o Options) (*Client, error) {
	cc := loader(o)
	raw, err := cc.RawConfig()
	if err != nil {
		return nil, fmt.Errorf("reading kubeconfig: %w", err)
	}
	name := o.Context
	if name == "" {
		name = raw.CurrentContext
	}
	if name == "" {
		return nil, errors.New("the kubeconfig has no current context: set kubeContext (or --context) to one of its contexts")
	}
	if _, ok := raw.Contexts[name]; !ok {
		return nil, fmt.Errorf("context %q is not in the kubeconfig: pick one of %s", name, strings.Join(contextNames(raw.Contexts), ", "))
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig context %q: %w", name, err)
	}
	if o.NoStdin && cfg.ExecProvider != nil {
		cfg.ExecProvider.StdinUnavailable = true
		cfg.ExecProvider.StdinUnavailableMessage = "vm2mesh owns the terminal; log in with your credential plugin first"
	}
	cfg.Timeout = CallTimeout
	cfg.QPS, cfg.Burst = 50, 100
	cfg.UserAgent = "vm2mesh"
	return NewForConfig(cfg, name)
}

// NewForConfig builds the clients for an already loaded rest.Config.
func NewForConfig(cfg *rest.Config, contextName string) (*Client, error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Client{
		Kube:    kube,
		Dynamic: dyn,
		Mapper:  restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc)),
		Config:  cfg,
		Context: contextName,
		Server:  cfg.Host,
	}, nil
}

func contextNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Ping checks that the API server answers and accepts our credentials, and turns
// the usual failures into one line with a cause and a fix.
func (c *Client) Ping(ctx context.Context) (version string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	// A namespaced read needs authentication (the /version endpoint does not).
	_, err = c.Kube.CoreV1().Namespaces().Get(ctx, metav1.NamespaceSystem, metav1.GetOptions{})
	if err != nil && !apierrors.IsForbidden(err) {
		return "", c.explain(err)
	}
	v, err := c.Kube.Discovery().ServerVersion()
	if err != nil {
		return "", c.explain(err)
	}
	return v.GitVersion, nil
}

// explain names the cause of a failed first contact and what to do about it.
func (c *Client) explain(err error) error {
	where := fmt.Sprintf("context %q (%s)", c.Context, c.Server)
	var netErr net.Error
	var urlErr *url.Error
	switch {
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("the API server of %s rejected the credentials (401 Unauthorized): they have expired or are wrong; log in again or refresh the kubeconfig", where)
	case errors.As(err, &netErr) && netErr.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("the API server of %s did not answer in time: check the address, VPN or firewall", where)
	case errors.As(err, &urlErr):
		return fmt.Errorf("cannot reach the API server of %s: %v; check that the cluster runs and the kubeconfig points at it", where, urlErr.Err)
	}
	return fmt.Errorf("API server of %s: %w", where, err)
}

// WithTimeout gives ctx the default call deadline unless it already has a sooner one.
func WithTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, CallTimeout)
}
