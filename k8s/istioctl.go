package k8s

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Istioctl runs the istioctl binary against the same cluster as the Client.
type Istioctl struct {
	Path       string // resolved binary
	Kubeconfig string
	Context    string
}

// FindIstioctl resolves the binary: the given path, else istioctl on PATH.
func FindIstioctl(path string) (string, error) {
	name := path
	if name == "" {
		name = "istioctl"
	}
	p, err := exec.LookPath(name)
	if err != nil {
		if path == "" {
			return "", errors.New("istioctl is not on PATH: install it from Istio's release (istioctl x.y must be within one minor of istiod)")
		}
		return "", fmt.Errorf("istioctl %q cannot be run: %w", path, err)
	}
	return p, nil
}

// Argv is the full command line, as the plan shows it and Run runs it.
func (i Istioctl) Argv(args ...string) []string {
	argv := append([]string{i.Path}, args...)
	if i.Kubeconfig != "" {
		argv = append(argv, "--kubeconfig", i.Kubeconfig)
	}
	if i.Context != "" {
		argv = append(argv, "--context", i.Context)
	}
	return argv
}

// RunError carries a failed command's last output lines, like kind's exec.RunError.
type RunError struct {
	Command []string
	Output  []string // the last lines, oldest first
	Inner   error
}

func (e *RunError) Error() string {
	msg := fmt.Sprintf("command %q failed: %v", strings.Join(e.Command, " "), e.Inner)
	if len(e.Output) > 0 {
		msg += "\n" + strings.Join(e.Output, "\n")
	}
	return msg
}

func (e *RunError) Unwrap() error { return e.Inner }

const keepLines = 20

// Run runs istioctl and hands every output line (stdout and stderr, each read on
// its own) to onLine as it arrives. Cancelling ctx sends SIGTERM, then SIGKILL.
func (i Istioctl) Run(ctx context.Context, onLine func(string), args ...string) error {
	argv := i.Argv(args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return &RunError{Command: argv, Inner: err}
	}
	var mu sync.Mutex
	var tail []string
	var wg sync.WaitGroup
	pump := func(r io.Reader) {
		defer wg.Done()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			tail = append(tail, line)
			if len(tail) > keepLines {
				tail = tail[1:]
			}
			if onLine != nil {
				onLine(line)
			}
			mu.Unlock()
		}
	}
	wg.Add(2)
	go pump(stdout)
	go pump(stderr)
	wg.Wait()
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return &RunError{Command: argv, Output: tail, Inner: err}
	}
	return nil
}

var versionRE = regexp.MustCompile(`\d+\.\d+(\.\d+)?`)

// ClientVersion asks istioctl for its own version (no cluster contact).
func (i Istioctl) ClientVersion(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, i.Path, "version", "--remote=false", "-o", "json")
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s version: %w", i.Path, err)
	}
	var v struct {
		ClientVersion struct {
			Version string `json:"version"`
		} `json:"clientVersion"`
	}
	if json.Unmarshal(out.Bytes(), &v) == nil && v.ClientVersion.Version != "" {
		return v.ClientVersion.Version, nil
	}
	if m := versionRE.FindString(out.String()); m != "" {
		return m, nil
	}
	return "", fmt.Errorf("%s version printed no version", i.Path)
}

// MinorSkew is how many minor versions a and b are apart; ok is false when either
// does not parse (a development build, say).
func MinorSkew(a, b string) (skew int, ok bool) {
	ma, na, oka := majorMinor(a)
	mb, nb, okb := majorMinor(b)
	if !oka || !okb {
		return 0, false
	}
	if ma != mb {
		return 1 << 10, true
	}
	if na > nb {
		return na - nb, true
	}
	return nb - na, true
}

func majorMinor(v string) (int, int, bool) {
	v = strings.TrimPrefix(v, "v")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	return major, minor, err1 == nil && err2 == nil
}
