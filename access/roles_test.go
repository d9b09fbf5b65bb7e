package access

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// TestRoleTable checks the role table of docs/security.md against the
// grants: the document is what operators read to decide who gets which role.
func TestRoleTable(t *testing.T) {
	f, err := os.Open("../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	roles := []pb.Role{pb.Role_ROLE_ADMIN, pb.Role_ROLE_BIOMED, pb.Role_ROLE_FACILITY, pb.Role_ROLE_AUTOMATION}
	seen := map[Permission]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cells := strings.Split(strings.Trim(sc.Text(), "|"), "|")
		if len(cells) != 5 {
			continue
		}
		p := Permission(strings.TrimSpace(cells[0]))
		if !slices.Contains(Permissions, p) {
			continue
		}
		seen[p] = true
		for i, r := range roles {
			want := strings.TrimSpace(cells[i+1]) == "yes"
			if Allows(r, p) != want {
				t.Errorf("docs/security.md says %s %s = %v; the code says %v", RoleName(r), p, want, Allows(r, p))
			}
		}
	}
	for _, p := range Permissions {
		if !seen[p] {
			t.Errorf("docs/security.md's role table has no row for %s", p)
		}
	}
}
