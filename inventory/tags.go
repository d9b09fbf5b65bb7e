package inventory

import (
	"fmt"
	"regexp"
	"strings"
)

// epcPattern is an RFID tag's EPC: 8 to 64 upper-case hex digits (a
// 96-bit SGTIN is 24).
var epcPattern = regexp.MustCompile(`^[0-9A-F]{8,64}$`)

// NormalizeTag upper-cases an EPC and checks it.
func NormalizeTag(epc string) (string, error) {
	epc = strings.ToUpper(strings.TrimSpace(epc))
	if !epcPattern.MatchString(epc) {
		return "", fmt.Errorf("%q is not an EPC: 8 to 64 hex digits", epc)
	}
	return epc, nil
}

// DeviceByTag returns the device that carries a tag.
func (inv *Inventory) DeviceByTag(epc string) (string, bool) {
	inv.tagMu.RLock()
	defer inv.tagMu.RUnlock()
	id, ok := inv.tags[epc]
	return id, ok
}

// retag moves a device's entry in the tag index from old to tag.
func (inv *Inventory) retag(id, old, tag string) {
	if old == tag {
		return
	}
	inv.tagMu.Lock()
	defer inv.tagMu.Unlock()
	if old != "" && inv.tags[old] == id {
		delete(inv.tags, old)
	}
	if tag != "" {
		inv.tags[tag] = id
	}
}

// tagTaken reports which other device carries tag, if any.
func (inv *Inventory) tagTaken(id, tag string) (string, bool) {
	if tag == "" {
		return "", false
	}
	other, ok := inv.DeviceByTag(tag)
	return other, ok && other != id
}
