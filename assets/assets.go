// Package assets holds every manifest vm2mesh applies and every script it runs on
// a VM, embedded, as text/templates.
package assets

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"text/template"
)

//go:embed manifests/*.yaml
var files embed.FS

var templates = template.Must(template.New("").Option("missingkey=error").Funcs(template.FuncMap{
	// q renders any string as a YAML scalar that survives every value (JSON is YAML).
	"q": func(s string) string {
		b, _ := json.Marshal(s)
		return string(b)
	},
}).ParseFS(files, "manifests/*.yaml"))

// Render executes the named template (a file name under manifests/) with data.
func Render(name string, data any) ([]byte, error) {
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, name, data); err != nil {
		return nil, fmt.Errorf("rendering %s: %w", name, err)
	}
	return buf.Bytes(), nil
}
