package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the agent binary small and easy to audit: it must
// link neither etcd, nor gRPC, nor the OpenTelemetry SDK, nor the control
// plane's packages.
func TestDependencies(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list dependencies with")
	}
	out, err := exec.CommandContext(t.Context(), gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{
		"go.etcd.io/",
		"google.golang.org/grpc",
		"go.opentelemetry.io/otel/sdk",
		"github.com/medfleet/medfleet/server",
		"github.com/medfleet/medfleet/inventory",
		"github.com/medfleet/medfleet/proto",
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(pkg, f) {
				t.Errorf("medfleet-agent depends on %s", pkg)
			}
		}
	}
}
