package steps

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Install policies for the control plane and the east-west gateway.
const (
	InstallAuto   = "auto"   // install what is missing, keep what runs
	InstallAlways = "always" // run istioctl install even over a running mesh
	InstallNever  = "never"  // never run istioctl
)

// How the east-west gateway is installed (eastwestInstall).
const (
	EastWestAuto      = "auto"      // istioctl beside an istioctl-made mesh (or one vm2mesh installs), manifests otherwise
	EastWestIstioctl  = "istioctl"  // istioctl install of an IstioOperator
	EastWestManifests = "manifests" // gateway injection manifests, server-side applied
	EastWestNone      = "none"      // never: the gateway exists, or gatewayAddress is given
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
	// EastWestInstall says how a missing east-west gateway is installed.
	EastWestInstall string `yaml:"eastwestInstall" json:"eastwestInstall"`
	Istioctl        string `yaml:"istioctl" json:"istioctl"`
	IstioNamespace  string `yaml:"istioNamespace" json:"istioNamespace"`
	App             string `yaml:"app" json:"app"`
	Namespace       string `yaml:"namespace" json:"namespace"`
	ServiceAccount  string `yaml:"serviceAccount" json:"serviceAccount"`
	VMNetwork       string `yaml:"vmNetwork" json:"vmNetwork"`
	WorkDir         string `yaml:"workDir" json:"workDir"`
	// AllowExistingWorkDir lets workDir be a non-empty directory that vm2mesh
	// did not make. It is a waiver, not a setting of the mesh: it stays out of
	// the hash that saved progress is kept under.
	AllowExistingWorkDir bool   `yaml:"allowExistingWorkDir" json:"-"`
	Autoregister         bool   `yaml:"autoregister" json:"autoregister"`
	TokenDuration        int64  `yaml:"tokenDuration" json:"tokenDuration"`
	CaptureDNS           bool   `yaml:"captureDNS" json:"captureDNS"`
	GatewayAddress       string `yaml:"gatewayAddress" json:"gatewayAddress"`
	VM                   VM     `yaml:"vm" json:"vm"`
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
		Cluster:         "Kubernetes",
		MeshID:          "mesh1",
		InstallIstio:    InstallAuto,
		EastWestInstall: EastWestAuto,
		IstioNamespace:  "istio-system",
		App:             "demo",
		Namespace:       "vm",
		ServiceAccount:  "vm",
		WorkDir:         "./vmintegration",
		Autoregister:    true,
		TokenDuration:   3600,
		CaptureDNS:      true,
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
	// A control character or broken UTF-8 in any value is a paste gone wrong;
	// checked first so that the checks below see printable text.
	bad := map[string]bool{}
	for _, kv := range s.stringValues() {
		if p := unprintable(kv.value); p != "" {
			add(kv.key, "%s; retype the value", p)
			bad[kv.key] = true
		}
	}
	label := func(key, v string, required bool) {
		if bad[key] {
			return
		}
		if v == "" {
			if required {
				add(key, "must not be empty; give a lower-case name such as the default in README.md")
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
	for _, kv := range []keyValue{{"clusterNetwork", s.ClusterNetwork}, {"vmNetwork", s.VMNetwork}, {"cluster", s.Cluster}, {"meshID", s.MeshID}} {
		if kv.value != "" && !bad[kv.key] {
			if msgs := validation.IsValidLabelValue(kv.value); len(msgs) > 0 {
				add(kv.key, "%q is not usable as a label value: %s", kv.value, strings.Join(msgs, "; "))
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
	switch s.EastWestInstall {
	case EastWestAuto, EastWestManifests, EastWestNone:
	case EastWestIstioctl:
		if s.InstallIstio == InstallNever {
			add("eastwestInstall", "istioctl runs istioctl, which installIstio: never rules out; set eastwestInstall to manifests or none, or installIstio to auto")
		}
	default:
		add("eastwestInstall", "%q must be auto, istioctl, manifests or none", s.EastWestInstall)
	}
	switch {
	case s.TokenDuration < 0:
		add("tokenDuration", "%d is negative; give the token lifetime in seconds (default 3600)", s.TokenDuration)
	case s.TokenDuration < MinTokenDuration:
		add("tokenDuration", "%d seconds is shorter than the API server issues (at least %d); give %d or more", s.TokenDuration, MinTokenDuration, MinTokenDuration)
	case s.TokenDuration > 1<<32-1:
		add("tokenDuration", "%d seconds is too long; give at most %d (the default is 3600)", s.TokenDuration, int64(1<<32-1))
	}
	// Values handed to kubectl and istioctl as arguments must not read as options.
	for _, kv := range []keyValue{{"kubeconfig", s.Kubeconfig}, {"kubeContext", s.KubeContext}, {"istioctl", s.Istioctl}} {
		if strings.HasPrefix(kv.value, "-") {
			add(kv.key, "%q starts with '-' and would be read as an option; write a path as ./%s, or fix the name", kv.value, kv.value)
		}
	}
	if s.WorkDir == "" {
		add("workDir", "must not be empty; give a directory for the VM's files (default ./vmintegration)")
	}
	v := s.VM
	if v.Host != "" && !bad["vm.host"] {
		if p := hostProblem(v.Host); p != "" {
			add("vm.host", "%s", p)
		}
	}
	if v.User != "" && !bad["vm.user"] && !userName.MatchString(v.User) {
		add("vm.user", "%q is not a user name (letters, digits, '.', '_', '-' and '@', not starting with '-', at most 64); give the VM's login user, or leave it empty for ssh_config's", v.User)
	}
	if v.Port < 0 || v.Port > 65535 {
		add("vm.port", "%d is not a TCP port; give 1 to 65535, or 0 for ssh_config's (else 22)", v.Port)
	}
	if f := v.HostKeyFingerprint; f != "" && !bad["vm.hostKeyFingerprint"] && !fingerprint(f) {
		add("vm.hostKeyFingerprint", "%q is not an OpenSSH SHA256 fingerprint (SHA256: and 43 base64 characters, as ssh-keygen -lf prints); copy it from ssh-keygen -lf on the VM's host key", f)
	}
	if v.Package != "" && v.PackageURL != "" {
		add("vm.package", "give vm.package or vm.packageURL, not both")
	}
	if p := v.Package; p != "" && !bad["vm.package"] && !strings.HasSuffix(p, ".rpm") && !strings.HasSuffix(p, ".deb") {
		add("vm.package", "%q is neither a .rpm nor a .deb; give the path of Istio's istio-sidecar.rpm or istio-sidecar.deb", p)
	}
	if u := v.PackageURL; u != "" && !bad["vm.packageURL"] {
		if p := packageURLProblem(u, v.AllowInsecurePackageURL); p != "" {
			add("vm.packageURL", "%s", p)
		}
	}
	if sum := v.PackageSHA256; sum != "" && !sha256Hex.MatchString(sum) {
		add("vm.packageSHA256", "%q is not a SHA-256: give exactly 64 hex digits, as sha256sum prints", sum)
	}
	if ip := v.InternalIP; ip != "" && !bad["vm.internalIP"] {
		if _, err := netip.ParseAddr(ip); err != nil {
			add("vm.internalIP", "%q is not an IP address; give the VM's address for ISTIO_SVC_IP, or leave it empty", ip)
		}
	}
	switch {
	case v.AgentWait < 0:
		add("vm.agentWait", "must not be negative; give seconds to wait for the agent (default 90)")
	case v.AgentWait > maxAgentWait:
		add("vm.agentWait", "%d seconds is more than a day; give at most %d (default 90)", v.AgentWait, maxAgentWait)
	}
	if a := s.GatewayAddress; a != "" && !bad["gatewayAddress"] {
		if _, err := netip.ParseAddr(a); err != nil && len(validation.IsDNS1123Subdomain(a)) > 0 {
			add("gatewayAddress", "%q is neither an IP address nor a host name; give the east-west gateway's address, or leave it empty", a)
		}
	}
	return errs
}

// maxAgentWait bounds vm.agentWait: a day is longer than any agent needs.
const maxAgentWait = 24 * 3600

var (
	sha256Hex = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	// userName: POSIX names, and the '@' of directory (AD, LDAP) logins.
	userName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._@-]{0,63}$`)
)

type keyValue struct{ key, value string }

// stringValues are every string setting with its key.
func (s Settings) stringValues() []keyValue {
	v := s.VM
	return []keyValue{
		{"kubeconfig", s.Kubeconfig}, {"kubeContext", s.KubeContext}, {"cluster", s.Cluster},
		{"clusterNetwork", s.ClusterNetwork}, {"meshID", s.MeshID}, {"revision", s.Revision},
		{"installIstio", s.InstallIstio}, {"eastwestInstall", s.EastWestInstall}, {"istioctl", s.Istioctl}, {"istioNamespace", s.IstioNamespace},
		{"app", s.App}, {"namespace", s.Namespace}, {"serviceAccount", s.ServiceAccount},
		{"vmNetwork", s.VMNetwork}, {"workDir", s.WorkDir}, {"gatewayAddress", s.GatewayAddress},
		{"vm.host", v.Host}, {"vm.user", v.User}, {"vm.identityFile", v.IdentityFile}, {"vm.sshConfig", v.SSHConfig},
		{"vm.knownHostsFile", v.KnownHostsFile}, {"vm.hostKeyFingerprint", v.HostKeyFingerprint},
		{"vm.passwordFile", v.PasswordFile}, {"vm.sudoPasswordFile", v.SudoPasswordFile}, {"vm.package", v.Package},
		{"vm.packageURL", v.PackageURL}, {"vm.packageSHA256", v.PackageSHA256}, {"vm.internalIP", v.InternalIP},
	}
}

// unprintable says what is wrong with a value holding broken UTF-8 or control
// characters, or "" when it holds neither.
func unprintable(v string) string {
	if !utf8.ValidString(v) {
		return "is not valid UTF-8"
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return fmt.Sprintf("holds the control character %U", r)
		}
	}
	return ""
}

// hostProblem says why h is not an IP address, host name or ssh_config alias,
// or "" when it is one. ssh sees the value as an argument and ssh_config's
// %h, so only the characters of names and addresses are let through.
func hostProblem(h string) string {
	const fix = "give the VM's IP address, host name or ~/.ssh/config Host alias (letters, digits, '.', '-', '_'; ':' only in an IPv6 address)"
	if strings.HasPrefix(h, "-") {
		return fmt.Sprintf("%q starts with '-' and would be read as an option; %s", h, fix)
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if z := a.Zone(); z != "" && !hostName.MatchString(z) {
			return fmt.Sprintf("%q has the zone %q, which is no interface name; %s", h, z, fix)
		}
		return ""
	}
	if user, _, ok := strings.Cut(h, "@"); ok {
		return fmt.Sprintf("%q holds a user; put %q in vm.user and the address alone in vm.host", h, user)
	}
	if host, port, ok := strings.Cut(h, ":"); ok && !strings.Contains(port, ":") {
		return fmt.Sprintf("%q holds a port; put %q in vm.port and %q in vm.host", h, port, host)
	}
	if len(h) > 253 {
		return fmt.Sprintf("is %d characters long, longer than any host name (253); %s", len(h), fix)
	}
	for _, r := range h {
		if !(r < utf8.RuneSelf && hostName.MatchString(string(r))) {
			what := "has " + strconv.QuoteRune(r)
			if unicode.IsSpace(r) {
				what = "has whitespace"
			}
			return fmt.Sprintf("%q %s; %s", h, what, fix)
		}
	}
	return ""
}

var hostName = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// fingerprint: SHA256: and the 43 characters of unpadded base64 of 32 bytes.
func fingerprint(f string) bool {
	b64, ok := strings.CutPrefix(f, "SHA256:")
	if !ok || len(b64) != 43 {
		return false
	}
	sum, err := base64.RawStdEncoding.DecodeString(b64)
	return err == nil && len(sum) == sha256.Size
}

// packageURLProblem says why u cannot be handed to the VM's download, or "".
// Only https proves the server; http must be asked for by name.
func packageURLProblem(u string, allowHTTP bool) string {
	const fix = "give an https:// URL of the istio-sidecar package (or of its directory, ending in /)"
	if strings.HasPrefix(u, "-") {
		return fmt.Sprintf("%q starts with '-' and would be read as an option; %s", u, fix)
	}
	for _, r := range u {
		switch {
		case unicode.IsSpace(r):
			return fmt.Sprintf("%q has whitespace; %s (spaces as %%20)", u, fix)
		case r == '"' || r == '\'' || r == '`' || r == '\\':
			return fmt.Sprintf("%q has %q, which a URL does not hold; %s", u, r, fix)
		case r >= utf8.RuneSelf:
			return fmt.Sprintf("%q has %q; %s (percent-encoded)", u, r, fix)
		}
	}
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Sprintf("%q is not a URL (%v); %s", u, err, fix)
	}
	switch {
	case p.Scheme == "":
		return fmt.Sprintf("%q has no scheme; %s", u, fix)
	case strings.EqualFold(p.Scheme, "https"):
	case strings.EqualFold(p.Scheme, "http") && allowHTTP:
	case strings.EqualFold(p.Scheme, "http"):
		return fmt.Sprintf("%q is plain http: anyone on the VM's path could swap the package; give an https:// URL, or set vm.allowInsecurePackageURL: true to download it anyway", u)
	default:
		return fmt.Sprintf("%q is a %s: URL; %s", u, p.Scheme, fix)
	}
	if p.Host == "" || p.Hostname() == "" {
		return fmt.Sprintf("%q names no server; %s", u, fix)
	}
	if p.User != nil {
		return fmt.Sprintf("%q holds credentials, which the plan and the logs would show; serve the package without them (or upload it with vm.package)", u)
	}
	if p.Path == "" {
		return fmt.Sprintf("%q names no file; %s", u, fix)
	}
	return ""
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

// MaxInputSize bounds what vm2mesh reads from a file named on its command line:
// an answers file is a few hundred bytes, a WorkloadGroup a few KiB.
const MaxInputSize = 1 << 20

// ReadInput reads the file that flag names: a regular file, or "-" for stdin, of
// at most MaxInputSize bytes. It opens without blocking, so a FIFO or a device
// is refused at once instead of hanging the run (or filling memory, as
// /dev/zero would); reading stdin gives way to ctx, so Ctrl+C still works.
func ReadInput(ctx context.Context, flag, path string, stdin io.Reader) ([]byte, error) {
	if path == "-" {
		if stdin == nil {
			return nil, fmt.Errorf("%s -: there is no stdin to read here; give the file's path", flag)
		}
		return readStdin(ctx, flag, stdin)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w; give the path of a readable file", flag, path, unwrapPath(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s: %s, not a regular file; give a regular file, or - to read stdin", flag, path, FileKind(st.Mode()))
	}
	if st.Size() > MaxInputSize {
		return nil, fmt.Errorf("%s %s: %d bytes, more than the %d (1 MiB) vm2mesh reads; give the right file", flag, path, st.Size(), MaxInputSize)
	}
	return readBounded(flag, path, f)
}

// readStdin reads stdin in the background: a read of a pipe or terminal cannot
// be interrupted, the wait for it can.
func readStdin(ctx context.Context, flag string, stdin io.Reader) ([]byte, error) {
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		data, err := readBounded(flag, "-", stdin)
		done <- result{data, err}
	}()
	select {
	case r := <-done:
		return r.data, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func readBounded(flag, path string, r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxInputSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, path, err)
	}
	if len(data) > MaxInputSize {
		return nil, fmt.Errorf("%s %s: more than the %d bytes (1 MiB) vm2mesh reads; give the right file", flag, path, MaxInputSize)
	}
	return data, nil
}

// unwrapPath drops the *PathError's own "open PATH:", which the message already names.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// FileKind names what a file is, for messages.
func FileKind(m os.FileMode) string {
	switch {
	case m.IsRegular():
		return "a file"
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "not a regular file"
}

// LoadAnswers reads the answers file path ("-": stdin) over the defaults.
// Unknown keys and invalid values are errors that name the key.
func LoadAnswers(ctx context.Context, path string, stdin io.Reader) (Settings, error) {
	data, err := ReadInput(ctx, "-f", path, stdin)
	if err != nil {
		return Settings{}, err
	}
	name := path
	if path == "-" {
		name = "answers (stdin)"
	}
	return ParseAnswers(name, data)
}

// ParseAnswers is LoadAnswers for bytes; name is used in messages. It reads
// one VM (vm:); a fleet (vms:) is ParseFleet's.
func ParseAnswers(name string, data []byte) (Settings, error) {
	f, err := ParseFleet(name, data)
	if err != nil {
		return Settings{}, err
	}
	if !f.Single {
		return Settings{}, fmt.Errorf("%s: lists %d VMs under vms:; this takes one VM: put it under vm:, or use vm2mesh apply, which runs a fleet", name, len(f.VMs))
	}
	return f.Settings, nil
}

// answersFile is the answers file as YAML has it: the settings, and for a
// fleet the VMs and what they share.
type answersFile struct {
	Settings   `yaml:",inline"`
	VMDefaults VM        `yaml:"vmDefaults"`
	VMs        []vmEntry `yaml:"vms"`
}

// vmEntry is one VM of vms: the keys of vm:, its name, and what it may
// override of the top level (nil: not overridden).
type vmEntry struct {
	Name           string  `yaml:"name"`
	App            *string `yaml:"app"`
	Namespace      *string `yaml:"namespace"`
	ServiceAccount *string `yaml:"serviceAccount"`
	VMNetwork      *string `yaml:"vmNetwork"`
	VM             `yaml:",inline"`
}

// decodeAnswers decodes the one YAML document of an answers file over the
// defaults, refusing unknown keys, a second document and keys without values.
func decodeAnswers(name string, data []byte) (answersFile, *yaml.Node, error) {
	a := answersFile{Settings: Defaults()}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&a); err != nil && !errors.Is(err, io.EOF) { // empty file: all defaults
		msg := err.Error()
		if m := unknownField.FindAllStringSubmatch(msg, -1); m != nil {
			var keys []string
			for _, x := range m {
				keys = append(keys, fmt.Sprintf("%q (line %s)", x[2], x[1]))
			}
			return a, nil, fmt.Errorf("%s: unknown key %s; see the README for the keys", name, strings.Join(keys, ", "))
		}
		return a, nil, fmt.Errorf("%s: %s; fix the YAML (README.md shows every key with its type)", name, strings.TrimPrefix(msg, "yaml: "))
	}
	// A second document would be read by nothing: its settings, silently lost,
	// could be the ones the operator meant.
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return a, nil, fmt.Errorf("%s: a second YAML document starts at line %d; an answers file is one document: remove the '---' and merge the keys", name, next.Line)
	} else if !errors.Is(err, io.EOF) {
		return a, nil, fmt.Errorf("%s: after the first YAML document: %s; an answers file is one document: remove the '---' and what follows", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err == nil {
		if errs := nullValues(&doc, ""); len(errs) > 0 {
			return a, nil, fmt.Errorf("%s: %w", name, ValidationError(errs))
		}
	}
	return a, &doc, nil
}

// nullValues finds keys given no value (nothing, ~ or null), which YAML reads
// as "keep the default": `workDir: ~` would quietly mean ./vmintegration, not
// the home directory.
func nullValues(n *yaml.Node, prefix string) []FieldError {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return nullValues(n.Content[0], prefix)
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	var errs []FieldError
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, value := n.Content[i], n.Content[i+1]
		if value.Kind == yaml.AliasNode && value.Alias != nil {
			value = value.Alias
		}
		switch {
		case value.Kind == yaml.ScalarNode && value.ShortTag() == "!!null":
			errs = append(errs, FieldError{Key: prefix + key.Value, Problem: fmt.Sprintf(
				"has no value (line %d; YAML reads nothing, ~ and null as none); give one (quoted \"~\" for the home directory), \"\" for empty, or remove the key for the default", value.Line)})
		case value.Kind == yaml.MappingNode && prefix == "":
			errs = append(errs, nullValues(value, key.Value+".")...)
		case value.Kind == yaml.SequenceNode && prefix == "":
			for i, item := range value.Content {
				errs = append(errs, nullValues(item, fmt.Sprintf("%s[%d].", key.Value, i))...)
			}
		}
	}
	return errs
}
