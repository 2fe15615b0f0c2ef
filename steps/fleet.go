package steps

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/vm2mesh/vm2mesh/k8s"
)

// Fleet is what an answers file asks for: one VM (vm:) or several (vms:).
//
// A vm: file is the fleet of one, kept as it always was: the cluster half and
// the VM half run in one pipeline in workDir, with one saved progress. A vms:
// file runs the cluster half once per WorkloadGroup, in
// workDir/groups/<namespace>.<serviceAccount>.<app>/, and each VM's pipeline
// (its files with a token of its own, then the VM half) in workDir/vms/<name>/.
type Fleet struct {
	// Settings are the top level; for a vm: file, the one VM's settings.
	Settings Settings
	VMs      []FleetVM
	// Single: a vm: file (or none at all: the cluster half alone).
	Single bool
	// left are the VMs --limit left out.
	left []FleetVM
}

// Whole says whether every VM of g in the answers file is in the fleet (none
// was left out by --limit): the group's cluster objects are then theirs alone.
func (f Fleet) Whole(g Group) bool {
	for _, vm := range f.left {
		if GroupOf(vm.Settings) == g {
			return false
		}
	}
	return true
}

// LeftOut says whether --limit left out any VM of the answers file: what all
// of its VMs share (istiod's exposure) is then still in use.
func (f Fleet) LeftOut() bool { return len(f.left) > 0 }

// FleetVM is one VM of a fleet.
type FleetVM struct {
	Name string
	// Settings are the VM's: the top level with its overrides, WorkDir its own
	// directory (workDir itself for a vm: file).
	Settings Settings
	// Index is the VM's place under vms: (0 for vm:), for messages.
	Index int
}

// Group is the WorkloadGroup (namespace, service account, app) a VM joins.
type Group struct{ Namespace, ServiceAccount, App string }

func (g Group) String() string { return g.Namespace + "/" + g.App }

// dir is the group's directory name: DNS-1123 labels hold no dot.
func (g Group) dir() string { return g.Namespace + "." + g.ServiceAccount + "." + g.App }

// GroupOf is the WorkloadGroup s makes.
func GroupOf(s Settings) Group {
	return Group{Namespace: s.Namespace, ServiceAccount: s.ServiceAccount, App: s.App}
}

// FleetDirs are the directories a fleet keeps in workDir.
const (
	FleetVMsDir    = "vms"
	FleetGroupsDir = "groups"
)

// Groups are the fleet's distinct WorkloadGroups, in the order of their first VM.
func (f Fleet) Groups() []Group {
	var gs []Group
	for _, vm := range f.VMs {
		if g := GroupOf(vm.Settings); !slices.Contains(gs, g) {
			gs = append(gs, g)
		}
	}
	return gs
}

// GroupSettings are the settings the cluster half of g runs with: the top
// level, g's names and network, no VM, its own directory.
func (f Fleet) GroupSettings(g Group) Settings {
	s := f.Settings
	for _, vm := range f.VMs {
		if GroupOf(vm.Settings) == g {
			s.App, s.Namespace, s.ServiceAccount, s.VMNetwork = vm.Settings.App, vm.Settings.Namespace, vm.Settings.ServiceAccount, vm.Settings.VMNetwork
			break
		}
	}
	s.VM = VM{}
	s.WorkDir = filepath.Join(f.Settings.WorkDir, FleetGroupsDir, g.dir())
	return s
}

// Find returns the VM named name.
func (f Fleet) Find(name string) (FleetVM, bool) {
	for _, vm := range f.VMs {
		if vm.Name == name {
			return vm, true
		}
	}
	return FleetVM{}, false
}

// Names are the VMs' names, in the file's order.
func (f Fleet) Names() []string {
	names := make([]string, len(f.VMs))
	for i, vm := range f.VMs {
		names[i] = vm.Name
	}
	return names
}

// Limit keeps the VMs named in limit ("a,b", as Ansible's --limit; "" keeps
// all). A name the fleet lacks is an error that lists the names it has.
func (f Fleet) Limit(limit string) (Fleet, error) {
	if strings.TrimSpace(limit) == "" {
		return f, nil
	}
	want := map[string]bool{}
	var unknown []string
	for _, n := range strings.Split(limit, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if _, ok := f.Find(n); !ok {
			unknown = append(unknown, fmt.Sprintf("%q", n))
		}
		want[n] = true
	}
	if len(unknown) > 0 {
		return f, fmt.Errorf("--limit: %s %s not in the answers file, which has %s; give names from it, separated by commas",
			strings.Join(unknown, ", "), plural(len(unknown), "is", "are"), strings.Join(f.Names(), ", "))
	}
	if len(want) == 0 {
		return f, fmt.Errorf("--limit %q names no VM; give VM names separated by commas", limit)
	}
	out := f
	out.VMs = nil
	for _, vm := range f.VMs {
		if want[vm.Name] {
			out.VMs = append(out.VMs, vm)
		} else {
			out.left = append(out.left, vm)
		}
	}
	return out, nil
}

// ParseFleet reads an answers file: vm: (one VM, or none: the cluster half
// alone) or vms: (a fleet) with vmDefaults:. Unknown keys and invalid values
// are errors that name the key (vms[2].user for the third VM's).
func ParseFleet(name string, data []byte) (Fleet, error) {
	a, doc, err := decodeAnswers(name, data)
	if err != nil {
		return Fleet{}, err
	}
	keys := topKeys(doc)
	if !keys["vms"] {
		if keys["vmDefaults"] {
			return Fleet{}, fmt.Errorf("%s: vmDefaults: holds what the VMs under vms: share, and there is no vms:; list the VMs under vms:, or put the one VM's keys under vm:", name)
		}
		s := a.Settings
		if errs := s.Validate(); len(errs) > 0 {
			return Fleet{}, fmt.Errorf("%s: %w", name, ValidationError(errs))
		}
		vmName := s.VM.Host
		if vmName == "" {
			vmName = "vm"
		}
		return Fleet{Settings: s, Single: true, VMs: []FleetVM{{Name: vmName, Settings: s}}}, nil
	}
	if keys["vm"] {
		return Fleet{}, fmt.Errorf("%s: has both vm: and vms:; give one VM under vm:, or every VM under vms: (what they share under vmDefaults:)", name)
	}
	if len(a.VMs) == 0 {
		return Fleet{}, fmt.Errorf("%s: vms: lists no VM; give each VM's host (and name) under vms:, or one VM under vm:", name)
	}
	entries, err := mergedEntries(doc)
	if err != nil {
		return Fleet{}, fmt.Errorf("%s: %w", name, err)
	}
	f := Fleet{Settings: a.Settings}
	var errs []FieldError
	seen := map[string]int{}
	groupNet := map[Group]FleetVM{}
	for i, e := range entries {
		at := fmt.Sprintf("vms[%d]", i)
		s := a.Settings
		s.VM = e.VM
		override := map[string]bool{}
		for _, o := range []struct {
			key string
			v   *string
			to  *string
		}{{"app", e.App, &s.App}, {"namespace", e.Namespace, &s.Namespace}, {"serviceAccount", e.ServiceAccount, &s.ServiceAccount}, {"vmNetwork", e.VMNetwork, &s.VMNetwork}} {
			if o.v != nil {
				*o.to, override[o.key] = *o.v, true
			}
		}
		vmName := e.Name
		if e.Host == "" && vmName != "" {
			errs = append(errs, FieldError{Key: at + ".host", Problem: "must be set to the VM's address or ~/.ssh/config alias"})
		}
		switch {
		case vmName != "":
			if msgs := validation.IsDNS1123Subdomain(vmName); len(msgs) > 0 {
				errs = append(errs, FieldError{Key: at + ".name", Problem: fmt.Sprintf("%q is not usable as the VM's name (its directory and --limit): %s; give a lower-case name such as web-1", vmName, strings.Join(msgs, "; "))})
				vmName = ""
			}
		case e.Host == "":
			errs = append(errs, FieldError{Key: at + ".host", Problem: "must be set to the VM's address or ~/.ssh/config alias"})
		default:
			if msgs := validation.IsDNS1123Subdomain(e.Host); len(msgs) > 0 {
				errs = append(errs, FieldError{Key: at + ".name", Problem: fmt.Sprintf("is not given, and the host %q is not usable as the VM's name (its directory and --limit); give a lower-case name such as web-1", e.Host)})
			} else {
				vmName = e.Host
			}
		}
		if vmName != "" {
			if j, dup := seen[vmName]; dup {
				errs = append(errs, FieldError{Key: at + ".name", Problem: fmt.Sprintf("%q is the name of vms[%d] too; give each VM a name of its own (name:)", vmName, j)})
			}
			seen[vmName] = i
		}
		s.WorkDir = filepath.Join(a.Settings.WorkDir, FleetVMsDir, vmName)
		for _, fe := range s.Validate() {
			fe.Key = fleetKey(fe.Key, at, override)
			if !slices.Contains(errs, fe) {
				errs = append(errs, fe)
			}
		}
		vm := FleetVM{Name: vmName, Settings: s, Index: i}
		g := GroupOf(s)
		if other, ok := groupNet[g]; ok && other.Settings.VMNetwork != s.VMNetwork {
			errs = append(errs, FieldError{Key: at + ".vmNetwork", Problem: fmt.Sprintf("%q differs from %q of vms[%d] (%s), which joins the same WorkloadGroup %s; VMs of one WorkloadGroup share its network: give them the same vmNetwork, or another app",
				s.VMNetwork, other.Settings.VMNetwork, other.Index, other.Name, g)})
		} else if !ok {
			groupNet[g] = vm
		}
		f.VMs = append(f.VMs, vm)
	}
	if len(errs) > 0 {
		return Fleet{}, fmt.Errorf("%s: %w", name, ValidationError(errs))
	}
	return f, nil
}

// fleetKey names a VM's problem by where it is written: vm.user is
// vms[2].user, an overridden app vms[2].app, the rest the top level's.
func fleetKey(key, at string, override map[string]bool) string {
	if k, ok := strings.CutPrefix(key, "vm."); ok {
		return at + "." + k
	}
	if override[key] {
		return at + "." + key
	}
	return key
}

// renameVMKeys is fleetKey for errors of a VM's checks.
func renameVMKeys(err error, vm FleetVM, single bool) error {
	var ve ValidationError
	if single || !asValidation(err, &ve) {
		return err
	}
	out := make(ValidationError, len(ve))
	at := fmt.Sprintf("vms[%d]", vm.Index)
	for i, fe := range ve {
		fe.Key = fleetKey(fe.Key, at, nil)
		if fe.Key == "workDir" {
			fe.Key = at + " (" + vm.Name + ") workDir"
		}
		out[i] = fe
	}
	return out
}

func asValidation(err error, ve *ValidationError) bool {
	v, ok := err.(ValidationError)
	if ok {
		*ve = v
	}
	return ok
}

// topKeys are the keys of the document's top-level mapping.
func topKeys(doc *yaml.Node) map[string]bool {
	keys := map[string]bool{}
	if m := topMapping(doc); m != nil {
		for i := 0; i+1 < len(m.Content); i += 2 {
			keys[m.Content[i].Value] = true
		}
	}
	return keys
}

func topMapping(doc *yaml.Node) *yaml.Node {
	if doc == nil || doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	return doc.Content[0]
}

func mappingValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			v := m.Content[i+1]
			if v.Kind == yaml.AliasNode && v.Alias != nil {
				v = v.Alias
			}
			return v
		}
	}
	return nil
}

// mergedEntries are the VMs under vms:, each with vmDefaults' keys it does not
// give itself. The file was decoded (keys and types checked) before.
func mergedEntries(doc *yaml.Node) ([]vmEntry, error) {
	top := topMapping(doc)
	defaults := mappingValue(top, "vmDefaults")
	list := mappingValue(top, "vms")
	if list == nil || list.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("vms: is not a list; give each VM as a list item (- host: ...)")
	}
	var out []vmEntry
	for i, item := range list.Content {
		if item.Kind == yaml.AliasNode && item.Alias != nil {
			item = item.Alias
		}
		if item.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("vms[%d] (line %d) is not a VM's keys; give at least host: for each VM", i, item.Line)
		}
		merged := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		if defaults != nil && defaults.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(defaults.Content); j += 2 {
				if mappingValue(item, defaults.Content[j].Value) == nil {
					merged.Content = append(merged.Content, defaults.Content[j], defaults.Content[j+1])
				}
			}
		}
		merged.Content = append(merged.Content, item.Content...)
		var e vmEntry
		if err := merged.Decode(&e); err != nil {
			return nil, fmt.Errorf("vms[%d]: %s", i, strings.TrimPrefix(err.Error(), "yaml: "))
		}
		out = append(out, e)
	}
	return out, nil
}

// LoadFleet is ParseFleet for the file path ("-": stdin), as LoadAnswers reads it.
func LoadFleet(ctx context.Context, path string, stdin io.Reader) (Fleet, error) {
	data, err := ReadInput(ctx, "-f", path, stdin)
	if err != nil {
		return Fleet{}, err
	}
	name := path
	if path == "-" {
		name = "answers (stdin)"
	}
	return ParseFleet(name, data)
}

// ResolveFleet is Resolve for a fleet: the answers file (vm: or vms:) with the
// flags over it, for every VM's settings alike.
func ResolveFleet(ctx context.Context, answers string, stdin io.Reader, f Flags) (Fleet, k8s.Options, error) {
	fleet := Fleet{Settings: Defaults(), Single: true}
	fleet.VMs = []FleetVM{{Name: "vm", Settings: fleet.Settings}}
	if answers != "" {
		var err error
		if fleet, err = LoadFleet(ctx, answers, stdin); err != nil {
			return Fleet{}, k8s.Options{}, err
		}
	}
	f.Apply(&fleet.Settings)
	for i := range fleet.VMs {
		f.Apply(&fleet.VMs[i].Settings)
	}
	return fleet, f.Options(), nil
}
