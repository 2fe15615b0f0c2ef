package testvm

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

// StartAll starts a VM for each of opts side by side (a fleet's VMs); they stop
// when the test ends.
func StartAll(t testing.TB, opts []Options) []*VM {
	t.Helper()
	Skip(t)
	img, err := BuildImage()
	if err != nil {
		t.Fatal(err)
	}
	vms := make([]*VM, len(opts))
	errs := make([]error, len(opts))
	var wg sync.WaitGroup
	for i, o := range opts {
		dir := vmDir(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			vms[i], errs[i] = start(img, dir, o)
		}()
	}
	wg.Wait()
	for i, vm := range vms {
		if vm != nil {
			t.Cleanup(vm.Stop)
		} else if errs[i] == nil {
			errs[i] = fmt.Errorf("VM %d did not start", i)
		}
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return vms
}

// AgentRPMs are the real-agent istio-sidecar .rpm (BuildAgentPackage's files)
// and the RHEL VM's base provides.
type AgentRPMs struct{ Sidecar, BaseProvides string }

// BuildAgentRPM builds, in dir, the istio-sidecar .rpm of BuildAgentPackage's
// files (the real pilot-agent, Istio's scripts, the stand-in Envoy) and the
// provides-only rpm a RHEL VM's database needs (Options.ProvidesRPM). Its
// payload is not compressed: the agent is large and the package stays local.
func BuildAgentRPM(dir, pilotAgent string) (*AgentRPMs, error) {
	files, postinst, err := agentTree(filepath.Join(dir, "tree"), pilotAgent)
	if err != nil {
		return nil, err
	}
	src := filepath.Join(dir, "rpm-agent-src")
	if err := writeTree(src, files); err != nil {
		return nil, err
	}
	var names []string
	for name := range files {
		names = append(names, "/"+name)
	}
	sort.Strings(names)
	spec := fmt.Sprintf(`%%global debug_package %%{nil}
%%define __os_install_post %%{nil}
%%define _binary_payload w0.ufdio
Name: istio-sidecar
Version: 1.31.1
Release: vm2mesh.realagent
Summary: Istio's sidecar package with the real pilot-agent and a stand-in Envoy (vm2mesh tests)
License: Apache-2.0
BuildArch: x86_64
AutoReqProv: no
Requires: iproute, iptables, sudo, hostname
Requires(post): /bin/bash
%%description
istio-sidecar as Istio lays it out; only Envoy is a stand-in.
%%install
mkdir -p %%{buildroot}
cp -a %s/. %%{buildroot}/
%%post -p /bin/bash
%s
%%files
%s
`, src, postinst, strings.Join(names, "\n"))
	rpm, err := rpmbuild(dir, "istio-sidecar", spec)
	if err != nil {
		return nil, err
	}
	base, err := buildProvidesRPM(dir)
	if err != nil {
		return nil, err
	}
	return &AgentRPMs{Sidecar: rpm, BaseProvides: base}, nil
}
