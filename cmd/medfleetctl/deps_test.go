package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps medfleetctl a thin client of the public API: it
// must link neither etcd nor the control plane's packages.
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
		"github.com/medfleet/medfleet/server",
		"github.com/medfleet/medfleet/inventory",
		"github.com/medfleet/medfleet/access",
		"github.com/medfleet/medfleet/credentials",
		"github.com/medfleet/medfleet/audit\n", // the package with the etcd log; audit/chain is allowed
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if pkg+"\n" == f || strings.HasPrefix(pkg, f) && !strings.HasSuffix(f, "\n") {
				t.Errorf("medfleetctl depends on %s", pkg)
			}
		}
	}
}
