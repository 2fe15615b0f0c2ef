package k8s

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ErrNoGatewayAddress: the gateway Service exists but has no address yet.
var ErrNoGatewayAddress = errors.New("the east-west gateway has no external address")

// ErrGatewayHostUnresolved: the gateway's load balancer gives a hostname that
// does not resolve here.
var ErrGatewayHostUnresolved = errors.New("the gateway's load balancer hostname does not resolve")

// GatewayAddress is where VMs reach istiod through the east-west gateway.
type GatewayAddress struct {
	IP     string
	Source string // how it was found, for the operator: "LoadBalancer IP", ...
}

// Resolver looks up a load balancer's hostname; net.DefaultResolver fits.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// GatewayAddress reads the Service's address: its LoadBalancer IP, else its
// LoadBalancer hostname resolved to an IP (istioctl leaves hosts empty there: a VM
// needs an IP for /etc/hosts), else its first externalIP.
func (c *Client) GatewayAddress(ctx context.Context, namespace, service string, r Resolver) (GatewayAddress, error) {
	cctx, cancel := WithTimeout(ctx)
	defer cancel()
	svc, err := c.Kube.CoreV1().Services(namespace).Get(cctx, service, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return GatewayAddress{}, fmt.Errorf("service %s/%s not found: install the east-west gateway first: %w", namespace, service, ErrNoGatewayAddress)
	}
	if err != nil {
		return GatewayAddress{}, err
	}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IP != "" {
			return GatewayAddress{IP: ing.IP, Source: "LoadBalancer IP"}, nil
		}
	}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.Hostname == "" {
			continue
		}
		ip, err := ResolveHost(ctx, r, ing.Hostname)
		if err != nil {
			return GatewayAddress{}, fmt.Errorf("%w: %s (%v)", ErrGatewayHostUnresolved, ing.Hostname, err)
		}
		return GatewayAddress{IP: ip, Source: "LoadBalancer hostname " + ing.Hostname}, nil
	}
	if len(svc.Spec.ExternalIPs) > 0 {
		return GatewayAddress{IP: svc.Spec.ExternalIPs[0], Source: "externalIPs"}, nil
	}
	return GatewayAddress{}, fmt.Errorf("service %s/%s has no LoadBalancer address and no externalIPs: %w", namespace, service, ErrNoGatewayAddress)
}

// WaitGatewayAddress polls until the gateway has an address or timeout passes;
// then the error wraps ErrNoGatewayAddress. Each poll runs under ctx with its own
// call deadline, so the wait's end never turns into a request error.
func (c *Client) WaitGatewayAddress(ctx context.Context, namespace, service string, r Resolver, timeout time.Duration) (GatewayAddress, error) {
	deadline := time.Now().Add(timeout)
	for {
		addr, err := c.GatewayAddress(ctx, namespace, service, r)
		if err == nil || !errors.Is(err, ErrNoGatewayAddress) || !time.Now().Before(deadline) {
			return addr, err
		}
		select {
		case <-ctx.Done():
			return GatewayAddress{}, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// ResolveHost resolves host, preferring an IPv4 address: the VM side is most often IPv4-only.
func ResolveHost(ctx context.Context, r Resolver, host string) (string, error) {
	if r == nil {
		r = net.DefaultResolver
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return "", err
	}
	if len(addrs) == 0 {
		return "", fmt.Errorf("no addresses for %s", host)
	}
	for _, a := range addrs {
		if a.Unmap().Is4() {
			return a.Unmap().String(), nil
		}
	}
	return addrs[0].String(), nil
}

// ServiceExists says whether namespace/name exists.
func (c *Client) ServiceExists(ctx context.Context, namespace, name string) (bool, error) {
	ctx, cancel := WithTimeout(ctx)
	defer cancel()
	_, err := c.Kube.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
	return found(err)
}

// ImageTagVersion turns "docker.io/istio/pilot:1.24.2-distroless@sha256:..." into "1.24.2".
func ImageTagVersion(image string) string {
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndex(image, "/"); i >= 0 {
		image = image[i+1:]
	}
	_, tag, ok := strings.Cut(image, ":")
	if !ok {
		return ""
	}
	tag, _, _ = strings.Cut(tag, "-")
	return tag
}
