package vmconfig

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/vm2mesh/vm2mesh/k8s"
)

// Options are istioctl's flags for `x workload entry configure`, plus ours.
type Options struct {
	IstioNamespace string
	Revision       string
	ClusterID      string
	ClusterIDSet   bool // false: read it from the sidecar injector's values
	IngressIP      string
	IngressService string // "svc" (in IstioNamespace) or "svc.namespace"
	InternalIP     string
	ExternalIP     string
	TokenDuration  int64
	AutoRegister   bool
	CaptureDNS     bool
	// RootCertWait is how long to wait for istiod to write istio-ca-root-cert into
	// the namespace; 0 reads once, as istioctl does.
	RootCertWait time.Duration
	Resolver     k8s.Resolver
	// NoToken leaves Files.Token empty: for checking whether the other four are
	// current without minting a token.
	NoToken bool
}

// Files are the five files, in memory.
type Files struct {
	ClusterEnv []byte
	MeshYAML   []byte
	RootCert   []byte
	Token      []byte
	Hosts      []byte
	// GatewaySource says where the hosts address came from ("" when none).
	GatewaySource string
	Warnings      []string
}

// Generate reads what the files need from the cluster and renders them. Nothing
// is written: a failure leaves no half-made set behind. The reads (and the
// TokenRequest, which changes nothing in the cluster) are independent, so they
// go out together; errors are reported in the order istioctl meets them.
func Generate(ctx context.Context, c *k8s.Client, wg *WorkloadGroup, o Options) (*Files, error) {
	if o.InternalIP != "" && o.ExternalIP != "" {
		return nil, fmt.Errorf("the flags --internalIP and --externalIP are mutually exclusive")
	}
	var (
		all                sync.WaitGroup
		clusterID          = o.ClusterID
		idErr, cmErr       error
		rootErr, tokenErr  error
		cm                 *corev1.ConfigMap
		root, token        string
		addr               k8s.GatewayAddress
		addrErr            error
		ingressIP          = o.IngressIP
		ingressIsAnAddress = isAddr(o.IngressIP)
		meshCM             = "istio"
	)
	if Revisioned(o.Revision) {
		meshCM += "-" + o.Revision
	}
	if !o.ClusterIDSet {
		all.Go(func() {
			var id string
			if id, idErr = clusterIDFromInjector(ctx, c, o.IstioNamespace, o.Revision); idErr == nil && id != "" {
				clusterID = id
			}
		})
	}
	all.Go(func() { cm, cmErr = c.ConfigMap(ctx, o.IstioNamespace, meshCM) })
	if !ingressIsAnAddress {
		all.Go(func() {
			ns, svc := o.IstioNamespace, o.IngressService
			if a, b, ok := strings.Cut(svc, "."); ok && !strings.Contains(b, ".") {
				svc, ns = a, b
			}
			addr, addrErr = c.GatewayAddress(ctx, ns, svc, o.Resolver)
		})
	}
	all.Go(func() { root, rootErr = rootCert(ctx, c, wg.Namespace, o.RootCertWait) })
	if !o.NoToken {
		all.Go(func() {
			sa := wg.Spec.GetTemplate().GetServiceAccount()
			token, tokenErr = c.Token(ctx, wg.Namespace, sa, k8s.IstioCAAudience, o.TokenDuration)
		})
	}
	all.Wait()

	if idErr != nil {
		return nil, fmt.Errorf("failed to automatically determine the --clusterID: %w", idErr)
	}
	if cmErr != nil {
		return nil, cmErr
	}
	if cm == nil {
		return nil, fmt.Errorf("configmap %s was not found in namespace %s: is Istio (revision %q) installed?", meshCM, o.IstioNamespace, o.Revision)
	}
	f := &Files{}
	switch {
	case ingressIsAnAddress:
		f.GatewaySource = "--ingressIP"
	case addrErr == nil:
		ingressIP, f.GatewaySource = addr.IP, addr.Source
	default:
		f.Warnings = append(f.Warnings, addrErr.Error())
	}
	r, err := Render(Inputs{
		Group:          wg,
		Mesh:           cm.Data["mesh"],
		IstioNamespace: o.IstioNamespace,
		Revision:       o.Revision,
		ClusterID:      clusterID,
		InternalIP:     o.InternalIP,
		ExternalIP:     o.ExternalIP,
		IngressIP:      ingressIP,
		CaptureDNS:     o.CaptureDNS,
		AutoRegister:   o.AutoRegister,
	})
	if err != nil {
		return nil, err
	}
	f.ClusterEnv, f.MeshYAML, f.Hosts = r.ClusterEnv, r.MeshYAML, r.Hosts
	f.Warnings = append(f.Warnings, r.Warnings...)
	if rootErr != nil {
		return nil, rootErr
	}
	f.RootCert = []byte(root)
	if tokenErr != nil {
		return nil, tokenErr
	}
	f.Token = []byte(token)
	return f, nil
}

func isAddr(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

func rootCert(ctx context.Context, c *k8s.Client, ns string, wait time.Duration) (string, error) {
	const key = "root-cert.pem"
	if wait > 0 {
		return c.WaitConfigMapKey(ctx, ns, k8s.RootCertConfigMap, key, wait)
	}
	cm, err := c.ConfigMap(ctx, ns, k8s.RootCertConfigMap)
	if err != nil {
		return "", err
	}
	if cm == nil {
		return "", fmt.Errorf("configmap %s was not found in namespace %s: istiod writes it into every namespace; is istiod running?", k8s.RootCertConfigMap, ns)
	}
	return cm.Data[key], nil
}

// clusterIDFromInjector reads .global.multiCluster.clusterName from the sidecar
// injector's values, where istioctl finds it.
func clusterIDFromInjector(ctx context.Context, c *k8s.Client, ns, rev string) (string, error) {
	name := "istio-sidecar-injector"
	if Revisioned(rev) {
		name += "-" + rev
	}
	cm, err := c.ConfigMap(ctx, ns, name)
	if err != nil {
		return "", err
	}
	if cm == nil {
		return "", fmt.Errorf("configmap %s not found in namespace %s; give --clusterID", name, ns)
	}
	var values struct {
		Global struct {
			MultiCluster struct {
				ClusterName string `json:"clusterName"`
			} `json:"multiCluster"`
		} `json:"global"`
	}
	if err := json.Unmarshal([]byte(cm.Data["values"]), &values); err != nil {
		return "", fmt.Errorf("configmap %s: values do not parse: %w", name, err)
	}
	return values.Global.MultiCluster.ClusterName, nil
}
