package vmconfig

import (
	"os"
	"path/filepath"

	"github.com/vm2mesh/vm2mesh/internal/safefile"
)

// FileNames are the five files in the order the VM side installs them.
var FileNames = []string{"cluster.env", "mesh.yaml", "root-cert.pem", "istio-token", "hosts"}

// ByName maps each file name to its content.
func (f *Files) ByName() map[string][]byte {
	return map[string][]byte{
		"cluster.env":   f.ClusterEnv,
		"mesh.yaml":     f.MeshYAML,
		"root-cert.pem": f.RootCert,
		"istio-token":   f.Token,
		"hosts":         f.Hosts,
	}
}

// Write puts the files into dir, each 0600 (the token is a credential and the rest
// are no one else's business; istioctl writes 0744), each atomically, keeping the
// previous version of a changed file (but the token) as NAME.bak.
func (f *Files) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for name, data := range f.ByName() {
		path := filepath.Join(dir, name)
		if name == "istio-token" {
			// A replaced token is expired or about to be: keeping it helps no one.
			if err := safefile.Replace(path, data); err != nil {
				return err
			}
			continue
		}
		if _, err := safefile.Write(path, data); err != nil {
			return err
		}
	}
	return nil
}
