package steps

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/vm2mesh/vm2mesh/k8s"
	"github.com/vm2mesh/vm2mesh/vmconfig"
)

// RootCertWait is how long to wait for istiod to publish its root certificate
// into the VM's namespace.
var RootCertWait = time.Minute

// VMFiles generates the five files for the VM into the work directory, natively:
// what `istioctl x workload entry configure` makes, but 0600, and with a
// hostname-only load balancer resolved rather than an empty hosts file.
type VMFiles struct{}

func (VMFiles) Name() string  { return "vm-files" }
func (VMFiles) Title() string { return "Generate the VM's files" }

func (VMFiles) options(ctx context.Context, env *Env, noToken bool) (*vmconfig.WorkloadGroup, vmconfig.Options, error) {
	s := env.Settings
	y, err := WorkloadGroupYAML(s)
	if err != nil {
		return nil, vmconfig.Options{}, err
	}
	wg, err := vmconfig.ParseWorkloadGroup(y)
	if err != nil {
		return nil, vmconfig.Options{}, err
	}
	ip, err := gatewayIP(ctx, env)
	if err != nil {
		return nil, vmconfig.Options{}, err
	}
	return wg, vmconfig.Options{
		IstioNamespace: s.IstioNamespace,
		Revision:       env.Revision(),
		ClusterID:      s.Cluster,
		ClusterIDSet:   true,
		IngressIP:      ip,
		IngressService: EastWestService,
		InternalIP:     s.VM.InternalIP,
		TokenDuration:  s.TokenDuration,
		AutoRegister:   s.Autoregister,
		CaptureDNS:     s.CaptureDNS,
		RootCertWait:   RootCertWait,
		Resolver:       env.Resolver,
		NoToken:        noToken,
	}, nil
}

// gatewayIP is the address the VM's hosts file gives istiod: gatewayAddress when
// set (a host name is resolved), else the east-west gateway Service's.
func gatewayIP(ctx context.Context, env *Env) (string, error) {
	s := env.Settings
	if a := s.GatewayAddress; a != "" {
		if _, err := netip.ParseAddr(a); err == nil {
			return a, nil
		}
		ip, err := k8s.ResolveHost(ctx, env.Resolver, a)
		if err != nil {
			return "", WithHint(fmt.Errorf("gatewayAddress %s does not resolve: %w", a, err), "give the gateway's IP address instead")
		}
		return ip, nil
	}
	addr, err := env.Client.GatewayAddress(ctx, s.IstioNamespace, EastWestService, env.Resolver)
	if err != nil {
		return "", noAddressHint(err)
	}
	return addr.IP, nil
}

// tokenFresh: the saved token is for this service account and audience and lives
// long enough for the VM to be set up.
func tokenFresh(env *Env, token []byte) (bool, string) {
	c, err := vmconfig.ParseTokenClaims(string(token))
	if err != nil {
		return false, "istio-token is not a valid token"
	}
	s := env.Settings
	if want := "system:serviceaccount:" + s.Namespace + ":" + s.ServiceAccount; c.Subject != want {
		return false, "istio-token belongs to " + c.Subject
	}
	if len(c.Audience) != 1 || c.Audience[0] != k8s.IstioCAAudience {
		return false, "istio-token has audience " + strings.Join(c.Audience, ",")
	}
	left := time.Until(c.ExpiresAt())
	if left < 10*time.Minute {
		return false, fmt.Sprintf("istio-token expires at %s", c.ExpiresAt().Format(time.RFC3339))
	}
	return true, fmt.Sprintf("istio-token valid for %s more", left.Round(time.Minute))
}

func (v VMFiles) Check(ctx context.Context, env *Env) (Status, error) {
	token, err := os.ReadFile(env.File("istio-token"))
	if err != nil {
		return Status{Reason: "the files are not generated yet"}, nil
	}
	fresh, why := tokenFresh(env, token)
	if !fresh {
		return Status{Reason: why}, nil
	}
	wg, o, err := v.options(ctx, env, true)
	if err != nil {
		return Status{}, err
	}
	o.RootCertWait = 0 // a check reads once
	files, err := vmconfig.Generate(ctx, env.Client, wg, o)
	if err != nil {
		return Status{Reason: err.Error()}, nil
	}
	for name, want := range files.ByName() {
		if name == "istio-token" {
			continue
		}
		have, err := os.ReadFile(env.File(name))
		if err != nil || !bytes.Equal(have, want) {
			return Status{Reason: name + " is missing or out of date"}, nil
		}
	}
	return Status{Skip: true, Reason: "the five files are current; " + why}, nil
}

func (VMFiles) Plan(env *Env) ([]Action, error) {
	s := env.Settings
	gw := "the east-west gateway's load balancer address"
	if s.GatewayAddress != "" {
		gw = s.GatewayAddress
	}
	configure := []string{"x", "workload", "entry", "configure",
		"-f", env.File("workloadgroup.yaml"), "-o", env.WorkDir, "--clusterID", s.Cluster,
		fmt.Sprintf("--tokenDuration=%d", s.TokenDuration), fmt.Sprintf("--autoregister=%t", s.Autoregister)}
	// istioctl takes the revision literally: a tag is given as its revision.
	if rev := env.Revision(); vmconfig.Revisioned(rev) {
		configure = append(configure, "--revision", rev)
	}
	if s.IstioNamespace != "istio-system" {
		configure = append(configure, "-i", s.IstioNamespace)
	}
	return []Action{
		{Kind: Note, Title: "generate the VM's files", Body: strings.Join([]string{
			fmt.Sprintf("generate into %s, each 0600:", env.WorkDir),
			fmt.Sprintf("  cluster.env, mesh.yaml  from the %s mesh config and WorkloadGroup %s/%s", meshConfigMap(s.IstioNamespace, env.Revision()), s.Namespace, s.App),
			fmt.Sprintf("  root-cert.pem           from ConfigMap %s/%s (waiting up to %s for istiod to write it)", s.Namespace, k8s.RootCertConfigMap, RootCertWait),
			fmt.Sprintf("  istio-token             TokenRequest for %s/%s, audience %s, %ds", s.Namespace, s.ServiceAccount, k8s.IstioCAAudience, s.TokenDuration),
			fmt.Sprintf("  hosts                   %s -> %s", gw, vmconfig.IstiodHost(s.IstioNamespace, env.Revision())),
		}, "\n")},
		{Kind: Command, Title: "the same with istioctl", Argv: env.IstioctlArgv(configure...)},
	}, nil
}

func meshConfigMap(ns, rev string) string {
	if vmconfig.Revisioned(rev) {
		return ns + "/istio-" + rev
	}
	return ns + "/istio"
}

func (v VMFiles) Run(ctx context.Context, env *Env, out *Output) error {
	wg, o, err := v.options(ctx, env, false)
	if err != nil {
		return err
	}
	out.Logf("hosts: %s %s", o.IngressIP, vmconfig.IstiodHost(o.IstioNamespace, o.Revision))
	files, err := vmconfig.Generate(ctx, env.Client, wg, o)
	if err != nil {
		return WithHint(err, "the root cert and token come from istiod and the API server: check that istiod runs (kubectl get pods -n %s)", env.Settings.IstioNamespace)
	}
	for _, w := range files.Warnings {
		out.Warnf("%s", w)
	}
	if err := files.Write(env.WorkDir); err != nil {
		return err
	}
	out.Summary("wrote %s into %s (token valid %ds)", strings.Join(vmconfig.FileNames, ", "), env.WorkDir, env.Settings.TokenDuration)
	return nil
}
