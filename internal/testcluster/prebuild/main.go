// Command prebuild builds the test harness's binaries into the cache before the
// tests start, so that a cold build (minutes) happens once, with a message, and
// not inside a test binary's timeout. With -path NAME it builds that one tool
// if needed and prints only its path (hack/test runs goreleaser so).
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/vm2mesh/vm2mesh/internal/testcluster"
)

func main() {
	only := flag.String("path", "", "build only this tool (by name) and print its path")
	flag.Parse()
	if *only != "" {
		var names []string
		for _, t := range testcluster.AllTools() {
			if t.Name != *only {
				names = append(names, t.Name)
				continue
			}
			path, err := t.Path()
			if err != nil {
				fmt.Fprintf(os.Stderr, "prebuild: %v\n", err)
				os.Exit(1)
			}
			fmt.Println(path)
			return
		}
		fmt.Fprintf(os.Stderr, "prebuild: no tool %q; the tools are %v\n", *only, names)
		os.Exit(2)
	}
	for _, t := range testcluster.AllTools() {
		start := time.Now()
		path, err := t.Path()
		if err != nil {
			fmt.Fprintf(os.Stderr, "prebuild: %v\n", err)
			os.Exit(1)
		}
		fmt.Printf("prebuild: %s %s ready at %s (%s)\n", t.Name, t.Version, path, time.Since(start).Round(time.Second))
	}
}
