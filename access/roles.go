package access

import (
	"strings"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// Permission is what one RPC needs. The server's table names one per RPC;
// a role is a fixed set of them.
type Permission string

// Permissions. Keep docs/security.md's role table in step.
const (
	// Authenticated is given to every caller: who am I, health, reflection.
	Authenticated Permission = "authenticated"

	DevicesRead  Permission = "devices.read"  // get, list, locate
	DevicesWrite Permission = "devices.write" // create, update, decommission
	// DevicesStatus sets what staff know of a device: soiled, clean,
	// available, out of service.
	DevicesStatus Permission = "devices.status"

	CredentialsRead  Permission = "credentials.read"
	CredentialsWrite Permission = "credentials.write" // enrol, issue, rotate, revoke

	MaintenanceRead  Permission = "maintenance.read"
	MaintenanceWrite Permission = "maintenance.write"
	FirmwareRead     Permission = "firmware.read"
	FirmwareWrite    Permission = "firmware.write" // upload, block versions
	RolloutsRead     Permission = "rollouts.read"
	RolloutsWrite    Permission = "rollouts.write" // create, pause, resume, abort

	AuditRead  Permission = "audit.read"
	UsersAdmin Permission = "users.admin" // users, tokens, user certificates
)

// Permissions lists every permission, for tests and docs.
var Permissions = []Permission{
	Authenticated, DevicesRead, DevicesWrite, DevicesStatus, CredentialsRead, CredentialsWrite,
	MaintenanceRead, MaintenanceWrite, FirmwareRead, FirmwareWrite, RolloutsRead, RolloutsWrite,
	AuditRead, UsersAdmin,
}

var grants = map[pb.Role][]Permission{
	pb.Role_ROLE_ADMIN: Permissions,
	pb.Role_ROLE_BIOMED: {
		Authenticated, DevicesRead, DevicesWrite, DevicesStatus, CredentialsRead, CredentialsWrite,
		MaintenanceRead, MaintenanceWrite, FirmwareRead, FirmwareWrite, RolloutsRead, RolloutsWrite, AuditRead,
	},
	pb.Role_ROLE_FACILITY:   {Authenticated, DevicesRead, DevicesStatus},
	pb.Role_ROLE_AUTOMATION: {Authenticated, DevicesRead, FirmwareRead, FirmwareWrite, RolloutsRead, RolloutsWrite},
}

// Allows reports whether role grants p.
func Allows(role pb.Role, p Permission) bool {
	for _, g := range grants[role] {
		if g == p {
			return true
		}
	}
	return false
}

// RoleName is the short name of a role: admin, biomed, facility,
// automation.
func RoleName(r pb.Role) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "ROLE_"))
}

// ParseRole reads a short role name.
func ParseRole(s string) (pb.Role, bool) {
	r, ok := pb.Role_value["ROLE_"+strings.ToUpper(s)]
	if !ok || r == 0 {
		return 0, false
	}
	return pb.Role(r), true
}
