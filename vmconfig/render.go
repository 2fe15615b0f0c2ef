// Package vmconfig makes the five files a VM needs to join the mesh (cluster.env,
// mesh.yaml, root-cert.pem, istio-token, hosts), byte for byte as
// `istioctl x workload entry configure` writes them, from a WorkloadGroup and the
// cluster's mesh config.
package vmconfig

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	"sigs.k8s.io/yaml"
)

// ProxyConfigAnnotation carries proxy config overrides on a WorkloadGroup.
const ProxyConfigAnnotation = "proxy.istio.io/config"

// Inputs is everything the three rendered files depend on.
type Inputs struct {
	Group          *WorkloadGroup
	Mesh           string // the "mesh" key of the istio (or istio-<rev>) ConfigMap
	IstioNamespace string
	Revision       string
	ClusterID      string
	InternalIP     string
	ExternalIP     string
	IngressIP      string // empty: an empty hosts file, as istioctl writes
	CaptureDNS     bool
	AutoRegister   bool
}

// Rendered holds the files computed from Inputs alone.
type Rendered struct {
	ClusterEnv []byte
	MeshYAML   []byte
	Hosts      []byte
	Warnings   []string
}

// Revisioned is istioctl's rule: "" and "default" mean the default revision.
func Revisioned(rev string) bool { return rev != "" && rev != "default" }

// IstiodHost is istiod's in-cluster name for the revision.
func IstiodHost(ns, rev string) string {
	if Revisioned(rev) {
		return fmt.Sprintf("istiod-%s.%s.svc", rev, ns)
	}
	return fmt.Sprintf("istiod.%s.svc", ns)
}

// IstiodAddr is istiod's XDS and CA address.
func IstiodAddr(ns, rev string) string { return IstiodHost(ns, rev) + ":15012" }

// Render computes cluster.env, mesh.yaml and hosts.
func Render(in Inputs) (*Rendered, error) {
	out := &Rendered{}
	pc, err := proxyConfig(in, out)
	if err != nil {
		return nil, err
	}
	meshYAML, err := marshalProxyConfig(pc)
	if err != nil {
		return nil, err
	}
	out.MeshYAML = meshYAML
	if err := checkEnvKeys(pc.ProxyMetadata); err != nil {
		return nil, err
	}
	out.ClusterEnv = clusterEnv(in, pc)
	if _, err := netip.ParseAddr(in.IngressIP); err == nil {
		out.Hosts = []byte(fmt.Sprintf("%s %s\n", in.IngressIP, IstiodHost(in.IstioNamespace, in.Revision)))
	} else {
		out.Hosts = []byte{}
		out.Warnings = append(out.Warnings, fmt.Sprintf("could not find the gateway's IP for %s: the hosts file is empty; give --ingressIP to reach istiod from the VM",
			IstiodHost(in.IstioNamespace, in.Revision)))
	}
	return out, nil
}

// proxyConfig merges the mesh's defaultConfig, the WorkloadGroup's proxy config
// annotations and the workload's metadata, in istioctl's order.
func proxyConfig(in Inputs, out *Rendered) (*meshv1alpha1.ProxyConfig, error) {
	wg := in.Group
	mesh := &meshv1alpha1.MeshConfig{}
	if err := applyYAML(in.Mesh, mesh); err != nil {
		return nil, fmt.Errorf("the mesh config (ConfigMap key mesh) does not parse: %w", err)
	}
	if mesh.DefaultConfig == nil {
		mesh.DefaultConfig = &meshv1alpha1.ProxyConfig{}
	}
	pc := mesh.DefaultConfig
	if pc.ProxyMetadata == nil {
		pc.ProxyMetadata = map[string]string{}
	}
	if Revisioned(in.Revision) && pc.DiscoveryAddress == "" {
		pc.DiscoveryAddress = IstiodAddr(in.IstioNamespace, in.Revision)
	}
	for _, annotations := range []map[string]string{wg.Annotations, wg.Spec.GetMetadata().GetAnnotations()} {
		raw, ok := annotations[ProxyConfigAnnotation]
		if !ok {
			continue
		}
		over := &meshv1alpha1.ProxyConfig{}
		if err := applyYAML(raw, over); err != nil {
			return nil, fmt.Errorf("annotation %s on WorkloadGroup %s: %w", ProxyConfigAnnotation, wg.Name, err)
		}
		overlay(pc, over)
	}

	labels := map[string]string{}
	for k, v := range wg.Spec.GetMetadata().GetLabels() {
		labels[k] = v
	}
	we := wg.Spec.GetTemplate()
	if len(we.GetLabels()) > 0 {
		out.Warnings = append(out.Warnings, fmt.Sprintf("labels belong in spec.metadata; these template labels override them: %v", we.GetLabels()))
		for k, v := range we.GetLabels() {
			labels[k] = v
		}
	}
	pc.ReadinessProbe = wg.Spec.GetProbe()

	md := pc.ProxyMetadata
	md["CANONICAL_SERVICE"], md["CANONICAL_REVISION"] = canonicalService(labels, wg.Name)
	md["POD_NAMESPACE"] = wg.Namespace
	md["SERVICE_ACCOUNT"] = we.GetServiceAccount()
	md["TRUST_DOMAIN"] = mesh.TrustDomain
	md["ISTIO_META_CLUSTER_ID"] = in.ClusterID
	md["ISTIO_META_MESH_ID"] = pc.MeshId
	md["ISTIO_META_NETWORK"] = we.GetNetwork()
	if ports := podPorts(we.GetPorts()); ports != "" {
		md["ISTIO_META_POD_PORTS"] = ports
	}
	md["ISTIO_META_WORKLOAD_NAME"] = wg.Name
	labels["service.istio.io/canonical-name"] = md["CANONICAL_SERVICE"]
	labels["service.istio.io/canonical-revision"] = md["CANONICAL_REVISION"]
	if js, err := json.Marshal(labels); err == nil {
		md["ISTIO_METAJSON_LABELS"] = string(js)
	}
	// Without the flag the mesh's own setting stands, as in istioctl.
	if in.CaptureDNS {
		md["ISTIO_META_DNS_CAPTURE"] = "true"
	}
	if in.AutoRegister {
		md["ISTIO_META_AUTO_REGISTER_GROUP"] = wg.Name
	}
	return pc, nil
}

// applyYAML reads YAML into a proto message by its JSON mapping; unknown fields are
// ignored, as istioctl does.
func applyYAML(y string, m protoreflect.ProtoMessage) error {
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		return err
	}
	if s := strings.TrimSpace(string(js)); s == "null" || s == "" {
		return nil
	}
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(js, m)
}

// overlay sets every field present in over onto dst, replacing it whole, except
// proxyMetadata, whose entries are merged (istioctl keeps the mesh's entries).
func overlay(dst, over *meshv1alpha1.ProxyConfig) {
	md := dst.ProxyMetadata
	d := dst.ProtoReflect()
	over.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		d.Set(fd, v)
		return true
	})
	for k, v := range over.ProxyMetadata {
		md[k] = v
	}
	dst.ProxyMetadata = md
}

// canonicalService picks the canonical service name and revision from labels, with
// Istio's fallbacks.
func canonicalService(labels map[string]string, workload string) (string, string) {
	name, rev := workload, "latest"
	for _, k := range []string{"service.istio.io/canonical-name", "app.kubernetes.io/name", "app"} {
		if v, ok := labels[k]; ok {
			name = v
			break
		}
	}
	for _, k := range []string{"service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"} {
		if v, ok := labels[k]; ok {
			rev = v
			break
		}
	}
	return name, rev
}

type podPort struct {
	Name          string `json:"name"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
}

func podPorts(ports map[string]uint32) string {
	if len(ports) == 0 {
		return ""
	}
	out := make([]podPort, 0, len(ports))
	for name, port := range ports {
		out = append(out, podPort{Name: name, ContainerPort: int(port)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	js, err := json.Marshal(out)
	if err != nil {
		return ""
	}
	return string(js)
}

// marshalProxyConfig writes {defaultConfig: <proxy config as JSON>} as YAML, the
// same path istioctl takes (proto JSON, then sigs.k8s.io/yaml's key order).
func marshalProxyConfig(pc *meshv1alpha1.ProxyConfig) ([]byte, error) {
	js, err := protojson.Marshal(pc)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, err
	}
	return yaml.Marshal(map[string]any{"defaultConfig": m})
}

func clusterEnv(in Inputs, pc *meshv1alpha1.ProxyConfig) []byte {
	wg := in.Group
	we := wg.Spec.GetTemplate()
	inbound := "*"
	if ports := we.GetPorts(); len(ports) > 0 {
		// istioctl joins them in map order; sorted is the same set, and stable.
		nums := make([]int, 0, len(ports))
		for _, p := range ports {
			nums = append(nums, int(p))
		}
		sort.Ints(nums)
		parts := make([]string, len(nums))
		for i, n := range nums {
			parts[i] = strconv.Itoa(n)
		}
		inbound = strings.Join(parts, ",")
	}
	// 22 keeps ssh reachable if the sidecar misbehaves; 15090 is prometheus; 15021
	// and the status port belong to the agent.
	exclude := "22,15090,15021"
	if pc.StatusPort != 15090 && pc.StatusPort != 15021 {
		if pc.StatusPort != 0 {
			exclude += fmt.Sprintf(",%d", pc.StatusPort)
		} else {
			exclude += ",15020"
		}
	}
	env := map[string]string{}
	for k, v := range pc.ProxyMetadata {
		env[k] = v
	}
	env["ISTIO_INBOUND_PORTS"] = inbound
	env["ISTIO_NAMESPACE"] = wg.Namespace
	env["ISTIO_SERVICE"] = wg.Name + "." + wg.Namespace
	env["ISTIO_SERVICE_CIDR"] = "*"
	env["ISTIO_LOCAL_EXCLUDE_PORTS"] = exclude
	env["SERVICE_ACCOUNT"] = we.GetServiceAccount()
	if Revisioned(in.Revision) {
		env["CA_ADDR"] = IstiodAddr(in.IstioNamespace, in.Revision)
	}
	if in.InternalIP != "" {
		env["ISTIO_SVC_IP"] = in.InternalIP
	} else if in.ExternalIP != "" {
		env["ISTIO_SVC_IP"] = in.ExternalIP
		env["REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION"] = "true"
	}
	lines := make([]string, 0, len(env))
	for k, v := range env {
		lines = append(lines, k+"="+shellQuote(v))
	}
	sort.Strings(lines)
	return []byte(strings.Join(lines, "\n") + "\n")
}

// shellQuote quotes a value for cluster.env the way istioctl does. Its pattern of
// safe characters is written as a raw string with a doubled backslash, so only a
// backslash, 'w' and @%+=:,./- are bare; every other value is single-quoted.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	if strings.Trim(s, `\w@%+=:,./-`) != "" {
		return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
	}
	return s
}

// WorkloadGroup is the part of a WorkloadGroup object the files are made from.
type WorkloadGroup struct {
	Name        string
	Namespace   string
	Annotations map[string]string
	Spec        *networkingv1alpha3.WorkloadGroup
}

// ParseWorkloadGroup reads a WorkloadGroup from YAML, filling defaults as istioctl
// does (service account "default").
func ParseWorkloadGroup(data []byte) (*WorkloadGroup, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("WorkloadGroup does not parse: %w", err)
	}
	var obj struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name        string            `json:"name"`
			Namespace   string            `json:"namespace"`
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
		Spec json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(js, &obj); err != nil {
		return nil, fmt.Errorf("WorkloadGroup does not parse: %w", err)
	}
	if obj.Kind != "" && obj.Kind != "WorkloadGroup" {
		return nil, fmt.Errorf("expected kind WorkloadGroup, found %s", obj.Kind)
	}
	if obj.Metadata.Name == "" || obj.Metadata.Namespace == "" {
		return nil, fmt.Errorf("the WorkloadGroup needs metadata.name and metadata.namespace")
	}
	spec := &networkingv1alpha3.WorkloadGroup{}
	if len(obj.Spec) > 0 && string(obj.Spec) != "null" {
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(obj.Spec, spec); err != nil {
			return nil, fmt.Errorf("WorkloadGroup %s spec: %w", obj.Metadata.Name, err)
		}
	}
	if spec.Metadata == nil {
		spec.Metadata = &networkingv1alpha3.WorkloadGroup_ObjectMeta{}
	}
	if spec.Template == nil {
		spec.Template = &networkingv1alpha3.WorkloadEntry{}
	}
	if spec.Template.ServiceAccount == "" {
		spec.Template.ServiceAccount = "default"
	}
	return &WorkloadGroup{
		Name:        obj.Metadata.Name,
		Namespace:   obj.Metadata.Namespace,
		Annotations: obj.Metadata.Annotations,
		Spec:        spec,
	}, nil
}
