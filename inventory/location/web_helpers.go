package location

import (
	"maps"
	"slices"
)

// InZone returns the ids of the devices located in zone, in id order: what
// the locate page's floor view draws in a zone. Stale locations count; the
// caller asks Locate for each device's freshness and availability.
func (e *Engine) InZone(zone string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Sorted(maps.Keys(e.byZone[zone]))
}
