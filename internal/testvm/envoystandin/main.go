// Command envoystandin is a STAND-IN for Envoy in the end-to-end test's sidecar
// package (tests only; it is not Envoy and serves no traffic). It does the one
// thing of Envoy's that istiod's autoregistration needs: it reads the bootstrap
// pilot-agent wrote, and keeps an ADS stream open to the agent's XDS proxy with
// the bootstrap's node, so istiod sees the VM's proxy connect and registers its
// WorkloadEntry; when the agent stops, the stream ends as Envoy's would. Like
// Envoy it stays up until it is signalled, as pilot-agent ends when Envoy does.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
)

// defaultBootstrap is where pilot-agent writes it, relative to its cwd (/ on a
// VM); the agent passes it as -c.
const defaultBootstrap = "./etc/istio/proxy/envoy-rev.json"

// clusterType is the first resource Envoy asks for; istiod registers the proxy
// on the stream's first request, whatever it asks.
const clusterType = "type.googleapis.com/envoy.config.cluster.v3.Cluster"

// logLine writes as Envoy does under pilot-agent (Istio's log format: time,
// level, scope), so the agent's log is judged by its level as Envoy's lines
// are: a closed stream is a warning, not the agent's failure.
type logLine struct{}

func (logLine) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	level := "info"
	if strings.HasPrefix(msg, "warning: ") {
		level, msg = "warning", strings.TrimPrefix(msg, "warning: ")
	}
	_, err := fmt.Fprintf(os.Stderr, "%s\t%s\tenvoy-standin\tvm2mesh Envoy stand-in (not Envoy): %s\n",
		time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"), level, msg)
	return len(p), err
}

func main() {
	log.SetFlags(0)
	log.SetOutput(logLine{})
	bootstrap := defaultBootstrap
	for i, a := range os.Args {
		if (a == "-c" || a == "--config-path") && i+1 < len(os.Args) {
			bootstrap = os.Args[i+1]
		}
	}
	log.Printf("started with %q", os.Args[1:])
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	node, xds, err := readBootstrap(bootstrap)
	if err != nil {
		// Stay up as Envoy would with a bootstrap it cannot use, so the agent's
		// own verdict stands; say why in its log.
		log.Printf("warning: no ADS stream: %v", err)
		<-ctx.Done()
		return
	}
	log.Printf("node %s (cluster %s), ADS to the agent's XDS proxy at %s", node.Id, node.Cluster, xds)
	for ctx.Err() == nil {
		err := stream(ctx, node, xds)
		if ctx.Err() != nil {
			break
		}
		log.Printf("warning: ADS stream ended: %v; reconnecting", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	log.Printf("stopping")
}

// readBootstrap reads the node and the xds-grpc cluster's unix socket from
// Envoy's bootstrap JSON, only as far as this stand-in needs it.
func readBootstrap(path string) (*corev3.Node, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	var boot struct {
		Node            json.RawMessage `json:"node"`
		StaticResources struct {
			Clusters []struct {
				Name           string `json:"name"`
				LoadAssignment struct {
					Endpoints []struct {
						LbEndpoints []struct {
							Endpoint struct {
								Address struct {
									Pipe struct {
										Path string `json:"path"`
									} `json:"pipe"`
								} `json:"address"`
							} `json:"endpoint"`
						} `json:"lb_endpoints"`
					} `json:"endpoints"`
				} `json:"load_assignment"`
			} `json:"clusters"`
		} `json:"static_resources"`
	}
	if err := json.Unmarshal(b, &boot); err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	node := &corev3.Node{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(boot.Node, node); err != nil {
		return nil, "", fmt.Errorf("%s: node: %w", path, err)
	}
	for _, c := range boot.StaticResources.Clusters {
		if c.Name != "xds-grpc" {
			continue
		}
		for _, e := range c.LoadAssignment.Endpoints {
			for _, l := range e.LbEndpoints {
				if p := l.Endpoint.Address.Pipe.Path; p != "" {
					abs, err := filepath.Abs(p) // relative to the agent's cwd, which is ours
					return node, abs, err
				}
			}
		}
	}
	return nil, "", errors.New(path + ": no xds-grpc cluster with a unix socket")
}

// stream opens ADS to the agent's XDS proxy, asks for clusters and ACKs what
// comes, until the stream or ctx ends.
func stream(ctx context.Context, node *corev3.Node, socket string) error {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ads, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	if err := ads.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: clusterType}); err != nil {
		return err
	}
	log.Printf("ADS stream open; asked for clusters")
	for {
		resp, err := ads.Recv()
		if err != nil {
			return err
		}
		log.Printf("ADS response: %d %s, version %s", len(resp.Resources), resp.TypeUrl, resp.VersionInfo)
		if err := ads.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resp.TypeUrl, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce}); err != nil {
			return err
		}
	}
}
