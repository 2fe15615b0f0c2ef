package testcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// FakeNode is the one node kwok runs: its pods become Running and Ready without
// a kubelet or containers.
const FakeNode = "kwok-node-0"

// kwokStages are the Stage objects kwok v0.8.0 ships under kustomize/stage (the
// "fast" set): a node that initializes and keeps its lease, pods that go Ready at
// once, complete, and go away when deleted.
var kwokStages = []string{
	"kustomize/stage/node/fast/node-initialize.yaml",
	"kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
	"kustomize/stage/pod/fast/pod-ready.yaml",
	"kustomize/stage/pod/fast/pod-complete.yaml",
	"kustomize/stage/pod/fast/pod-delete.yaml",
}

// StartWorkloads adds what makes Deployments Available, as `istioctl install`
// waits for: kube-controller-manager, kube-scheduler and kwok with one fake node.
// None of them serves anything (secure ports off); they stop with the cluster.
func (c *Cluster) StartWorkloads(ctx context.Context) error {
	kcm, err := KubeControllerManager.Path()
	if err != nil {
		return err
	}
	sched, err := KubeScheduler.Path()
	if err != nil {
		return err
	}
	kwok, err := Kwok.Path()
	if err != nil {
		return err
	}
	stages, err := writeKwokStages(c.Dir)
	if err != nil {
		return err
	}
	if err := c.spawn(kcm, "kube-controller-manager.log",
		"--kubeconfig="+c.Kubeconfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--use-service-account-credentials=false",
		"--root-ca-file="+c.caFile,
		"--v=0",
	); err != nil {
		return err
	}
	if err := c.spawn(sched, "kube-scheduler.log",
		"--kubeconfig="+c.Kubeconfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--v=0",
	); err != nil {
		return err
	}
	if err := c.spawn(kwok, "kwok.log",
		"--kubeconfig="+c.Kubeconfig,
		"--config="+stages,
		"--manage-all-nodes=true",
		"--node-lease-duration-seconds=40",
		"--cidr=10.244.0.0/16",
		"--node-ip=10.0.0.10",
	); err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        FakeNode,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels:      map[string]string{"type": "kwok", "kubernetes.io/hostname": FakeNode, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
		},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("110")},
			Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("110")},
		},
	}
	if _, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating the fake node: %w", err)
	}
	ready := func(ctx context.Context) (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, FakeNode, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	}
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, ready); err == nil {
		return nil
	} else if ctx.Err() != nil {
		return ctx.Err()
	}
	log, _ := os.ReadFile(filepath.Join(c.Dir, "kwok.log"))
	return fmt.Errorf("kwok did not make %s Ready within a minute; its log ends:\n%s", FakeNode, LastLines(string(log), 20))
}

// writeKwokStages copies kwok's own Stage files, from the module the harness
// built kwok from, into one config file.
func writeKwokStages(dir string) (string, error) {
	modDir, err := ModuleDir(Kwok.Module, "sigs.k8s.io/kwok")
	if err != nil {
		return "", err
	}
	var docs []string
	for _, f := range kwokStages {
		b, err := os.ReadFile(filepath.Join(modDir, f))
		if err != nil {
			return "", err
		}
		docs = append(docs, string(b))
	}
	path := filepath.Join(dir, "kwok-stages.yaml")
	return path, os.WriteFile(path, []byte(strings.Join(docs, "\n---\n")), 0o644)
}
