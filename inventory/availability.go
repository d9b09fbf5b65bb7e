package inventory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/medfleet/medfleet/coap"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// ErrTransition: the availability lifecycle does not allow the change.
var ErrTransition = errors.New("inventory: availability change not allowed")

// transitions are the availability changes a person may make. A device's
// own reports make two: to in_use when it reports in_use (from available,
// soiled or unknown), and from in_use to soiled when it reports anything
// else (it came off its patient). Decommissioning is DeleteDevice's.
var transitions = map[pb.Availability][]pb.Availability{
	pb.Availability_AVAILABILITY_UNSPECIFIED: {pb.Availability_AVAILABILITY_AVAILABLE, pb.Availability_AVAILABILITY_IN_USE,
		pb.Availability_AVAILABILITY_SOILED, pb.Availability_AVAILABILITY_IN_MAINTENANCE, pb.Availability_AVAILABILITY_OUT_OF_SERVICE},
	pb.Availability_AVAILABILITY_AVAILABLE: {pb.Availability_AVAILABILITY_IN_USE, pb.Availability_AVAILABILITY_SOILED,
		pb.Availability_AVAILABILITY_IN_MAINTENANCE, pb.Availability_AVAILABILITY_OUT_OF_SERVICE},
	pb.Availability_AVAILABILITY_IN_USE: {pb.Availability_AVAILABILITY_SOILED, pb.Availability_AVAILABILITY_OUT_OF_SERVICE},
	pb.Availability_AVAILABILITY_SOILED: {pb.Availability_AVAILABILITY_AVAILABLE, pb.Availability_AVAILABILITY_IN_MAINTENANCE,
		pb.Availability_AVAILABILITY_OUT_OF_SERVICE},
	pb.Availability_AVAILABILITY_IN_MAINTENANCE: {pb.Availability_AVAILABILITY_AVAILABLE, pb.Availability_AVAILABILITY_SOILED,
		pb.Availability_AVAILABILITY_OUT_OF_SERVICE},
	// Back from out of service only through maintenance.
	pb.Availability_AVAILABILITY_OUT_OF_SERVICE: {pb.Availability_AVAILABILITY_IN_MAINTENANCE},
}

// AvailabilityName is the short name of an availability: available,
// in_use, soiled, in_maintenance, out_of_service, decommissioned.
func AvailabilityName(a pb.Availability) string {
	if a == pb.Availability_AVAILABILITY_UNSPECIFIED {
		return "unknown"
	}
	return strings.ToLower(strings.TrimPrefix(a.String(), "AVAILABILITY_"))
}

// AvailabilityObserver hears every change of a device's availability,
// after it was made. It may run with the device locked: it must be quick
// and must not call back into the inventory.
type AvailabilityObserver func(device string, a pb.Availability, at time.Time)

// OnAvailability sets the observer of availability changes; call it before
// Load.
func (inv *Inventory) OnAvailability(fn AvailabilityObserver) { inv.onAvailability = fn }

// SetAvailability changes a device's availability as a person does, in
// the lifecycle's order (ErrTransition otherwise), and makes it durable
// before it returns.
func (inv *Inventory) SetAvailability(ctx context.Context, id string, a pb.Availability) (*pb.Device, error) {
	switch a {
	case pb.Availability_AVAILABILITY_UNSPECIFIED:
		return nil, &FieldError{Field: "availability", Reason: "required"}
	case pb.Availability_AVAILABILITY_DECOMMISSIONED:
		return nil, &FieldError{Field: "availability", Reason: "decommissioned is set by DeleteDevice"}
	}
	e, ok := inv.lookup(id)
	if !ok {
		return nil, fmt.Errorf("%w: devices/%s", ErrNotFound, id)
	}
	e.wmu.Lock() // one durable write at a time for this device
	defer e.wmu.Unlock()
	now := inv.now()
	wctx, cancel := inv.ctx(ctx)
	defer cancel()
	var from pb.Availability
	var st *pb.DeviceStatus
	for attempt := 1; ; attempt++ {
		e.mu.Lock()
		if e.spec.GetDecommissionTime() != nil {
			e.mu.Unlock()
			return nil, fmt.Errorf("%w: devices/%s", ErrDecommissioned, id)
		}
		from = e.status.GetAvailability()
		if from != a && !slices.Contains(transitions[from], a) {
			e.mu.Unlock()
			return nil, fmt.Errorf("%w: devices/%s is %s; from there it can become %s", ErrTransition, id, AvailabilityName(from), names(transitions[from]))
		}
		st = proto.Clone(e.status).(*pb.DeviceStatus)
		st.Availability, st.AvailabilityTime = a, ts(now)
		b, err := proto.Marshal(st)
		put := statusPut{id: id, rev: e.statusRev, msg: b, seq: st.GetLastSeq()}
		e.mu.Unlock()
		if err != nil {
			return nil, err
		}
		written := false
		err = inv.store.putStatuses(wctx, []statusPut{put}, func(b statusBatch) { written = inv.settle(wctx, b, nil) == 0 })
		if err != nil {
			return nil, err
		}
		if written {
			break
		}
		if attempt == 3 {
			return nil, fmt.Errorf("%w: devices/%s: its status keeps changing on another replica", ErrConflict, id)
		}
	}
	e.mu.Lock()
	// Reports may have changed other fields meanwhile: only availability
	// is taken from the copy written.
	e.status.Availability, e.status.AvailabilityTime = a, st.AvailabilityTime
	d := inv.view(id, e, now)
	e.mu.Unlock()
	if from != a && inv.onAvailability != nil {
		inv.onAvailability(id, a, now)
	}
	return d, nil
}

func names(as []pb.Availability) string {
	var out []string
	for _, a := range as {
		out = append(out, AvailabilityName(a))
	}
	return strings.Join(out, ", ")
}

// reportedAvailability is the availability a device's report of its
// clinical state leads to, from its current one; ok is false for no change.
func reportedAvailability(cur pb.Availability, state string) (pb.Availability, bool) {
	inUse := state == coap.StateInUse
	switch {
	case inUse && (cur == pb.Availability_AVAILABILITY_UNSPECIFIED || cur == pb.Availability_AVAILABILITY_AVAILABLE || cur == pb.Availability_AVAILABILITY_SOILED):
		return pb.Availability_AVAILABILITY_IN_USE, true
	case !inUse && cur == pb.Availability_AVAILABILITY_IN_USE:
		return pb.Availability_AVAILABILITY_SOILED, true
	case !inUse && cur == pb.Availability_AVAILABILITY_UNSPECIFIED:
		// First report of a device nobody has marked: take it as ready.
		return pb.Availability_AVAILABILITY_AVAILABLE, true
	}
	return cur, false
}
