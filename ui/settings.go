package ui

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	tea "charm.land/bubbletea/v2"
	"charm.land/huh/v2"

	"github.com/vm2mesh/vm2mesh/k8s"
	"github.com/vm2mesh/vm2mesh/steps"
)

const (
	singleNetwork = "single"
	multiNetwork  = "multi"
)

// What the settings are for: a run (plan, then apply) or doctor's checks.
const (
	actionApply  = "apply"
	actionDoctor = "doctor"
)

// form holds the settings pages' values as the fields edit them.
type form struct {
	action              string
	s                   steps.Settings
	network             string
	tokenDuration, port string
	moreHosts           string // more VMs, one host per line: a fleet
	huh                 *huh.Form
}

// SettingsSources are where the pages take their choices and defaults from.
type SettingsSources struct {
	Kubeconfig string // "" as kubectl
	SSHConfig  string // "": ~/.ssh/config
}

// newForm builds the settings pages over s (the defaults, or an answers file).
func newForm(s steps.Settings, src SettingsSources, action, moreHosts string) *form {
	f := &form{action: action, s: s, network: singleNetwork, tokenDuration: strconv.FormatInt(s.TokenDuration, 10), moreHosts: moreHosts}
	if s.ClusterNetwork != "" {
		f.network = multiNetwork
	}
	if s.VM.Port != 0 {
		f.port = strconv.Itoa(s.VM.Port)
	}
	contexts, current, _ := k8s.Contexts(src.Kubeconfig)
	sort.Strings(contexts)
	if f.s.KubeContext == "" {
		f.s.KubeContext = current
	}
	ctxOptions := huh.NewOptions(contexts...)
	if len(contexts) == 0 {
		ctxOptions = huh.NewOptions("")
	}
	v := f.validator
	p := &prober{kubeconfig: src.Kubeconfig, istioNS: func() string { return f.s.IstioNamespace }}
	f.huh = huh.NewForm(
		huh.NewGroup(
			huh.NewSelect[string]().Title("Action").Inline(true).Options(
				huh.NewOption("onboard the VM (plan, then apply)", actionApply),
				huh.NewOption("doctor: check an onboarded VM, read-only", actionDoctor)).Value(&f.action),
			huh.NewSelect[string]().Title("Kube context").Description("the cluster the VM joins").
				Options(ctxOptions...).Value(&f.s.KubeContext),
			huh.NewNote().DescriptionFunc(func() string { return p.get(f.s.KubeContext).summary }, &f.s.KubeContext),
			huh.NewSelect[string]().Title("Install Istio").Options(
				huh.NewOption("auto: install what is missing, keep a running istiod", steps.InstallAuto),
				huh.NewOption("always: run istioctl install over a running mesh", steps.InstallAlways),
				huh.NewOption("never: never run istioctl", steps.InstallNever)).Value(&f.s.InstallIstio),
			huh.NewInput().Title("Gateway address").
				DescriptionFunc(func() string {
					if gw := p.get(f.s.KubeContext).gateway; gw != "" {
						return "found " + gw + "; set one only to override it"
					}
					return "only when the cluster has no load balancer"
				}, &f.s.KubeContext).
				Value(&f.s.GatewayAddress).Validate(v("gatewayAddress")),
		).Title("Cluster"),
		huh.NewGroup(
			huh.NewInput().Title("Mesh ID").Value(&f.s.MeshID).Validate(v("meshID")),
			huh.NewInput().Title("Cluster name").Value(&f.s.Cluster).Validate(v("cluster")),
			huh.NewSelect[string]().Title("Istio revision").Description("the control plane the VM joins").
				OptionsFunc(func() []huh.Option[string] { return revisionOptions(p.get(f.s.KubeContext).mesh, f.s.Revision) }, &f.s.KubeContext).
				Value(&f.s.Revision),
			huh.NewSelect[string]().Title("Networks").Options(
				huh.NewOption("single network: the VM reaches pods directly", singleNetwork),
				huh.NewOption("multi-network: through the east-west gateway", multiNetwork)).Value(&f.network),
		).Title("Mesh"),
		huh.NewGroup(
			huh.NewInput().Title("App").Description("WorkloadGroup name and app label").Value(&f.s.App).Validate(v("app")),
			huh.NewInput().Title("Namespace").Description("created if missing").Value(&f.s.Namespace).Validate(v("namespace")).
				SuggestionsFunc(func() []string { return p.get(f.s.KubeContext).namespaces }, &f.s.KubeContext),
			huh.NewInput().Title("Service account").Value(&f.s.ServiceAccount).Validate(v("serviceAccount")),
			huh.NewConfirm().Title("Autoregistration").Description("the VM registers itself as a WorkloadEntry").Value(&f.s.Autoregister),
			huh.NewInput().Title("Token lifetime (seconds)").Value(&f.tokenDuration).Validate(f.duration),
		).Title("Workload"),
		huh.NewGroup(
			huh.NewInput().Title("VM host").Description("address or ~/.ssh/config alias; empty: the cluster half only").
				Suggestions(sshHosts(src.SSHConfig)).Value(&f.s.VM.Host),
			huh.NewInput().Title("SSH user").Description("empty: from ssh_config").Value(&f.s.VM.User),
			huh.NewInput().Title("SSH port").Description("empty: from ssh_config, else 22").Value(&f.port).Validate(f.portCheck),
			huh.NewInput().Title("Identity file").Description("empty: the ssh-agent, then ~/.ssh's keys").Value(&f.s.VM.IdentityFile),
			huh.NewInput().Title("Sidecar package").Description("istio-sidecar .deb or .rpm").Value(&f.s.VM.Package).Validate(f.packageCheck),
			huh.NewText().Title("More VMs").Description("one host per line, each reached and set up as the VM above: a fleet, run side by side").
				Lines(3).Value(&f.moreHosts).Validate(f.hostsCheck),
		).Title("VM"),
	).WithShowHelp(true).WithTheme(formTheme)
	return f
}

// validator checks one key the way the answers file is checked.
func (f *form) validator(key string) func(string) error {
	return func(string) error {
		for _, e := range f.settings().Validate() {
			if e.Key == key {
				return errors.New(e.Problem)
			}
		}
		return nil
	}
}

func (f *form) duration(s string) error {
	if _, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err != nil {
		return errors.New("a number of seconds")
	}
	return f.validator("tokenDuration")(s)
}

func (f *form) portCheck(s string) error {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	if p, err := strconv.Atoi(strings.TrimSpace(s)); err != nil || p < 1 || p > 65535 {
		return errors.New("a TCP port, 1 to 65535")
	}
	return nil
}

func (f *form) packageCheck(s string) error {
	if s == "" {
		if f.s.VM.Host != "" && f.s.VM.PackageURL == "" {
			return errors.New("the VM needs the istio-sidecar package")
		}
		return nil
	}
	if !strings.HasSuffix(s, ".deb") && !strings.HasSuffix(s, ".rpm") {
		return errors.New("a .deb or .rpm file")
	}
	if _, err := os.Stat(s); err != nil {
		return errors.New("no such file")
	}
	return nil
}

// hosts are the more VMs' hosts, one a line.
func (f *form) hosts() []string {
	var out []string
	for _, l := range strings.Split(f.moreHosts, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// hostsCheck checks the fleet the more hosts make, as its answers file would be.
func (f *form) hostsCheck(string) error {
	if f.action != actionApply || len(f.hosts()) == 0 {
		return nil
	}
	_, _, err := steps.FleetOfHosts(f.settings(), f.hosts())
	return err
}

// settings are the pages' values as Settings.
func (f *form) settings() steps.Settings {
	s := f.s
	if d, err := strconv.ParseInt(strings.TrimSpace(f.tokenDuration), 10, 64); err == nil {
		s.TokenDuration = d
	}
	if p, err := strconv.Atoi(strings.TrimSpace(f.port)); err == nil {
		s.VM.Port = p
	}
	if f.network == multiNetwork {
		if s.ClusterNetwork == "" {
			s.ClusterNetwork = "kube-network"
		}
		if s.VMNetwork == "" {
			s.VMNetwork = "vm-network"
		}
		if s.Cluster == "Kubernetes" {
			s.Cluster = "cluster1"
		}
	} else {
		s.ClusterNetwork, s.VMNetwork = "", ""
	}
	return s
}

// sshHosts are the concrete Host names of ~/.ssh/config, as suggestions.
func sshHosts(path string) []string {
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil
		}
		path = filepath.Join(home, ".ssh", "config")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var hosts []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.EqualFold(f[0], "Host") {
			continue
		}
		for _, h := range f[1:] {
			if !strings.ContainsAny(h, "*?!") {
				hosts = append(hosts, h)
			}
		}
	}
	return hosts
}

// The settings page: the form under the wizard's title line.

// formState is where the settings page stands after a message.
type formState int

const (
	formEditing formState = iota
	formDone              // every field answered: s and action are final
	formAborted           // Ctrl+C in the form
)

func (f *form) SetSize(w, h int) { f.huh = f.huh.WithWidth(w).WithHeight(max(h-2, 6)) }

func (f *form) Init() tea.Cmd { return f.huh.Init() }

// Update hands the message to the form and says where it stands.
func (f *form) Update(msg tea.Msg) (formState, tea.Cmd) {
	fm, cmd := f.huh.Update(msg)
	if h, ok := fm.(*huh.Form); ok {
		f.huh = h
	}
	switch f.huh.State {
	case huh.StateAborted:
		return formAborted, nil
	case huh.StateCompleted:
		return formDone, nil
	}
	return formEditing, cmd
}

func (f *form) View(width int) string {
	return truncate(titleStyle.Render("vm2mesh")+dimStyle.Render("  settings · every change is shown before it is made"), width) + "\n" + f.huh.View()
}
