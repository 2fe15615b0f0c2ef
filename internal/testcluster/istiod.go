package testcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// Istiod is the real istiod (pilot-discovery, built from the istio.io/istio
// module by hack/tools/istio) running outside the cluster against it.
type Istiod struct {
	SecureGRPC string // host:port of its XDS and CA
	Log        string
	cmd        *exec.Cmd
	exited     chan struct{}
}

// IstiodOptions say where istiod listens. Its defaults listen on all interfaces,
// so every listener is given an address.
type IstiodOptions struct {
	Bin        string
	ListenIP   string // every listener but XDS/CA; "" is 127.0.0.1
	SecureGRPC string // host:port of XDS and CA (15012 in a mesh); "" is a free port on ListenIP
	Dir        string // its working directory and log
	Env        []string
}

// RunIstiod starts pilot-discovery. It creates its self-signed CA and writes
// istio-ca-root-cert into every namespace, and reads the mesh config from the
// istio ConfigMap that `istioctl install` writes. It returns once XDS/CA accepts
// connections.
func (c *Cluster) RunIstiod(o IstiodOptions) (*Istiod, error) {
	ip := o.ListenIP
	if ip == "" {
		ip = "127.0.0.1"
	}
	var ports []int
	for range 6 {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return nil, err
		}
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
		l.Close()
	}
	addr := func(i int) string { return net.JoinHostPort(ip, strconv.Itoa(ports[i])) }
	secure := o.SecureGRPC
	if secure == "" {
		secure = addr(3)
	}
	cmd := exec.Command(o.Bin, "discovery", "--kubeconfig", c.Kubeconfig,
		"--httpAddr", addr(0), "--httpsAddr", addr(1), "--grpcAddr", addr(2), "--secureGRPCAddr", secure,
		"--monitoringAddr", addr(4), "--ctrlz_address", ip, "--ctrlz_port", strconv.Itoa(ports[5]))
	cmd.Env = append(append(os.Environ(), "POD_NAMESPACE=istio-system", "POD_NAME=istiod-testcluster", "REVISION=default"), o.Env...)
	cmd.Dir = o.Dir
	log := filepath.Join(o.Dir, "istiod.log")
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	is := &Istiod{SecureGRPC: secure, Log: log, cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(is.exited) }()
	errExited := errors.New("istiod exited")
	err = wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		select {
		case <-is.exited:
			return false, errExited
		default:
		}
		conn, err := net.DialTimeout("tcp", is.SecureGRPC, time.Second)
		if err != nil {
			return false, nil
		}
		conn.Close()
		return true, nil
	})
	if err == nil {
		return is, nil
	}
	if errors.Is(err, errExited) {
		out, _ := os.ReadFile(log)
		return nil, fmt.Errorf("istiod exited:\n%s", LastLines(string(out), 30))
	}
	is.Stop()
	out, _ := os.ReadFile(log)
	return nil, fmt.Errorf("istiod did not listen on %s within a minute:\n%s", is.SecureGRPC, LastLines(string(out), 30))
}

// Stop ends istiod; it is safe to call twice.
func (is *Istiod) Stop() {
	select {
	case <-is.exited:
		return
	default:
	}
	_ = is.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-is.exited:
	case <-time.After(10 * time.Second):
		_ = is.cmd.Process.Kill()
		<-is.exited
	}
}

// StartIstiod runs istiod with every listener on ip (127.0.0.1 if empty) until
// the test ends.
func (c *Cluster) StartIstiod(t testing.TB, bin, ip string) *Istiod {
	t.Helper()
	is, err := c.RunIstiod(IstiodOptions{Bin: bin, ListenIP: ip, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(is.Stop)
	return is
}

// IstiodDeploymentEnv is the literal environment of the istiod Deployment that
// `istioctl install` created (CLUSTER_ID, autoregistration, ...), for the istiod
// that runs outside in its place. Values from the pod (fieldRef, resourceFieldRef)
// and KUBECONFIG, a path inside the pod, are left out.
func (c *Cluster) IstiodDeploymentEnv(ctx context.Context, ns, name string) ([]string, error) {
	k, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return nil, err
	}
	d, err := k.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	var env []string
	for _, ctr := range d.Spec.Template.Spec.Containers {
		if ctr.Name != "discovery" {
			continue
		}
		for _, e := range ctr.Env {
			if e.ValueFrom == nil && e.Name != "KUBECONFIG" {
				env = append(env, e.Name+"="+e.Value)
			}
		}
	}
	if env == nil {
		return nil, fmt.Errorf("deployment %s/%s has no discovery container with environment", ns, name)
	}
	return env, nil
}
