package steps

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/vm2mesh/vm2mesh/assets"
	"github.com/vm2mesh/vm2mesh/internal/safefile"
	"github.com/vm2mesh/vm2mesh/k8s"
	"github.com/vm2mesh/vm2mesh/vmconfig"
)

// EastWestService is the gateway Service istioctl creates for the eastwest operator.
const EastWestService = "istio-eastwestgateway"

// GatewayWait is how long to wait for the gateway's load balancer address.
var GatewayWait = 3 * time.Minute

// EastWestGateway installs the gateway through which the VM reaches istiod:
// with istioctl, or as gateway injection manifests, as EastWestMethod says.
type EastWestGateway struct{}

func (EastWestGateway) Name() string  { return "eastwest-gateway" }
func (EastWestGateway) Title() string { return "Install the east-west gateway" }

// Files the gateway is written to: the IstioOperator istioctl installs, or the
// manifests vm2mesh applies.
const (
	eastWestOperatorFile  = "eastwest.yaml"
	eastWestManifestsFile = "eastwest-gateway.yaml"
)

func (EastWestGateway) manifest(env *Env) ([]byte, error) {
	s := env.Settings
	name, rev := eastWestOperatorFile, env.Revision()
	if env.EastWestMethod() == EastWestManifests {
		// The pod's istio.io/rev label names the default revision too.
		name, rev = eastWestManifestsFile, orDefault(rev)
	}
	return assets.Render(name, map[string]any{
		"IstioNamespace": s.IstioNamespace, "Revision": rev, "ClusterNetwork": s.ClusterNetwork,
	})
}

func (EastWestGateway) Check(ctx context.Context, env *Env) (Status, error) {
	s := env.Settings
	if env.EastWestMethod() == EastWestNone {
		if s.GatewayAddress != "" {
			return Status{Skip: true, Reason: "eastwestInstall is none: VMs use gatewayAddress " + s.GatewayAddress}, nil
		}
		return Status{Skip: true, Reason: fmt.Sprintf("eastwestInstall is none: VMs use the existing service %s/%s", s.IstioNamespace, EastWestService)}, nil
	}
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
	if s.InstallIstio == InstallNever && s.EastWestInstall == EastWestAuto {
		return Status{Skip: true, Reason: "no east-west gateway, and installIstio is never: VMs need gatewayAddress to reach istiod"}, nil
	}
	return Status{Reason: "no east-west gateway found"}, nil
}

func (g EastWestGateway) Plan(env *Env) ([]Action, error) {
	s := env.Settings
	wait := Action{Kind: Note, Title: "wait for its address", Body: fmt.Sprintf("then wait up to %s for service %s/%s to get a load balancer address", GatewayWait, s.IstioNamespace, EastWestService)}
	switch env.EastWestMethod() {
	case EastWestNone:
		return nil, nil
	case EastWestManifests:
		m, err := g.manifest(env)
		if err != nil {
			return nil, err
		}
		title := fmt.Sprintf("Deployment, Service, ServiceAccount, Role and RoleBinding %s (gateway injection, revision %s)", EastWestService, orDefault(env.Revision()))
		acts := applyActions(env, eastWestManifestsFile, title, string(m))
		if env.Istiod.Manager == k8s.ManagedByHelm {
			acts = append(acts, helmGatewayNote(env))
		}
		return append(acts, wait), nil
	}
	m, err := g.manifest(env)
	if err != nil {
		return nil, err
	}
	return append(installActions(env, eastWestOperatorFile, "IstioOperator eastwest", m), wait), nil
}

var chartVersion = regexp.MustCompile(`^\d+\.\d+\.\d+`)

// helmGatewayNote gives the istio/gateway chart's values for the same gateway,
// so that an operator whose mesh Helm manages can have Helm own it instead.
func helmGatewayNote(env *Env) Action {
	s := env.Settings
	argv := []string{"helm", "install", EastWestService, "istio/gateway", "-n", s.IstioNamespace}
	// A release's charts carry its version; a development tag ("latest") names no chart.
	if v := env.Istiod.Version; chartVersion.MatchString(v) {
		argv = append(argv, "--version", v)
	}
	if rev := env.Revision(); vmconfig.Revisioned(rev) {
		argv = append(argv, "--set", "revision="+rev)
	}
	argv = append(argv, "--set", "labels.istio=eastwestgateway", "--set", "labels.app="+EastWestService)
	if s.MultiNetwork() {
		// The chart's network gateway: its four ports, the network label and view.
		argv = append(argv, "--set", "networkGateway="+s.ClusterNetwork)
	} else {
		argv = append(argv, "--set-json", `service.ports=[{"name":"status-port","port":15021,"targetPort":15021},{"name":"tls","port":15443,"targetPort":15443},{"name":"tls-istiod","port":15012,"targetPort":15012},{"name":"tls-webhook","port":15017,"targetPort":15017}]`)
	}
	return Action{Kind: Note, Title: "or let Helm own it", Body: fmt.Sprintf(
		"Helm manages istiod here (%s). To have Helm own the gateway instead, run this before the step; vm2mesh then finds the service and skips it:\n  %s",
		env.Istiod.ManagedBy(), ShellJoin(argv))}
}

func (g EastWestGateway) Run(ctx context.Context, env *Env, out *Output) error {
	var err error
	switch env.EastWestMethod() {
	case EastWestNone:
		return nil
	case EastWestManifests:
		err = g.apply(ctx, env, out)
	default:
		err = istioctlInstall(ctx, env, out, g, eastWestOperatorFile)
	}
	if err != nil {
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

// apply writes the gateway's manifests and server-side applies them as vm2mesh.
func (g EastWestGateway) apply(ctx context.Context, env *Env, out *Output) error {
	m, err := g.manifest(env)
	if err != nil {
		return err
	}
	if err := mkWorkDir(env); err != nil {
		return err
	}
	if _, err := safefile.Write(env.File(eastWestManifestsFile), m); err != nil {
		return err
	}
	objs, err := k8s.ParseObjects(m)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if _, err := env.Client.Apply(ctx, o); err != nil {
			return WithHint(err, "the gateway's objects are vm2mesh's to apply; another owner's fields are not taken over (eastwestInstall: none keeps vm2mesh off them)")
		}
		out.Logf("applied %s", k8s.Describe(o))
	}
	out.Summary("applied %d objects of %s (istiod injects the gateway into its pods)", len(objs), eastWestManifestsFile)
	return nil
}

func noAddressHint(err error) error {
	if errors.Is(err, k8s.ErrGatewayHostUnresolved) {
		return WithHint(err, "give the gateway's IP as gatewayAddress in the answers file")
	}
	if errors.Is(err, k8s.ErrNoGatewayAddress) || errors.Is(err, context.DeadlineExceeded) {
		return WithHint(err, "clusters without a load balancer (kind, bare metal) give the gateway no address: set gatewayAddress in the answers file to an IP of a node or proxy that forwards 15012 and 15017 to the gateway")
	}
	return err
}
