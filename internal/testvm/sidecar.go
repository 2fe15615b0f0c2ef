package testvm

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/vm2mesh/vm2mesh/internal/testcluster"
)

// StandInAgentMarker is in every log line of the stand-in agent, so nobody takes
// its log for Istio's.
const StandInAgentMarker = "vm2mesh-stand-in-agent"

// standInStart is a STAND-IN for Istio's /usr/local/bin/istio-start.sh. It does
// not run pilot-agent or envoy: it checks what the real agent needs before its
// first certificate (the token, root cert, mesh config and cluster.env in place
// and readable by istio-proxy, istiod named in /etc/hosts) and logs the outcome
// in the agent's format, "failed" included, then stays up like an agent.
const standInStart = `#!/bin/sh
# vm2mesh STAND-IN for Istio's istio-start.sh (tests only; not Istio's agent).
log=/var/log/istio/istio.log
mkdir -p /var/log/istio
say() { printf '%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)" "$1" "` + StandInAgentMarker + `" "$2" >> "$log"; }
say info "starting (stand-in for pilot-agent)"
for f in /var/run/secrets/tokens/istio-token /etc/certs/root-cert.pem /etc/istio/config/mesh /var/lib/istio/envoy/cluster.env; do
	if [ ! -s "$f" ]; then say error "failed to start: $f is missing"; exit 1; fi
	if ! su -s /bin/sh -c "test -r $f" istio-proxy; then say error "failed to start: $f is not readable by istio-proxy"; exit 1; fi
done
if ! grep -q 'istiod' /etc/hosts; then say error "failed to resolve istiod: no hosts entry"; exit 1; fi
say info "cache	generated new workload certificate	latency=1ms ttl=23h59m59s"
say info "sds	SDS: PUSH request for node:stand-in resources:1 size:4.0kB resource:default"
# Stay up, under this name, as the agent would.
while :; do sleep 3600; done
`

const serviceUnit = `[Unit]
Description=istio-sidecar: The Istio sidecar (vm2mesh stand-in package)
After=network.target

[Service]
ExecStart=/usr/local/bin/istio-start.sh
Restart=always
RestartSec=10

[Install]
WantedBy=multi-user.target
`

// postInstall is what the real package's post-install does that matters here:
// the istio-proxy user and /etc/istio as a link to /var/lib/istio.
const postInstall = `#!/bin/sh
set -e
getent passwd istio-proxy >/dev/null || useradd --system --home-dir /var/lib/istio --shell /bin/false istio-proxy
mkdir -p /var/lib/istio/envoy /var/lib/istio/config /var/lib/istio/proxy /var/log/istio
if [ ! -e /etc/istio ]; then ln -s /var/lib/istio /etc/istio; fi
chown -R istio-proxy /var/lib/istio /var/log/istio
`

// treeFile is one file of a package's tree.
type treeFile struct {
	data string
	mode os.FileMode
}

var standInFiles = map[string]treeFile{
	"usr/local/bin/istio-start.sh":         {standInStart, 0o755},
	"usr/local/bin/pilot-agent":            {"#!/bin/sh\necho 'vm2mesh stand-in pilot-agent: not Istio'\n", 0o755},
	"usr/local/bin/envoy":                  {"#!/bin/sh\necho 'vm2mesh stand-in envoy: not Envoy'\n", 0o755},
	"lib/systemd/system/istio.service":     {serviceUnit, 0o644},
	"var/lib/istio/envoy/sidecar.env":      {"# vm2mesh stand-in sidecar.env\n", 0o644},
	"usr/share/doc/istio-sidecar/STAND-IN": {"This package is a vm2mesh test stand-in for istio-sidecar.\n", 0o644},
}

// Packages are the stand-in sidecar packages and the RHEL VM's base provides.
type StandInPackages struct {
	Deb, RPM, BaseProvidesRPM string
}

// BuildStandInPackages builds, in dir, a .deb and an .rpm named and laid out like
// Istio's istio-sidecar (see standInStart for what they do instead), and a
// provides-only rpm standing for a RHEL base system.
func BuildStandInPackages(dir string) (*StandInPackages, error) {
	p := &StandInPackages{}
	var err error
	if p.Deb, err = buildDeb(filepath.Join(dir, "standin"), standInFiles, postInstall, debControl); err != nil {
		return nil, err
	}
	if p.RPM, err = buildSidecarRPM(dir); err != nil {
		return nil, err
	}
	if p.BaseProvidesRPM, err = buildProvidesRPM(dir); err != nil {
		return nil, err
	}
	return p, nil
}

func writeTree(root string, files map[string]treeFile) error {
	for name, f := range files {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(f.data), f.mode); err != nil {
			return err
		}
	}
	return nil
}

const debControl = `Package: istio-sidecar
Version: 1.31.1-vm2mesh-standin
Architecture: amd64
Maintainer: vm2mesh tests <tests@vm2mesh.invalid>
Depends: iproute2, iptables, sudo, hostname
Description: vm2mesh STAND-IN for Istio's sidecar package (tests only)
`

// buildDeb packs files, with control and postinst, into dir/istio-sidecar.deb.
func buildDeb(dir string, files map[string]treeFile, postinst, control string) (string, error) {
	root := filepath.Join(dir, "deb-root")
	if err := writeTree(root, files); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(root, "DEBIAN", "control"), []byte(control), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(root, "DEBIAN", "postinst"), []byte(postinst), 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "istio-sidecar.deb")
	if b, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", root, out).CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb: %v: %s", err, b)
	}
	return out, nil
}

func rpmbuild(dir, name, spec string) (string, error) {
	top := filepath.Join(dir, "rpmbuild-"+name)
	if err := os.MkdirAll(filepath.Join(top, "SPECS"), 0o755); err != nil {
		return "", err
	}
	specPath := filepath.Join(top, "SPECS", name+".spec")
	if err := os.WriteFile(specPath, []byte(spec), 0o644); err != nil {
		return "", err
	}
	cmd := exec.Command("rpmbuild", "-bb", "--define", "_topdir "+top, "--define", "_build_id_links none", specPath)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("rpmbuild %s: %v: %s", name, err, testcluster.LastLines(string(b), 20))
	}
	matches, _ := filepath.Glob(filepath.Join(top, "RPMS", "*", name+"-*.rpm"))
	if len(matches) != 1 {
		return "", fmt.Errorf("rpmbuild %s made %v", name, matches)
	}
	return matches[0], nil
}

func buildSidecarRPM(dir string) (string, error) {
	src := filepath.Join(dir, "rpm-src")
	if err := writeTree(src, standInFiles); err != nil {
		return "", err
	}
	var files []string
	for name := range standInFiles {
		files = append(files, "/"+name)
	}
	spec := fmt.Sprintf(`%%global debug_package %%{nil}
%%define __os_install_post %%{nil}
Name: istio-sidecar
Version: 1.31.1
Release: vm2mesh.standin
Summary: vm2mesh STAND-IN for Istio's sidecar package (tests only)
License: Apache-2.0
BuildArch: x86_64
AutoReqProv: no
Requires: iproute, iptables, sudo, hostname
Requires(post): /bin/sh
%%description
A test stand-in laid out like istio-sidecar; its agent only checks its inputs.
%%install
mkdir -p %%{buildroot}
cp -a %s/. %%{buildroot}/
%%post
%s
%%files
%s
`, src, postInstall, strings.Join(files, "\n"))
	return rpmbuild(dir, "istio-sidecar", spec)
}

func buildProvidesRPM(dir string) (string, error) {
	spec := `%global debug_package %{nil}
Name: rhel-base-standin
Version: 9.4
Release: 1
Summary: vm2mesh STAND-IN: provides what a RHEL base system provides (tests only)
License: Apache-2.0
BuildArch: noarch
AutoReqProv: no
Provides: iproute, iptables, sudo, hostname, /bin/sh, /bin/bash
%description
Provides-only package: the sandbox VM's rpm database then knows the base system.
%files
`
	return rpmbuild(dir, "rhel-base-standin", spec)
}
