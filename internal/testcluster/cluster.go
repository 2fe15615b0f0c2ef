package testcluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// AdminToken authenticates as a member of system:masters.
const adminToken = "vm2mesh-test-admin-token"

// ContextName is the context written into the kubeconfig.
const ContextName = "testcluster"

// Cluster is a running etcd and kube-apiserver.
type Cluster struct {
	Dir        string // holds the data, certificates, logs and the kubeconfig
	Kubeconfig string
	Server     string // https://127.0.0.1:PORT
	CAData     []byte
	Config     *rest.Config
	caFile     string
	saKeyFile  string // the API server's service-account signing key
	procs      []*exec.Cmd
}

// Start builds (or takes from the cache) etcd and kube-apiserver and starts them in
// dir, which the caller owns.
func Start(ctx context.Context, dir string) (*Cluster, error) {
	etcdBin, err := Etcd.Path()
	if err != nil {
		return nil, err
	}
	apiBin, err := KubeAPIServer.Path()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir}
	ok := false
	defer func() {
		if !ok {
			c.Stop()
		}
	}()
	certs, err := writeCerts(dir)
	if err != nil {
		return nil, err
	}
	c.CAData = certs.caPEM
	c.saKeyFile = certs.saKey
	c.caFile = filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(c.caFile, certs.caPEM, 0o644); err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	if err := c.spawn(etcdBin, "etcd.log",
		"--name=default",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+clientURL,
		"--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL,
		"--unsafe-no-fsync",
		"--log-level=warn",
	); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(adminToken+",admin,admin-uid,system:masters\n"), 0o600); err != nil {
		return nil, err
	}
	c.Server = fmt.Sprintf("https://127.0.0.1:%d", ports[2])
	if err := c.spawn(apiBin, "kube-apiserver.log",
		"--etcd-servers="+clientURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(ports[2]),
		"--tls-cert-file="+certs.serverCert,
		"--tls-private-key-file="+certs.serverKey,
		"--token-auth-file="+filepath.Join(dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+certs.saPub,
		"--service-account-signing-key-file="+certs.saKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		// 127.0.0.1 cannot be the kubernetes Service's endpoint.
		"--endpoint-reconciler-type=none",
		// Istio registers webhooks on ClusterIPs nothing serves here; the API server
		// would dial them, off the machine.
		"--disable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--v=0",
	); err != nil {
		return nil, err
	}
	c.Config = &rest.Config{
		Host:            c.Server,
		BearerToken:     adminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: certs.caPEM},
		Timeout:         30 * time.Second,
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := c.WriteKubeconfig(c.Kubeconfig, adminToken); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// WriteKubeconfig writes a kubeconfig for this cluster whose user carries token
// (tests use a wrong token to play an expired login).
func (c *Cluster) WriteKubeconfig(path, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[ContextName] = &clientcmdapi.Cluster{Server: c.Server, CertificateAuthorityData: c.CAData}
	cfg.AuthInfos[ContextName] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[ContextName] = &clientcmdapi.Context{Cluster: ContextName, AuthInfo: ContextName}
	cfg.CurrentContext = ContextName
	return clientcmd.WriteToFile(*cfg, path)
}

func (c *Cluster) spawn(bin, logName string, args ...string) error {
	logf, err := os.Create(filepath.Join(c.Dir, logName))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Die with the test process, even when it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", filepath.Base(bin), err)
	}
	c.procs = append(c.procs, cmd)
	return nil
}

func (c *Cluster) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // readiness probe of our own loopback server
	}}
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.Server+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := client.Do(req)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	log, _ := os.ReadFile(filepath.Join(c.Dir, "kube-apiserver.log"))
	return fmt.Errorf("kube-apiserver not ready in 90s; its log ends:\n%s", LastLines(string(log), 30))
}

// Stop ends the processes, kube-apiserver first.
func (c *Cluster) Stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		_ = p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
	}
	c.procs = nil
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
