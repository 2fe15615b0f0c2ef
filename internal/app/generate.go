package app

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/vm2mesh/vm2mesh/k8s"
	"github.com/vm2mesh/vm2mesh/vmconfig"
)

// newGenerate is a drop-in for `istioctl x workload entry configure`: the same
// flags and defaults, the same bytes out; the files are 0600, and a hostname-only
// load balancer is resolved instead of leaving hosts empty.
func newGenerate(stdio IO) *cobra.Command {
	var (
		file, outDir, kubeconfig, kubeContext string
		o                                     vmconfig.Options
		rootCertWait                          time.Duration
	)
	cmd := &cobra.Command{
		Use:   "generate -f workloadgroup.yaml -o DIR",
		Short: "Generate the five files a VM needs (drop-in for istioctl x workload entry configure)",
		Example: `  vm2mesh generate -f workloadgroup.yaml -o vmintegration --clusterID Kubernetes
  vm2mesh generate -f workloadgroup.yaml -o out --ingressIP 203.0.113.7 --internalIP 10.0.0.12`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return fmt.Errorf("expecting a WorkloadGroup file: -f workloadgroup.yaml")
			}
			if outDir == "" {
				return fmt.Errorf("expecting an output directory: -o DIR")
			}
			if o.InternalIP != "" && o.ExternalIP != "" {
				return fmt.Errorf("the flags --internalIP and --externalIP are mutually exclusive")
			}
			if o.TokenDuration <= 0 {
				return fmt.Errorf("--tokenDuration must be a positive number of seconds")
			}
			data, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			wg, err := vmconfig.ParseWorkloadGroup(data)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			o.ClusterIDSet = cmd.Flags().Changed("clusterID")
			o.RootCertWait = rootCertWait
			c, err := k8s.New(k8s.Options{Kubeconfig: kubeconfig, Context: kubeContext})
			if err != nil {
				return err
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
	f.StringVarP(&file, "file", "f", "", "filename of the WorkloadGroup artifact")
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
	f.DurationVar(&rootCertWait, "wait-root-cert", 0, "wait this long for istiod to write istio-ca-root-cert into the namespace (istioctl does not wait)")
	return cmd
}
