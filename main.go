// Command vm2mesh takes a virtual machine into an Istio mesh.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/vm2mesh/vm2mesh/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.Run(ctx, os.Args[1:], app.IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}
