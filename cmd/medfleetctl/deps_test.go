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
	forbidden := []string{ // and everything below them
		"go.etcd.io/",
		"github.com/medfleet/medfleet/server",
		"github.com/medfleet/medfleet/inventory",
		"github.com/medfleet/medfleet/access",
		"github.com/medfleet/medfleet/credentials",
	}
	for _, pkg := range strings.Fields(string(out)) {
		// audit holds the etcd-backed log; audit/chain, the verifier, is allowed.
		if pkg == "github.com/medfleet/medfleet/audit" {
			t.Errorf("medfleetctl depends on %s", pkg)
		}
		// inventory/udi, the UDI parser, is the standard library only.
		for _, f := range forbidden {
			if strings.HasPrefix(pkg, f) && pkg != "github.com/medfleet/medfleet/inventory/udi" {
				t.Errorf("medfleetctl depends on %s", pkg)
			}
		}
	}
}
