// Package simfleet places a simulated fleet (agent.Simulator) in a facility:
// the world its tagged devices walk through and its readers watch, built
// from the facility model, and the devices' tags in the registry. medfleetd
// --simulate --facility uses it, and so do the location tests.
package simfleet

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/medfleet/medfleet/agent"
	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/inventory"
	"github.com/medfleet/medfleet/inventory/facility"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// Tag is the RFID tag of a simulated device: an SGTIN-96-looking EPC
// derived from its id, the same at every start.
func Tag(device string) string {
	h := fnv.New64a()
	h.Write([]byte(device))
	return fmt.Sprintf("3034ED%018X", h.Sum64())
}

// tagged reports whether a simulated device of this profile carries a tag:
// the movable equipment does, readers do not.
func tagged(profile string) bool { return profile != coap.ProfileRFIDReader }

// zoneKind guesses from a zone's and its room's names what the simulator
// should use it for.
func zoneKind(z facility.Zone) string {
	name := strings.ToLower(z.Name + " " + z.Place.RoomName)
	switch {
	case strings.Contains(name, "soiled") || strings.Contains(name, "dirty") || strings.Contains(name, "decontam"):
		return agent.ZoneKindSoiled
	case strings.Contains(name, "clean") || strings.Contains(name, "storage") || strings.Contains(name, "equipment"):
		return agent.ZoneKindClean
	case strings.Contains(name, "corridor") || strings.Contains(name, "hall") || strings.Contains(name, "lobby") ||
		strings.Contains(name, "stair") || strings.Contains(name, "lift"):
		return agent.ZoneKindCorridor
	case strings.Contains(name, "bed") || strings.Contains(name, "room") || strings.Contains(name, "bay"):
		return agent.ZoneKindPatient
	}
	return "other"
}

// World is the facility as the simulator needs it, with a tag on every
// simulated device that moves.
func World(f *facility.Facility, devices []agent.Config) *agent.World {
	w := &agent.World{Antennas: f.Antennas(), Tags: map[string]string{}}
	for _, fl := range f.Floors() {
		for _, z := range fl.Zones {
			x, y := z.Centre()
			w.Zones = append(w.Zones, agent.WorldZone{ID: z.ID, Floor: fl.Floor, X: x, Y: y, Kind: zoneKind(z)})
		}
	}
	for _, e := range f.Edges() {
		w.Edges = append(w.Edges, agent.WorldEdge{From: e.From, To: e.To, Metres: e.Metres})
	}
	for _, d := range devices {
		if tagged(d.Profile) {
			w.Tags[d.DeviceID] = Tag(d.DeviceID)
		}
	}
	return w
}

// TagDevices records the simulated devices' tags in the registry, creating
// the devices that do not exist yet, so that readers' sightings locate
// them from their first report.
func TagDevices(ctx context.Context, inv *inventory.Inventory, w *agent.World, devices []agent.Config) error {
	for _, d := range devices {
		tag, ok := w.Tags[d.DeviceID]
		if !ok {
			continue
		}
		cur, err := inv.Get(d.DeviceID)
		switch {
		case errors.Is(err, inventory.ErrNotFound):
			_, err = inv.Create(ctx, d.DeviceID, &pb.Device{Profile: d.Profile, Model: d.Model, Serial: d.Serial, RfidTag: tag}, "")
		case err == nil && cur.GetRfidTag() == "":
			_, err = inv.Update(ctx, d.DeviceID, &pb.Device{RfidTag: tag}, []string{"rfid_tag"}, "")
		}
		if err != nil {
			return fmt.Errorf("tagging %s: %w", d.DeviceID, err)
		}
	}
	return nil
}
