package steps

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Install policies for the control plane and the east-west gateway.
const (
	InstallAuto   = "auto"   // install what is missing, keep what runs
	InstallAlways = "always" // run istioctl install even over a running mesh
	InstallNever  = "never"  // never run istioctl
)

// Settings is everything a run needs, one validated struct. Every field's yaml
// tag is its key in the answers file.
type Settings struct {
	Kubeconfig     string `yaml:"kubeconfig" json:"kubeconfig"`
	KubeContext    string `yaml:"kubeContext" json:"kubeContext"`
	Cluster        string `yaml:"cluster" json:"cluster"`
	ClusterNetwork string `yaml:"clusterNetwork" json:"clusterNetwork"`
	MeshID         string `yaml:"meshID" json:"meshID"`
	Revision       string `yaml:"revision" json:"revision"`
	InstallIstio   string `yaml:"installIstio" json:"installIstio"`
	Istioctl       string `yaml:"istioctl" json:"istioctl"`
	IstioNamespace string `yaml:"istioNamespace" json:"istioNamespace"`
	App            string `yaml:"app" json:"app"`
	Namespace      string `yaml:"namespace" json:"namespace"`
	ServiceAccount string `yaml:"serviceAccount" json:"serviceAccount"`
	VMNetwork      string `yaml:"vmNetwork" json:"vmNetwork"`
	WorkDir        string `yaml:"workDir" json:"workDir"`
	Autoregister   bool   `yaml:"autoregister" json:"autoregister"`
	TokenDuration  int64  `yaml:"tokenDuration" json:"tokenDuration"`
	CaptureDNS     bool   `yaml:"captureDNS" json:"captureDNS"`
	GatewayAddress string `yaml:"gatewayAddress" json:"gatewayAddress"`
	VM             VM     `yaml:"vm" json:"vm"`
}

// VM is how to reach the VM and what to install on it.
type VM struct {
	Host               string `yaml:"host" json:"host"` // address or ~/.ssh/config Host alias
	Port               int    `yaml:"port" json:"port"` // 0: from ssh_config, else 22
	User               string `yaml:"user" json:"user"` // "": from ssh_config, else the local user
	IdentityFile       string `yaml:"identityFile" json:"identityFile"`
	SSHConfig          string `yaml:"sshConfig" json:"sshConfig"` // "": ~/.ssh/config
	KnownHostsFile     string `yaml:"knownHostsFile" json:"knownHostsFile"`
	HostKeyFingerprint string `yaml:"hostKeyFingerprint" json:"hostKeyFingerprint"` // SHA256:... pins the key on first contact
	AcceptNewHostKey   bool   `yaml:"acceptNewHostKey" json:"acceptNewHostKey"`     // remember an unknown host without a pin
	PasswordFile       string `yaml:"passwordFile" json:"passwordFile"`             // the SSH login password, for headless runs
	SudoPasswordFile   string `yaml:"sudoPasswordFile" json:"sudoPasswordFile"`
	Package            string `yaml:"package" json:"package"`       // local istio-sidecar.rpm or .deb
	PackageURL         string `yaml:"packageURL" json:"packageURL"` // downloaded on the VM instead; a URL ending in / gets the file name for the VM
	PackageSHA256      string `yaml:"packageSHA256" json:"packageSHA256"`
	// AllowInsecurePackageURL lets packageURL be http:// (the package is then
	// only as safe as the network between the VM and the server).
	AllowInsecurePackageURL bool `yaml:"allowInsecurePackageURL" json:"allowInsecurePackageURL"`
	// AllowUnverifiedPackage installs a downloaded package that has neither
	// packageSHA256 nor a .sha256 published beside it.
	AllowUnverifiedPackage bool   `yaml:"allowUnverifiedPackage" json:"allowUnverifiedPackage"`
	InternalIP             string `yaml:"internalIP" json:"internalIP"` // ISTIO_SVC_IP when the VM has several addresses
	AgentWait              int    `yaml:"agentWait" json:"agentWait"`   // seconds to wait for the agent's certificate (default 90)
}

// Halves of the procedure, for --only.
const (
	HalfCluster = "cluster"
	HalfVM      = "vm"
)

// Defaults are the guide's values.
func Defaults() Settings {
	return Settings{
		Cluster:        "Kubernetes",
		MeshID:         "mesh1",
		InstallIstio:   InstallAuto,
		IstioNamespace: "istio-system",
		App:            "demo",
		Namespace:      "vm",
		ServiceAccount: "vm",
		WorkDir:        "./vmintegration",
		Autoregister:   true,
		TokenDuration:  3600,
		CaptureDNS:     true,
	}
}

// MinTokenDuration is the shortest token the API server issues.
const MinTokenDuration = 600

// FieldError is a problem with one answers key.
type FieldError struct {
	Key     string
	Problem string
}

func (e FieldError) Error() string { return e.Key + ": " + e.Problem }

// MultiNetwork says whether the cluster and the VM are on named networks.
func (s Settings) MultiNetwork() bool { return s.ClusterNetwork != "" }

// Validate checks every field without touching the cluster and returns all
// problems, each naming its key.
func (s Settings) Validate() []FieldError {
	var errs []FieldError
	add := func(key, format string, args ...any) {
		errs = append(errs, FieldError{Key: key, Problem: fmt.Sprintf(format, args...)})
	}
	label := func(key, v string, required bool) {
		if v == "" {
			if required {
				add(key, "must not be empty")
			}
			return
		}
		if msgs := validation.IsDNS1123Label(v); len(msgs) > 0 {
			add(key, "%q is not a valid name: %s", v, strings.Join(msgs, "; "))
		}
	}
	label("app", s.App, true)
	label("namespace", s.Namespace, true)
	label("serviceAccount", s.ServiceAccount, true)
	label("istioNamespace", s.IstioNamespace, true)
	label("revision", s.Revision, false)
	for key, v := range map[string]string{"clusterNetwork": s.ClusterNetwork, "vmNetwork": s.VMNetwork, "cluster": s.Cluster, "meshID": s.MeshID} {
		if v != "" {
			if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
				add(key, "%q is not usable as a label value: %s", v, strings.Join(msgs, "; "))
			}
		}
	}
	if s.Cluster == "" {
		add("cluster", "must not be empty (the guide's default is Kubernetes)")
	}
	if s.MeshID == "" {
		add("meshID", "must not be empty (the guide's default is mesh1)")
	}
	if (s.ClusterNetwork == "") != (s.VMNetwork == "") {
		add("vmNetwork", "set clusterNetwork and vmNetwork together (multi-network) or leave both empty (single network)")
	}
	switch s.InstallIstio {
	case InstallAuto, InstallAlways, InstallNever:
	default:
		add("installIstio", "%q must be auto, always or never", s.InstallIstio)
	}
	switch {
	case s.TokenDuration < 0:
		add("tokenDuration", "%d is negative; give the token lifetime in seconds (default 3600)", s.TokenDuration)
	case s.TokenDuration < MinTokenDuration:
		add("tokenDuration", "%d seconds is shorter than the API server issues (at least %d)", s.TokenDuration, MinTokenDuration)
	case s.TokenDuration > 1<<32-1:
		add("tokenDuration", "%d seconds is too long", s.TokenDuration)
	}
	if s.WorkDir == "" {
		add("workDir", "must not be empty")
	}
	v := s.VM
	if v.Port < 0 || v.Port > 65535 {
		add("vm.port", "%d is not a TCP port", v.Port)
	}
	if f := v.HostKeyFingerprint; f != "" && (!strings.HasPrefix(f, "SHA256:") || len(f) != len("SHA256:")+43) {
		add("vm.hostKeyFingerprint", "%q is not an OpenSSH SHA256 fingerprint (SHA256: and 43 characters, as ssh-keygen -lf prints)", f)
	}
	if v.Package != "" && v.PackageURL != "" {
		add("vm.package", "give vm.package or vm.packageURL, not both")
	}
	if sum := v.PackageSHA256; sum != "" && len(strings.TrimSpace(sum)) != 64 {
		add("vm.packageSHA256", "must be 64 hex digits")
	}
	if ip := v.InternalIP; ip != "" {
		if _, err := netip.ParseAddr(ip); err != nil {
			add("vm.internalIP", "%q is not an IP address", ip)
		}
	}
	if v.AgentWait < 0 {
		add("vm.agentWait", "must not be negative")
	}
	if a := s.GatewayAddress; a != "" {
		if _, err := netip.ParseAddr(a); err != nil && len(validation.IsDNS1123Subdomain(a)) > 0 {
			add("gatewayAddress", "%q is neither an IP address nor a host name", a)
		}
	}
	return errs
}

// ValidateVM checks what the VM half cannot do without.
func (s Settings) ValidateVM() []FieldError {
	var errs []FieldError
	if s.VM.Host == "" {
		errs = append(errs, FieldError{Key: "vm.host", Problem: "must be set to the VM's address or ~/.ssh/config alias"})
	}
	if s.VM.Package == "" && s.VM.PackageURL == "" {
		errs = append(errs, FieldError{Key: "vm.package", Problem: "give the istio-sidecar .rpm or .deb (vm.package) or a URL the VM can download it from (vm.packageURL)"})
	}
	return errs
}

// ValidationError joins field errors into one error.
type ValidationError []FieldError

func (v ValidationError) Error() string {
	parts := make([]string, len(v))
	for i, e := range v {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Hash identifies the settings a saved progress belongs to.
func (s Settings) Hash() string {
	b, _ := json.Marshal(s)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

var unknownField = regexp.MustCompile(`line (\d+): field (\S+) not found in type \S+`)

// LoadAnswers reads an answers file over the defaults. Unknown keys and invalid
// values are errors that name the key.
func LoadAnswers(path string) (Settings, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Settings{}, fmt.Errorf("reading answers: %w", err)
	}
	return ParseAnswers(path, data)
}

// ParseAnswers is LoadAnswers for bytes; name is used in messages.
func ParseAnswers(name string, data []byte) (Settings, error) {
	s := Defaults()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil && !errors.Is(err, io.EOF) { // empty file: all defaults
		msg := err.Error()
		if m := unknownField.FindAllStringSubmatch(msg, -1); m != nil {
			var keys []string
			for _, x := range m {
				keys = append(keys, fmt.Sprintf("%q (line %s)", x[2], x[1]))
			}
			return Settings{}, fmt.Errorf("%s: unknown key %s; see the README for the keys", name, strings.Join(keys, ", "))
		}
		return Settings{}, fmt.Errorf("%s: %s", name, strings.TrimPrefix(msg, "yaml: "))
	}
	if errs := s.Validate(); len(errs) > 0 {
		return Settings{}, fmt.Errorf("%s: %w", name, ValidationError(errs))
	}
	return s, nil
}
