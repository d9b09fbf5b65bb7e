package maintenance

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// Compliance computes, at now, the on-time completion of scheduled
// maintenance (preventive orders) over [start, end):
//
//   - an order counts in the period its due window ends in;
//   - on time: completed no later than the end of its window; late:
//     completed after it; missed: not completed, and its window has ended
//     (an order whose window is still open is pending and not counted);
//   - cancelled orders do not count (each cancellation is audited, with
//     its reason);
//   - on_time_percent = on_time / (on_time + late + missed), 100 when
//     nothing counted.
//
// Figures are given overall, for high-risk and for life-support equipment.
func Compliance(orders []*pb.WorkOrder, start, end, now time.Time) *pb.ComplianceReport {
	r := &pb.ComplianceReport{StartTime: timestamppb.New(start), EndTime: timestamppb.New(end),
		Overall: &pb.ComplianceFigures{}, HighRisk: &pb.ComplianceFigures{}, LifeSupport: &pb.ComplianceFigures{}}
	for _, o := range orders {
		windowEnd := o.GetWindowEndTime().AsTime()
		if o.GetType() != pb.WorkOrderType_WORK_ORDER_TYPE_PREVENTIVE || o.GetState() == pb.WorkOrderState_WORK_ORDER_STATE_CANCELLED ||
			windowEnd.Before(start) || !windowEnd.Before(end) {
			continue
		}
		var count func(*pb.ComplianceFigures)
		switch {
		case o.GetState() == pb.WorkOrderState_WORK_ORDER_STATE_COMPLETED && o.GetCompleteTime().AsTime().After(windowEnd):
			count = func(f *pb.ComplianceFigures) { f.Late++ }
			r.Late = append(r.Late, o)
		case o.GetState() == pb.WorkOrderState_WORK_ORDER_STATE_COMPLETED:
			count = func(f *pb.ComplianceFigures) { f.OnTime++ }
		case now.After(windowEnd):
			count = func(f *pb.ComplianceFigures) { f.Missed++ }
			r.Missed = append(r.Missed, o)
		default:
			continue // pending: its window is still open
		}
		count(r.Overall)
		if o.GetHighRisk() {
			count(r.HighRisk)
		}
		if o.GetLifeSupport() {
			count(r.LifeSupport)
		}
	}
	for _, f := range []*pb.ComplianceFigures{r.Overall, r.HighRisk, r.LifeSupport} {
		f.Scheduled = f.OnTime + f.Late + f.Missed
		f.OnTimePercent = 100
		if f.Scheduled > 0 {
			f.OnTimePercent = 100 * float64(f.OnTime) / float64(f.Scheduled)
		}
	}
	return r
}
