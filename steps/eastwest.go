package steps

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vm2mesh/vm2mesh/assets"
	"github.com/vm2mesh/vm2mesh/k8s"
)

// EastWestService is the gateway Service istioctl creates for the eastwest operator.
const EastWestService = "istio-eastwestgateway"

// GatewayWait is how long to wait for the gateway's load balancer address.
var GatewayWait = 3 * time.Minute

// EastWestGateway installs the gateway through which the VM reaches istiod.
type EastWestGateway struct{}

func (EastWestGateway) Name() string  { return "eastwest-gateway" }
func (EastWestGateway) Title() string { return "Install the east-west gateway" }

func (EastWestGateway) manifest(env *Env) ([]byte, error) {
	s := env.Settings
	return assets.Render("eastwest.yaml", map[string]any{
		"IstioNamespace": s.IstioNamespace, "Revision": s.Revision, "ClusterNetwork": s.ClusterNetwork,
	})
}

func (EastWestGateway) Check(ctx context.Context, env *Env) (Status, error) {
	s := env.Settings
	if s.InstallIstio == InstallAlways {
		return Status{Reason: "installIstio is always"}, nil
	}
	exists, err := env.Client.ServiceExists(ctx, s.IstioNamespace, EastWestService)
	if err != nil {
		return Status{}, err
	}
	if exists {
		return Status{Skip: true, Reason: fmt.Sprintf("service %s/%s already exists", s.IstioNamespace, EastWestService)}, nil
	}
	if s.InstallIstio == InstallNever {
		return Status{Skip: true, Reason: "no east-west gateway, and installIstio is never: VMs need gatewayAddress to reach istiod"}, nil
	}
	return Status{Reason: "no east-west gateway found"}, nil
}

func (g EastWestGateway) Plan(env *Env) ([]Action, error) {
	m, err := g.manifest(env)
	if err != nil {
		return nil, err
	}
	return append(installActions(env, "eastwest.yaml", "IstioOperator eastwest", m),
		Action{Kind: Note, Title: "wait for its address", Body: fmt.Sprintf("then wait up to %s for service %s/%s to get a load balancer address", GatewayWait, env.Settings.IstioNamespace, EastWestService)}), nil
}

func (g EastWestGateway) Run(ctx context.Context, env *Env, out *Output) error {
	if err := istioctlInstall(ctx, env, out, g, "eastwest.yaml"); err != nil {
		return err
	}
	if env.Settings.GatewayAddress != "" {
		out.Summary("VMs will use gatewayAddress %s", env.Settings.GatewayAddress)
		return nil
	}
	out.Logf("waiting up to %s for the gateway's load balancer address", GatewayWait)
	addr, err := env.Client.WaitGatewayAddress(ctx, env.Settings.IstioNamespace, EastWestService, env.Resolver, GatewayWait)
	if err != nil {
		return noAddressHint(err)
	}
	out.Summary("gateway address %s (%s)", addr.IP, addr.Source)
	return nil
}

func noAddressHint(err error) error {
	if errors.Is(err, k8s.ErrNoGatewayAddress) || errors.Is(err, context.DeadlineExceeded) {
		return WithHint(err, "clusters without a load balancer (kind, bare metal) give the gateway no address: set gatewayAddress in the answers file to an IP of a node or proxy that forwards 15012 and 15017 to the gateway")
	}
	return err
}
