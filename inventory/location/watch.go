package location

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// Errors of the package, for the server to map.
var (
	ErrNotFound = errors.New("location: not found")
	// ErrSlow: a watcher did not keep up and was dropped.
	ErrSlow = errors.New("location: the watcher fell behind; watch again")
)

// FieldError names the request field that is wrong.
type FieldError struct{ Field, Reason string }

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// watchBuffer is how many events a watcher may fall behind before it is
// dropped: a slow client never slows the engine.
const watchBuffer = 4096

// Watch is a stream of events, filtered by unit and profile.
type Watch struct {
	unit, profile string
	events        chan *pb.LocationEvent
	dropped       chan struct{}
	e             *Engine
}

// Watch subscribes to events of devices in unit (empty: all) of profile
// (empty: all). Close it when done.
func (e *Engine) Watch(unit, profile string) *Watch {
	w := &Watch{unit: unit, profile: profile, events: make(chan *pb.LocationEvent, watchBuffer), dropped: make(chan struct{}), e: e}
	e.mu.Lock()
	e.subs[w] = struct{}{}
	e.mu.Unlock()
	return w
}

// Events delivers the events.
func (w *Watch) Events() <-chan *pb.LocationEvent { return w.events }

// Dropped is closed when the watcher fell behind and receives no more.
func (w *Watch) Dropped() <-chan struct{} { return w.dropped }

// Close unsubscribes.
func (w *Watch) Close() {
	w.e.mu.Lock()
	delete(w.e.subs, w)
	w.e.mu.Unlock()
}

// send queues an event without blocking; a full queue drops the watcher.
// e.mu is held.
func (w *Watch) send(ev *pb.LocationEvent) {
	select {
	case w.events <- ev:
	default:
		delete(w.e.subs, w)
		close(w.dropped)
	}
}

// publish tells watchers about a device. e.mu is held.
func (e *Engine) publish(device string, t *track, kind pb.LocationEvent_Kind, now time.Time) {
	if len(e.subs) == 0 {
		return
	}
	l := e.view(device, t, now)
	ev := &pb.LocationEvent{Kind: kind, Time: timestamppb.New(now), Location: l}
	for w := range e.subs {
		if (w.unit == "" || w.unit == l.GetPlace().GetUnit()) && (w.profile == "" || w.profile == l.GetProfile()) {
			w.send(ev)
		}
	}
}

// String names a watcher, for logs.
func (w *Watch) String() string { return fmt.Sprintf("watch(unit=%q profile=%q)", w.unit, w.profile) }
