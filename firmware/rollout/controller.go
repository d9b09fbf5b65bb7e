package rollout

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/firmware"
	"github.com/medfleet/medfleet/inventory"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// Step advances every unfinished rollout once: it reads what the devices
// reported, moves each device's record, judges the waves, offers the image
// to the next devices and writes what changed. fence is added to every
// transaction.
func (c *Controller) Step(ctx context.Context, fence []clientv3.Cmp) {
	type todo struct {
		id  string
		r   *pb.Rollout
		rev int64
	}
	var work []todo
	c.rollouts.Range(func(id string, r *pb.Rollout) bool {
		if !finished(r) || c.hasOpenDevices(id) {
			_, rev, _ := c.rollouts.Get(id)
			work = append(work, todo{id, r, rev})
		}
		return true
	})
	for _, w := range work {
		if err := c.advance(ctx, w.id, proto.Clone(w.r).(*pb.Rollout), w.rev, fence); err != nil && ctx.Err() == nil {
			c.log.Warn("rollout step failed; retrying at the next tick", "rollout", w.id, "err", err)
		}
	}
	c.reindex()
	c.updateMetrics()
}

// hasOpenDevices reports whether a rollout has device records that are not
// terminal (an aborted rollout's, until they are cancelled).
func (c *Controller) hasOpenDevices(id string) bool {
	for _, d := range c.devicesOf(id) {
		if !terminal(d.GetState()) {
			return true
		}
	}
	return false
}

// advance is one step of one rollout.
func (c *Controller) advance(ctx context.Context, id string, r *pb.Rollout, rev int64, fence []clientv3.Cmp) error {
	now := c.now()
	nowpb := timestamppb.New(now)
	devices := c.devicesOf(id)
	var changed []*pb.RolloutDevice
	put := func(d *pb.RolloutDevice, s pb.ExecutionState, detail string) {
		d.State, d.Detail, d.UpdateTime = s, detail, nowpb
		changed = append(changed, d)
	}
	timeout := r.GetDeviceTimeout().AsDuration()
	aborted := r.GetState() == pb.RolloutState_ROLLOUT_STATE_ABORTED

	// 1. What did the devices do?
	for i, d := range devices {
		if terminal(d.GetState()) || d.GetState() == pb.ExecutionState_EXECUTION_STATE_QUEUED && !aborted {
			continue
		}
		d = proto.Clone(d).(*pb.RolloutDevice)
		devices[i] = d
		if aborted {
			if d.GetState() != pb.ExecutionState_EXECUTION_STATE_INSTALLING {
				put(d, pb.ExecutionState_EXECUTION_STATE_CANCELED, "the rollout was aborted")
				continue
			}
		}
		var (
			s     inventory.Summary
			found = c.inv.Lookup(d.GetDevice(), func(x *inventory.Summary) { s = *x })
		)
		if !found || s.Decommissioned {
			put(d, pb.ExecutionState_EXECUTION_STATE_CANCELED, "the device was decommissioned")
			continue
		}
		next, result, detail := observe(d, &s, r.GetVersion(), now, timeout)
		if next == pb.ExecutionState_EXECUTION_STATE_TIMED_OUT || next == pb.ExecutionState_EXECUTION_STATE_FAILED && result == coap.FWResultLinkLost {
			if d.GetAttempts() <= r.GetMaxRetries() && !aborted {
				// Ask again: the next offer carries a new trace context,
				// and the device's next change counts from now.
				d.Attempts++
				d.NotifyTime, d.Result = nowpb, int32(result)
				put(d, pb.ExecutionState_EXECUTION_STATE_NOTIFIED, fmt.Sprintf("attempt %d: %s", d.GetAttempts(), detail))
				continue
			}
		}
		if next != d.GetState() || int32(result) != d.GetResult() {
			d.Result = int32(result)
			put(d, next, detail)
		}
	}

	// 2. Judge the waves, unless the rollout is over.
	if !finished(r) {
		c.judge(id, r, devices, now, nowpb)
	}

	// 3. Offer the image to the next devices.
	if r.GetState() == pb.RolloutState_ROLLOUT_STATE_RUNNING || autoPaused(r) {
		var notified []*pb.RolloutDevice
		budget := c.budget(r, devices, now)
		for i, d := range devices {
			if budget == 0 {
				break
			}
			if d.GetState() != pb.ExecutionState_EXECUTION_STATE_QUEUED || d.GetWave() > r.GetCurrentWave() {
				continue
			}
			d = proto.Clone(d).(*pb.RolloutDevice)
			devices[i] = d
			var s inventory.Summary
			if !c.inv.Lookup(d.GetDevice(), func(x *inventory.Summary) { s = *x }) || s.Decommissioned {
				put(d, pb.ExecutionState_EXECUTION_STATE_SKIPPED, "decommissioned")
				continue
			}
			if s.Firmware == r.GetVersion() {
				put(d, pb.ExecutionState_EXECUTION_STATE_SKIPPED, "already runs "+r.GetVersion())
				continue
			}
			d.Attempts, d.NotifyTime, d.FromVersion = d.GetAttempts()+1, nowpb, s.Firmware
			put(d, pb.ExecutionState_EXECUTION_STATE_NOTIFIED, "")
			notified = append(notified, d)
			budget--
		}
		if len(notified) > 0 {
			c.traceOffers(ctx, r, notified)
		}
	}

	// 4. Is it over? Is it waiting on windows or on patients?
	if !finished(r) {
		c.settle(r, devices, now, nowpb)
	}
	r.Counts, r.FailuresByResult = countAll(r, devices)

	// 5. Write what changed: the devices first, then the rollout on its
	// revision (a person's pause or abort in between wins; the next tick
	// redoes this step from it).
	if err := c.writeDevices(ctx, id, changed, fence); err != nil {
		return err
	}
	old, _, _ := c.rollouts.Get(id)
	if proto.Equal(old, r) {
		return nil
	}
	r.UpdateTime = nowpb
	val, err := proto.Marshal(r)
	if err != nil {
		return err
	}
	key := prefixRollouts + id
	cmps := append([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)}, fence...)
	resp, err := c.client.Txn(ctx).If(cmps...).Then(clientv3.OpPut(key, string(val))).Commit()
	if err != nil {
		return err
	}
	if resp.Succeeded {
		c.rollouts.Put(id, r, resp.Header.Revision)
	}
	return nil
}

// observe says where a notified device is, from what it reported since it
// was notified.
func observe(d *pb.RolloutDevice, s *inventory.Summary, version string, now time.Time, timeout time.Duration) (pb.ExecutionState, int, string) {
	notified := d.GetNotifyTime().AsTime()
	// Success is the device saying it runs the version since the offer: it
	// registers again after its install, and its reports carry result 1
	// with the version. Either is enough, so that a registration that a
	// crash of the server lost (with its last checkpoint) does not hide one.
	if s.Firmware == version && (s.Registered.After(notified) || s.FirmwareResult == coap.FWResultSuccess && s.FirmwareTime.After(notified)) {
		return pb.ExecutionState_EXECUTION_STATE_SUCCEEDED, coap.FWResultSuccess, "runs " + version
	}
	state, result := d.GetState(), int(d.GetResult())
	if s.FirmwareTime.After(notified) {
		result = int(s.FirmwareResult)
		switch result {
		case coap.FWResultNoStorage, coap.FWResultNoMemory, coap.FWResultIntegrity, coap.FWResultUnsupported,
			coap.FWResultInvalidURI, coap.FWResultFailed, coap.FWResultBadProtocol, coap.FWResultLinkLost:
			return pb.ExecutionState_EXECUTION_STATE_FAILED, result, resultText(result)
		case coap.FWResultCancelled:
			return pb.ExecutionState_EXECUTION_STATE_CANCELED, result, resultText(result)
		case coap.FWResultDeferred:
			state = pb.ExecutionState_EXECUTION_STATE_DEFERRED
		}
		switch s.FirmwareState {
		case coap.FWDownloading:
			state = pb.ExecutionState_EXECUTION_STATE_DOWNLOADING
		case coap.FWDownloaded:
			if result != coap.FWResultDeferred {
				state = pb.ExecutionState_EXECUTION_STATE_DOWNLOADED
			}
		case coap.FWUpdating:
			state = pb.ExecutionState_EXECUTION_STATE_INSTALLING
		}
	}
	// Timeouts: the download from the offer, the install from its start.
	// A device waiting to install (for a window, or to be free of its
	// patient) waits as long as it takes.
	switch state {
	case pb.ExecutionState_EXECUTION_STATE_NOTIFIED, pb.ExecutionState_EXECUTION_STATE_DOWNLOADING:
		if now.Sub(notified) > timeout {
			return pb.ExecutionState_EXECUTION_STATE_TIMED_OUT, result, fmt.Sprintf("no image downloaded within %v", timeout)
		}
	case pb.ExecutionState_EXECUTION_STATE_INSTALLING:
		if now.Sub(s.FirmwareTime) > timeout {
			return pb.ExecutionState_EXECUTION_STATE_TIMED_OUT, result, fmt.Sprintf("not registered with %s within %v of the install", version, timeout)
		}
	}
	return state, result, ""
}

// resultText names an LwM2M update result.
func resultText(result int) string {
	switch result {
	case coap.FWResultNoStorage:
		return "result 2: not enough storage"
	case coap.FWResultNoMemory:
		return "result 3: out of memory"
	case coap.FWResultLinkLost:
		return "result 4: connection lost during the download"
	case coap.FWResultIntegrity:
		return "result 5: integrity check failed (hash, size or signature)"
	case coap.FWResultUnsupported:
		return "result 6: not an image for this model"
	case coap.FWResultInvalidURI:
		return "result 7: the image could not be found"
	case coap.FWResultFailed:
		return "result 8: update failed; the previous image runs again"
	case coap.FWResultBadProtocol:
		return "result 9: unsupported protocol"
	case coap.FWResultCancelled:
		return "result 10: cancelled"
	case coap.FWResultDeferred:
		return "result 11: deferred; the device is busy"
	}
	return fmt.Sprintf("result %d", result)
}

// judge applies the waves' thresholds: an error threshold pauses the
// rollout; a wave that succeeded soaks, then the next wave starts.
func (c *Controller) judge(id string, r *pb.Rollout, devices []*pb.RolloutDevice, now time.Time, nowpb *timestamppb.Timestamp) {
	if err := c.policyAllows(r); err != nil && r.GetPauseReason() != pb.PauseReason_PAUSE_REASON_VERSION_BLOCKED {
		setState(r, nowpb, pb.RolloutState_ROLLOUT_STATE_PAUSED, pb.PauseReason_PAUSE_REASON_VERSION_BLOCKED, err.Error())
		c.log.Warn("rollout paused: its version is no longer allowed", "rollout", id, "err", err)
		return
	}
	perWave := waveCounts(len(r.GetWaves()), devices)
	for i, w := range r.GetWaves() {
		n := perWave[i]
		w.Counts = n
		if w.GetState() != pb.WaveState_WAVE_STATE_RUNNING && w.GetState() != pb.WaveState_WAVE_STATE_SOAKING {
			continue
		}
		failed := n.GetFailed() + n.GetTimedOut()
		finishedN := failed + n.GetSucceeded()
		if failed > w.GetAcknowledgedFailures() && finishedN >= w.GetMinFinished() && float64(failed)*100 > w.GetErrorPercent()*float64(finishedN) {
			w.State = pb.WaveState_WAVE_STATE_FAILED
			if r.GetState() != pb.RolloutState_ROLLOUT_STATE_PAUSED || autoPaused(r) {
				setState(r, nowpb, pb.RolloutState_ROLLOUT_STATE_PAUSED, pb.PauseReason_PAUSE_REASON_ERROR_THRESHOLD,
					fmt.Sprintf("wave %d: %d of %d finished devices failed (threshold %v %% after %d)", i+1, failed, finishedN, w.GetErrorPercent(), w.GetMinFinished()))
				c.log.Warn("rollout paused by its error threshold", "rollout", id, "wave", i+1, "failed", failed, "finished", finishedN)
			}
			continue
		}
		size := n.GetTotal() - n.GetSkipped() - n.GetCanceled()
		if w.GetState() == pb.WaveState_WAVE_STATE_RUNNING && float64(n.GetSucceeded())*100 >= w.GetSuccessPercent()*float64(size) {
			w.State, w.SuccessTime = pb.WaveState_WAVE_STATE_SOAKING, nowpb
			record(r, nowpb, fmt.Sprintf("wave %d reached its success threshold (%d of %d); soaking %v", i+1, n.GetSucceeded(), size, w.GetSoak().AsDuration()))
		}
		if w.GetState() == pb.WaveState_WAVE_STATE_SOAKING && !now.Before(w.GetSuccessTime().AsTime().Add(w.GetSoak().AsDuration())) {
			w.State = pb.WaveState_WAVE_STATE_SUCCEEDED
			next := i + 1
			moving := r.GetState() == pb.RolloutState_ROLLOUT_STATE_RUNNING || autoPaused(r)
			if next < len(r.GetWaves()) && int(r.GetCurrentWave()) == i && moving {
				r.CurrentWave = int32(next)
				r.Waves[next].State, r.Waves[next].StartTime = pb.WaveState_WAVE_STATE_RUNNING, nowpb
				record(r, nowpb, fmt.Sprintf("wave %d succeeded; wave %d started", i+1, next+1))
			} else {
				record(r, nowpb, fmt.Sprintf("wave %d succeeded", i+1))
			}
		}
	}
}

// policyAllows checks the rollout's version against its models' policies
// now: a recall may have blocked it since it started.
func (c *Controller) policyAllows(r *pb.Rollout) error {
	sha, err := firmware.ParseArtifactName(r.GetArtifact())
	if err != nil {
		return err
	}
	art, ok := c.fw.Artifact(sha)
	if !ok {
		return fmt.Errorf("the artifact %s was deleted", r.GetArtifact())
	}
	for _, m := range art.GetModels() {
		if err := c.fw.Allowed(m, art.GetVersion()); err != nil {
			return err
		}
	}
	return nil
}

func autoPaused(r *pb.Rollout) bool {
	return r.GetState() == pb.RolloutState_ROLLOUT_STATE_PAUSED &&
		(r.GetPauseReason() == pb.PauseReason_PAUSE_REASON_WINDOW_CLOSED || r.GetPauseReason() == pb.PauseReason_PAUSE_REASON_CLINICAL_HOLD)
}

// budget is how many devices may be offered the image now: the rate is
// per minute, measured over the last minute's offers; an exponential rate
// grows with every increase_every devices that succeeded.
func (c *Controller) budget(r *pb.Rollout, devices []*pb.RolloutDevice, now time.Time) int {
	rate := r.GetRate()
	perMinute := rate.GetPerMinute()
	if perMinute == 0 {
		return math.MaxInt
	}
	if f := rate.GetIncrementFactor(); f > 0 {
		succeeded := 0
		for _, d := range devices {
			if d.GetState() == pb.ExecutionState_EXECUTION_STATE_SUCCEEDED {
				succeeded++
			}
		}
		perMinute *= math.Pow(f, float64(succeeded/int(rate.GetIncreaseEvery())))
		if m := rate.GetMaxPerMinute(); m > 0 {
			perMinute = min(perMinute, m)
		}
	}
	recent := 0
	for _, d := range devices {
		if d.GetNotifyTime() != nil && now.Sub(d.GetNotifyTime().AsTime()) < time.Minute {
			recent++
		}
	}
	return max(0, int(math.Max(1, math.Floor(perMinute)))-recent)
}

// settle completes a rollout whose devices all finished, and says why a
// running one is not moving: every device left waits for a closed window,
// or is in clinical use.
func (c *Controller) settle(r *pb.Rollout, devices []*pb.RolloutDevice, now time.Time, nowpb *timestamppb.Timestamp) {
	last := len(r.GetWaves()) - 1
	allStarted := int(r.GetCurrentWave()) == last && r.GetWaves()[last].GetState() != pb.WaveState_WAVE_STATE_PENDING
	open, waiting, windowShut, inUse := 0, 0, 0, 0
	ws := compileWindows(r.GetWindows())
	for _, d := range devices {
		if terminal(d.GetState()) {
			continue
		}
		open++
		if d.GetState() != pb.ExecutionState_EXECUTION_STATE_DOWNLOADED && d.GetState() != pb.ExecutionState_EXECUTION_STATE_DEFERRED {
			continue
		}
		waiting++
		var s inventory.Summary
		c.inv.Lookup(d.GetDevice(), func(x *inventory.Summary) { s = *x })
		switch {
		case !ws.open(s.Site, now):
			windowShut++
		case s.InUse:
			inUse++
		}
	}
	switch {
	case open == 0 && allStarted && (r.GetState() == pb.RolloutState_ROLLOUT_STATE_RUNNING || autoPaused(r)):
		r.EndTime = nowpb
		setState(r, nowpb, pb.RolloutState_ROLLOUT_STATE_COMPLETED, 0, "every device finished")
	case r.GetState() != pb.RolloutState_ROLLOUT_STATE_RUNNING && !autoPaused(r):
		// Held by a person, a threshold or a recall: only they lift it.
	case open > 0 && open == waiting && windowShut == waiting:
		if r.GetPauseReason() != pb.PauseReason_PAUSE_REASON_WINDOW_CLOSED {
			setState(r, nowpb, pb.RolloutState_ROLLOUT_STATE_PAUSED, pb.PauseReason_PAUSE_REASON_WINDOW_CLOSED,
				fmt.Sprintf("%d devices downloaded the image and wait for a maintenance window", waiting))
		}
	case open > 0 && open == waiting && windowShut+inUse == waiting:
		if r.GetPauseReason() != pb.PauseReason_PAUSE_REASON_CLINICAL_HOLD {
			setState(r, nowpb, pb.RolloutState_ROLLOUT_STATE_PAUSED, pb.PauseReason_PAUSE_REASON_CLINICAL_HOLD,
				fmt.Sprintf("%d devices downloaded the image and are in clinical use", inUse))
		}
	case autoPaused(r):
		setState(r, nowpb, pb.RolloutState_ROLLOUT_STATE_RUNNING, 0, "devices can install again")
	}
}

// waveCounts counts devices by state per wave.
func waveCounts(waves int, devices []*pb.RolloutDevice) []*pb.ExecutionCounts {
	out := make([]*pb.ExecutionCounts, waves)
	for i := range out {
		out[i] = &pb.ExecutionCounts{}
	}
	for _, d := range devices {
		if w := int(d.GetWave()); w < waves {
			add(out[w], d.GetState())
		}
	}
	return out
}

// countAll counts a rollout's devices by state, and its failures by result.
func countAll(r *pb.Rollout, devices []*pb.RolloutDevice) (*pb.ExecutionCounts, map[int32]int32) {
	n := &pb.ExecutionCounts{}
	var failures map[int32]int32
	for _, d := range devices {
		add(n, d.GetState())
		if d.GetState() == pb.ExecutionState_EXECUTION_STATE_FAILED {
			if failures == nil {
				failures = map[int32]int32{}
			}
			failures[d.GetResult()]++
		}
	}
	for i, w := range waveCounts(len(r.GetWaves()), devices) {
		r.Waves[i].Counts = w
	}
	return n, failures
}

func add(n *pb.ExecutionCounts, s pb.ExecutionState) {
	n.Total++
	switch s {
	case pb.ExecutionState_EXECUTION_STATE_QUEUED:
		n.Queued++
	case pb.ExecutionState_EXECUTION_STATE_NOTIFIED:
		n.Notified++
	case pb.ExecutionState_EXECUTION_STATE_DOWNLOADING:
		n.Downloading++
	case pb.ExecutionState_EXECUTION_STATE_DOWNLOADED:
		n.Downloaded++
	case pb.ExecutionState_EXECUTION_STATE_DEFERRED:
		n.Deferred++
	case pb.ExecutionState_EXECUTION_STATE_INSTALLING:
		n.Installing++
	case pb.ExecutionState_EXECUTION_STATE_SUCCEEDED:
		n.Succeeded++
	case pb.ExecutionState_EXECUTION_STATE_FAILED:
		n.Failed++
	case pb.ExecutionState_EXECUTION_STATE_TIMED_OUT:
		n.TimedOut++
	case pb.ExecutionState_EXECUTION_STATE_CANCELED:
		n.Canceled++
	case pb.ExecutionState_EXECUTION_STATE_SKIPPED:
		n.Skipped++
	}
}

// writeDevices writes changed device records, maxTxnOps to a transaction,
// each with the fence.
func (c *Controller) writeDevices(ctx context.Context, id string, changed []*pb.RolloutDevice, fence []clientv3.Cmp) error {
	for chunk := range slices.Chunk(changed, maxTxnOps) {
		ops := make([]clientv3.Op, 0, len(chunk))
		for _, d := range chunk {
			val, err := proto.Marshal(d)
			if err != nil {
				return err
			}
			ops = append(ops, clientv3.OpPut(prefixDevices+id+"/"+d.GetDevice(), string(val)))
		}
		resp, err := c.client.Txn(ctx).If(fence...).Then(ops...).Commit()
		if err != nil {
			return err
		}
		if !resp.Succeeded {
			return fmt.Errorf("rollout: no longer the leader")
		}
		for _, d := range chunk {
			c.devices.Put(id+"/"+d.GetDevice(), d, resp.Header.Revision)
		}
	}
	return nil
}

// traceOffers records the offer of the image to devices as a span in the
// rollout's trace, and gives each device that span's context: its
// downloads and reports join the trace.
func (c *Controller) traceOffers(ctx context.Context, r *pb.Rollout, devices []*pb.RolloutDevice) {
	parent := trace.ContextWithSpanContext(ctx, trace.SpanContext{})
	if tp := r.GetTraceparent(); tp != "" {
		parent = c.prop.Extract(parent, propagation.MapCarrier{"traceparent": tp})
	}
	_, span := c.tracer.Start(parent, "rollout.offer", trace.WithAttributes(
		attribute.String("medfleet.rollout", r.GetName()), attribute.String("medfleet.firmware.version", r.GetVersion()),
		attribute.Int("medfleet.rollout.wave", int(r.GetCurrentWave())+1), attribute.Int("medfleet.rollout.devices", len(devices))))
	defer span.End()
	carrier := propagation.MapCarrier{}
	c.prop.Inject(trace.ContextWithSpan(ctx, span), carrier)
	for _, d := range devices {
		d.Traceparent = carrier["traceparent"]
	}
}
