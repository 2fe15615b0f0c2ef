package steps

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vm2mesh/vm2mesh/internal/safefile"
	"github.com/vm2mesh/vm2mesh/k8s"
)

// Flags are the settings the command line may give: each one given wins over
// the answers file.
type Flags struct {
	Kubeconfig string // --kubeconfig
	Context    string // --context
}

// Resolve is the one place the settings of a run are decided, for every front
// end (the wizard's form and engine, apply, doctor, remove): the guide's
// defaults, then the answers file (path "" for none, "-" for stdin), then the
// flags. The settings returned are final: the kube context in them is the one
// the run uses (and the one the wizard's picker shows).
//
// The k8s.Options carry the flags only so that errors name them (--context
// rather than kubeContext); their values are the settings'.
func Resolve(ctx context.Context, answers string, stdin io.Reader, f Flags) (Settings, k8s.Options, error) {
	s := Defaults()
	if answers != "" {
		var err error
		if s, err = LoadAnswers(ctx, answers, stdin); err != nil {
			return Settings{}, k8s.Options{}, err
		}
	}
	f.Apply(&s)
	return s, f.Options(), nil
}

// Apply puts the flags given over s: the flags win (Resolve, ResolveFleet).
func (f Flags) Apply(s *Settings) {
	if f.Kubeconfig != "" {
		s.Kubeconfig = f.Kubeconfig
	}
	if f.Context != "" {
		s.KubeContext = f.Context
	}
}

// Options are the flags as k8s.Options, so that errors name them.
func (f Flags) Options() k8s.Options {
	return k8s.Options{Kubeconfig: f.Kubeconfig, Context: f.Context}
}

// AnswersFile is the name the wizard saves the settings it ran with under, in
// the work directory.
const AnswersFile = "answers.yaml"

// AnswersYAML is s as an answers file: only the keys whose values differ from
// the defaults, under a comment header. Settings hold no secret (passwords come
// from files, or are typed at a prompt and kept nowhere), so nothing is elided
// but the defaults.
func (s Settings) AnswersYAML(header string) ([]byte, error) {
	have, err := toMap(s)
	if err != nil {
		return nil, err
	}
	def, err := toMap(Defaults())
	if err != nil {
		return nil, err
	}
	diff := nonDefault(have, def)
	var b bytes.Buffer
	for _, l := range strings.Split(strings.TrimRight(header, "\n"), "\n") {
		b.WriteString(strings.TrimRight("# "+l, " ") + "\n")
	}
	if len(diff) == 0 {
		b.WriteString("{}\n") // every setting is the default
		return b.Bytes(), nil
	}
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(orderedNode(reflect.TypeOf(s), diff)); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}

// SaveAnswers writes s as workDir/answers.yaml (0600, atomically; a different
// earlier file is kept as answers.yaml.bak) and returns its path.
func SaveAnswers(s Settings, workDir string) (string, error) {
	data, err := s.AnswersYAML(answersHeader(workDir))
	if err != nil {
		return "", err
	}
	return saveAnswers(data, workDir)
}

// answersHeader is the comment the wizard's saved answers start with.
func answersHeader(workDir string) string {
	cwd, _ := os.Getwd()
	return fmt.Sprintf(`The settings the vm2mesh wizard ran with (%s), the defaults left out.
Replay them headless: vm2mesh apply -f %[2]s
Undo them:            vm2mesh remove -f %[2]s
Relative paths are relative to %[3]s, where the wizard ran.`,
		time.Now().UTC().Format(time.RFC3339), filepath.Join(workDir, AnswersFile), cwd)
}

func saveAnswers(data []byte, workDir string) (string, error) {
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(workDir, AnswersFile)
	if _, err := safefile.Write(path, data); err != nil {
		return "", fmt.Errorf("saving the settings: %w", err)
	}
	return path, nil
}

// toMap is v as the answers file's YAML keys and values.
func toMap(v any) (map[string]any, error) {
	data, err := yaml.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, yaml.Unmarshal(data, &m)
}

// nonDefault keeps the keys of have whose values differ from def's; nested
// mappings (vm:) key by key.
func nonDefault(have, def map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range have {
		hm, hok := v.(map[string]any)
		dm, dok := def[k].(map[string]any)
		if hok && dok {
			if sub := nonDefault(hm, dm); len(sub) > 0 {
				out[k] = sub
			}
			continue
		}
		if !reflect.DeepEqual(v, def[k]) && !isZero(v, def[k]) {
			out[k] = v
		}
	}
	return out
}

// isZero: an empty value where the default has no key at all.
func isZero(v, def any) bool {
	if def != nil {
		return false
	}
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

// orderedNode is m as a YAML mapping in the order of t's fields (the README's
// order), not the map's.
func orderedNode(t reflect.Type, m map[string]any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	add := func(key string, v any, ft reflect.Type) {
		var val yaml.Node
		if sub, ok := v.(map[string]any); ok && ft != nil && ft.Kind() == reflect.Struct {
			val = *orderedNode(ft, sub)
		} else if err := val.Encode(v); err != nil {
			return
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, &val)
	}
	seen := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if v, ok := m[key]; ok && key != "" && key != "-" {
			seen[key] = true
			add(key, v, f.Type)
		}
	}
	var rest []string // keys of no field (inline structs): after the others
	for k := range m {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		add(k, m[k], nil)
	}
	return n
}

// ExpandHome is a path of the settings as the run reads it (a leading ~ is the
// home directory), for front ends that read the same files (the wizard's
// context picker).
func ExpandHome(p string) string { return expandHome(p) }
