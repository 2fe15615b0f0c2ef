// Command prebuild builds the test harness's binaries into the cache before the
// tests start, so that a cold build (minutes) happens once, with a message, and
// not inside a test binary's timeout.
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/vm2mesh/vm2mesh/internal/testcluster"
)

func main() {
	for _, t := range append(testcluster.ControlPlaneTools, testcluster.EndToEndTools...) {
		start := time.Now()
		path, err := t.Path()
		if err != nil {
			fmt.Fprintf(os.Stderr, "prebuild: %v\n", err)
			os.Exit(1)
		}
		fmt.Printf("prebuild: %s %s ready at %s (%s)\n", t.Name, t.Version, path, time.Since(start).Round(time.Second))
	}
}
