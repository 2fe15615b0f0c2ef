package app

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/vm2mesh/vm2mesh/k8s"
	"github.com/vm2mesh/vm2mesh/steps"
	"github.com/vm2mesh/vm2mesh/vmconfig"
)

// newGenerate is a drop-in for `istioctl x workload entry configure`: the same
// flags and defaults, the same bytes out; the files are 0600, and a hostname-only
// load balancer is resolved instead of leaving hosts empty.
func newGenerate(stdio IO) *cobra.Command {
	var (
		file, outDir, kubeconfig, kubeContext string
		name, namespace                       string
		o                                     vmconfig.Options
		rootCertWait                          time.Duration
		force                                 bool
	)
	cmd := &cobra.Command{
		Use:   "generate (-f workloadgroup.yaml | --name NAME -n NAMESPACE) -o DIR",
		Short: "Generate the five files a VM needs (drop-in for istioctl x workload entry configure)",
		Example: `  vm2mesh generate -f workloadgroup.yaml -o vmintegration --clusterID Kubernetes
  vm2mesh generate -f workloadgroup.yaml -o out --ingressIP 203.0.113.7 --internalIP 10.0.0.12
  vm2mesh generate --name demo -n vm -o vmintegration`,
		Args: noArgs("give the WorkloadGroup with -f (or --name and -n) and the output directory with -o"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkWorkloadGroupFlags(file, name, namespace); err != nil {
				return err
			}
			if outDir == "" {
				return fmt.Errorf("expecting an output directory: -o DIR")
			}
			if o.InternalIP != "" && o.ExternalIP != "" {
				return fmt.Errorf("the flags --internalIP and --externalIP are mutually exclusive; give one of them")
			}
			if o.TokenDuration <= 0 {
				return fmt.Errorf("--tokenDuration must be a positive number of seconds")
			}
			// Everything local is checked before the cluster is asked for anything.
			if err := checkGenerateFlags(o, rootCertWait); err != nil {
				return err
			}
			var wg *vmconfig.WorkloadGroup
			if file != "" {
				data, err := steps.ReadInput(cmd.Context(), "-f", file, stdio.In)
				if err != nil {
					return err
				}
				if wg, err = vmconfig.ParseWorkloadGroup(data); err != nil {
					return fmt.Errorf("%s: %w; give a WorkloadGroup manifest (as vm2mesh apply writes into workDir)", file, err)
				}
			}
			dir, err := steps.CheckWorkDir("-o", outDir, force, "add --force to write into it anyway")
			if err != nil {
				return err
			}
			if err := checkKubeFlags(kubeconfig, kubeContext); err != nil {
				return err
			}
			o.ClusterIDSet = cmd.Flags().Changed("clusterID")
			o.RootCertWait = rootCertWait
			c, err := k8s.New(k8s.Options{Kubeconfig: kubeconfig, Context: kubeContext})
			if err != nil {
				return err
			}
			if wg == nil {
				// As istioctl: the WorkloadGroup as the API server has it, read like a file.
				data, err := c.WorkloadGroup(cmd.Context(), namespace, name)
				if err != nil {
					return err
				}
				if wg, err = vmconfig.ParseWorkloadGroup(data); err != nil {
					return fmt.Errorf("workloadgroup %s in namespace %s: %w", name, namespace, err)
				}
			}
			if warning, err := dir.Tighten(); err != nil {
				return err
			} else if warning != "" {
				fmt.Fprintf(stdio.Err, "Warning: %s\n", warning)
			}
			files, err := vmconfig.Generate(cmd.Context(), c, wg, o)
			if err != nil {
				return err
			}
			for _, w := range files.Warnings {
				fmt.Fprintf(stdio.Err, "Warning: %s\n", w)
			}
			if err := files.Write(outDir); err != nil {
				return err
			}
			fmt.Fprintf(stdio.Err, "Warning: a security token for namespace %q and service account %q has been generated and stored at %q\n",
				wg.Namespace, wg.Spec.GetTemplate().GetServiceAccount(), outDir+"/istio-token")
			fmt.Fprintf(stdio.Out, "Configuration generation into directory %s was successful\n", outDir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "filename of the WorkloadGroup artifact; leave it out to read the WorkloadGroup from the API server (--name, -n)")
	f.StringVar(&name, "name", "", "The name of the WorkloadGroup to read from the API server")
	f.StringVarP(&namespace, "namespace", "n", "", "The namespace of that WorkloadGroup")
	f.StringVarP(&outDir, "output", "o", "", "Output directory for generated files")
	f.StringVar(&o.ClusterID, "clusterID", "", "The ID used to identify the cluster (default: read from the sidecar injector's values)")
	f.Int64Var(&o.TokenDuration, "tokenDuration", 3600, "The token duration in seconds")
	f.StringVar(&o.IngressService, "ingressService", "istio-eastwestgateway", "Name of the Service to be used as the ingress gateway, in the format <service>.<namespace>; without a namespace, the Istio namespace")
	f.StringVar(&o.IngressIP, "ingressIP", "", "IP address of the ingress gateway")
	f.BoolVar(&o.AutoRegister, "autoregister", false, "Creates a WorkloadEntry upon connection to istiod (if enabled in pilot)")
	f.BoolVar(&o.CaptureDNS, "capture-dns", true, "Enables the capture of outgoing DNS packets on port 53, redirecting to istio-agent")
	f.StringVar(&o.InternalIP, "internalIP", "", "Internal IP address of the workload")
	f.StringVar(&o.ExternalIP, "externalIP", "", "External IP address of the workload")
	f.StringVarP(&o.Revision, "revision", "r", "", "Control plane revision")
	f.StringVarP(&o.IstioNamespace, "istioNamespace", "i", "istio-system", "Istio system namespace")
	f.StringVarP(&kubeconfig, "kubeconfig", "c", "", "Kubernetes configuration file")
	f.StringVar(&kubeContext, "context", "", "Kubernetes configuration context")
	f.BoolVar(&force, "force", false, "write into -o even when it holds files vm2mesh did not write")
	f.DurationVar(&rootCertWait, "wait-root-cert", 0, "wait this long for istiod to write istio-ca-root-cert into the namespace (istioctl does not wait)")
	return cmd
}

// checkWorkloadGroupFlags: the WorkloadGroup comes from a file or from the API
// server, never both. -n has no default, as in istioctl.
func checkWorkloadGroupFlags(file, name, namespace string) error {
	switch {
	case file != "" && (name != "" || namespace != ""):
		return fmt.Errorf("the flags -f and --name/-n are mutually exclusive: give the WorkloadGroup as a file (-f) or by name and namespace in the cluster (--name NAME -n NAMESPACE)")
	case file == "" && name == "" && namespace == "":
		return fmt.Errorf("expecting a WorkloadGroup: -f workloadgroup.yaml, or --name NAME -n NAMESPACE of one in the cluster")
	case file == "" && name == "":
		return fmt.Errorf("-n %s: give the WorkloadGroup's name too (--name NAME), or its file with -f instead", namespace)
	case file == "" && namespace == "":
		return fmt.Errorf("--name %s: give the WorkloadGroup's namespace too (-n NAMESPACE; there is no default, as in istioctl)", name)
	}
	if file != "" {
		return nil
	}
	if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
		return fmt.Errorf("--name: %q is not a valid WorkloadGroup name (%s); give the name as kubectl get workloadgroups shows it", name, strings.Join(msgs, "; "))
	}
	if msgs := validation.IsDNS1123Label(namespace); len(msgs) > 0 {
		return fmt.Errorf("-n: %q is not a valid namespace (%s); give the namespace as kubectl shows it", namespace, strings.Join(msgs, "; "))
	}
	return nil
}

// checkGenerateFlags checks the values istioctl would pass on unchecked into the
// VM's files, each error naming its flag.
func checkGenerateFlags(o vmconfig.Options, rootCertWait time.Duration) error {
	for _, ip := range []struct{ flag, value, what string }{
		{"--ingressIP", o.IngressIP, "the east-west gateway's IP address, or leave it out to read it from --ingressService"},
		{"--internalIP", o.InternalIP, "the VM's internal IP address"},
		{"--externalIP", o.ExternalIP, "the VM's external IP address"},
	} {
		if ip.value == "" {
			continue
		}
		if _, err := netip.ParseAddr(ip.value); err != nil {
			return fmt.Errorf("%s: %q is not an IP address; give %s", ip.flag, ip.value, ip.what)
		}
	}
	if o.TokenDuration < steps.MinTokenDuration {
		return fmt.Errorf("--tokenDuration: %d seconds is shorter than the API server issues; give at least %d", o.TokenDuration, steps.MinTokenDuration)
	}
	for _, n := range []struct{ flag, value string }{{"--revision", o.Revision}, {"--istioNamespace", o.IstioNamespace}} {
		if n.value == "" && n.flag == "--revision" {
			continue
		}
		if msgs := validation.IsDNS1123Label(n.value); len(msgs) > 0 {
			return fmt.Errorf("%s: %q is not a valid name (%s); give the name as kubectl shows it", n.flag, n.value, strings.Join(msgs, "; "))
		}
	}
	if o.ClusterID != "" {
		if msgs := validation.IsValidLabelValue(o.ClusterID); len(msgs) > 0 {
			return fmt.Errorf("--clusterID: %q is not usable as a cluster ID (%s); give the cluster's name, as in the istiod's CLUSTER_ID", o.ClusterID, strings.Join(msgs, "; "))
		}
	}
	if o.IngressService != "" {
		svc, ns, hasNS := strings.Cut(o.IngressService, ".")
		msgs := validation.IsDNS1123Label(svc)
		if hasNS {
			msgs = append(msgs, validation.IsDNS1123Label(ns)...)
		}
		if len(msgs) > 0 {
			return fmt.Errorf("--ingressService: %q is not SERVICE or SERVICE.NAMESPACE (%s); give the gateway Service's name, such as istio-eastwestgateway", o.IngressService, strings.Join(msgs, "; "))
		}
	}
	if rootCertWait < 0 {
		return fmt.Errorf("--wait-root-cert: %s is negative; give how long to wait, such as 1m, or 0 to read once", rootCertWait)
	}
	return nil
}

// checkKubeFlags checks --kubeconfig and --context on this machine, so that a
// typo is not reported as a cluster that does not answer.
func checkKubeFlags(kubeconfig, kubeContext string) error {
	s := steps.Settings{}
	errs := steps.CheckKube(s, k8s.Options{Kubeconfig: kubeconfig, Context: kubeContext})
	if len(errs) > 0 {
		return steps.ValidationError(errs)
	}
	return nil
}
