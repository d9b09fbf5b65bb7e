package inventory

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
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

// assetKey is the index key of an asset tag: asset tags are compared
// without regard to case.
func assetKey(tag string) string { return strings.ToUpper(tag) }

// DeviceByTag returns the device that carries an RFID tag.
func (inv *Inventory) DeviceByTag(epc string) (string, bool) { return inv.tags.get(epc) }

// DeviceByAssetTag returns the device with an asset tag, in any case.
func (inv *Inventory) DeviceByAssetTag(tag string) (string, bool) {
	return inv.assets.get(assetKey(tag))
}

// uniqueIndex maps an attribute no two live devices may share (an RFID
// tag's EPC, an asset tag) to the device that has it.
type uniqueIndex struct {
	mu sync.RWMutex
	m  map[string]string
}

func (x *uniqueIndex) get(key string) (string, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	id, ok := x.m[key]
	return id, ok
}

// move moves device id's entry from key old to key new.
func (x *uniqueIndex) move(id, old, new string) {
	if old == new {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if old != "" && x.m[old] == id {
		delete(x.m, old)
	}
	if new != "" {
		x.m[new] = id
	}
}

// taken reports which other device has key, if any.
func (x *uniqueIndex) taken(id, key string) (string, bool) {
	if key == "" {
		return "", false
	}
	other, ok := x.get(key)
	return other, ok && other != id
}

func (x *uniqueIndex) reset(m map[string]string) {
	x.mu.Lock()
	x.m = m
	x.mu.Unlock()
}
