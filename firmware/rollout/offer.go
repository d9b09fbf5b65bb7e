package rollout

import (
	"strings"
	"time"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/firmware"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// offerIndex is what every device is offered, rebuilt from the views.
type offerIndex struct {
	byDevice map[string]*offer
}

// offer is an image offered to one device.
type offer struct {
	target coap.FirmwareTarget // Install unset
	// granted: the rollout lets devices install (it runs, or waits only on
	// windows or patients); the window and the device decide the rest.
	granted bool
	windows windows
}

// offered reports whether a device in state s is offered the image.
func offered(s pb.ExecutionState) bool {
	switch s {
	case pb.ExecutionState_EXECUTION_STATE_NOTIFIED, pb.ExecutionState_EXECUTION_STATE_DOWNLOADING,
		pb.ExecutionState_EXECUTION_STATE_DOWNLOADED, pb.ExecutionState_EXECUTION_STATE_DEFERRED,
		pb.ExecutionState_EXECUTION_STATE_INSTALLING:
		return true
	}
	return false
}

// reindex rebuilds the offers from the views.
func (c *Controller) reindex() {
	type base struct {
		target  coap.FirmwareTarget
		granted bool
		windows windows
	}
	rollouts := map[string]*base{}
	c.rollouts.Range(func(id string, r *pb.Rollout) bool {
		if finished(r) {
			return true
		}
		sha, err := firmware.ParseArtifactName(r.GetArtifact())
		if err != nil {
			return true
		}
		art, ok := c.fw.Artifact(sha)
		if !ok {
			return true
		}
		rollouts[id] = &base{
			target: coap.FirmwareTarget{Version: art.GetVersion(), SHA256: sha, Size: uint64(art.GetSizeBytes()),
				Models: art.GetModels(), Signature: art.GetSignature()},
			granted: r.GetState() == pb.RolloutState_ROLLOUT_STATE_RUNNING || autoPaused(r),
			windows: compileWindows(r.GetWindows()),
		}
		return true
	})
	idx := &offerIndex{byDevice: map[string]*offer{}}
	c.devices.Range(func(k string, d *pb.RolloutDevice) bool {
		id, _, _ := strings.Cut(k, "/")
		b, ok := rollouts[id]
		if !ok || !offered(d.GetState()) {
			return true
		}
		o := &offer{target: b.target, granted: b.granted, windows: b.windows}
		o.target.Trace = d.GetTraceparent()
		idx.byDevice[d.GetDevice()] = o
		return true
	})
	c.offers.Store(idx)
}

// Offers reports whether a device is offered an image: a cheap test
// before Offer, which needs the device's site and clinical state.
func (c *Controller) Offers(device string) bool {
	return c.offers.Load().byDevice[device] != nil
}

// Offer returns the firmware a device should have in its desired state,
// nil for none. Install is granted only while the rollout lets devices
// install, a maintenance window for the device's site is open, and the
// device is not in clinical use; the device itself also waits until it is
// idle.
func (c *Controller) Offer(device, site string, inUse bool) *coap.FirmwareTarget {
	o := c.offers.Load().byDevice[device]
	if o == nil {
		return nil
	}
	t := o.target
	t.Install = o.granted && !inUse && o.windows.open(site, time.Now())
	return &t
}
