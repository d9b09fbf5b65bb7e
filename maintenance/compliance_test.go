package maintenance

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// January 2026, reported on 10 February.
var (
	janStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	janEnd   = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	reportAt = time.Date(2026, 2, 10, 9, 0, 0, 0, time.UTC)
)

func jan(d int) time.Time { return janStart.AddDate(0, 0, d-1).Add(12 * time.Hour) }

type risk int

const (
	normal risk = iota
	highRisk
	lifeSupport
)

// order is a preventive work order whose window ends at windowEnd; a
// non-zero completed completes it then.
func order(name string, r risk, windowEnd, completed time.Time) *pb.WorkOrder {
	o := &pb.WorkOrder{Name: "workOrders/" + name, Type: pb.WorkOrderType_WORK_ORDER_TYPE_PREVENTIVE,
		State: pb.WorkOrderState_WORK_ORDER_STATE_ASSIGNED, DueTime: timestamppb.New(windowEnd.Add(-30 * day)),
		WindowEndTime: timestamppb.New(windowEnd), HighRisk: r >= highRisk, LifeSupport: r == lifeSupport}
	if !completed.IsZero() {
		o.State, o.CompleteTime = pb.WorkOrderState_WORK_ORDER_STATE_COMPLETED, timestamppb.New(completed)
	}
	return o
}

func with(o *pb.WorkOrder, f func(*pb.WorkOrder)) *pb.WorkOrder { f(o); return o }

func figures(onTime, late, missed int32, percent float64) *pb.ComplianceFigures {
	return &pb.ComplianceFigures{Scheduled: onTime + late + missed, OnTime: onTime, Late: late, Missed: missed, OnTimePercent: percent}
}

var none = figures(0, 0, 0, 100)

func TestCompliance(t *testing.T) {
	var zero time.Time
	tests := []struct {
		name                 string
		orders               []*pb.WorkOrder
		now                  time.Time // zero: reportAt
		overall, high, life  *pb.ComplianceFigures
		wantLate, wantMissed []string
	}{
		{name: "nothing scheduled", overall: none, high: none, life: none},
		{name: "on time", orders: []*pb.WorkOrder{order("1", normal, jan(10), jan(9))},
			overall: figures(1, 0, 0, 100), high: none, life: none},
		{name: "on time at the end of the window", orders: []*pb.WorkOrder{order("1", highRisk, jan(10), jan(10))},
			overall: figures(1, 0, 0, 100), high: figures(1, 0, 0, 100), life: none},
		{name: "late", orders: []*pb.WorkOrder{order("1", normal, jan(10), jan(10).Add(time.Second))},
			overall: figures(0, 1, 0, 0), high: none, life: none, wantLate: []string{"workOrders/1"}},
		{name: "late, completed after the period", orders: []*pb.WorkOrder{order("1", normal, jan(25), jan(36))},
			overall: figures(0, 1, 0, 0), high: none, life: none, wantLate: []string{"workOrders/1"}},
		{name: "missed", orders: []*pb.WorkOrder{order("1", lifeSupport, jan(15), zero)},
			overall: figures(0, 0, 1, 0), high: figures(0, 0, 1, 0), life: figures(0, 0, 1, 0), wantMissed: []string{"workOrders/1"}},
		{name: "missed, still open", orders: []*pb.WorkOrder{
			with(order("1", normal, jan(15), zero), func(o *pb.WorkOrder) { o.State = pb.WorkOrderState_WORK_ORDER_STATE_OPEN })},
			overall: figures(0, 0, 1, 0), high: none, life: none, wantMissed: []string{"workOrders/1"}},
		{name: "pending: window still open", orders: []*pb.WorkOrder{order("1", highRisk, jan(31), zero)}, now: jan(20),
			overall: none, high: none, life: none},
		{name: "pending until the window ends", orders: []*pb.WorkOrder{order("1", highRisk, jan(20), zero)}, now: jan(20),
			overall: none, high: none, life: none},
		{name: "completed before the report, window still open", orders: []*pb.WorkOrder{order("1", normal, jan(31), jan(15))},
			now: jan(20), overall: figures(1, 0, 0, 100), high: none, life: none},
		{name: "cancelled", orders: []*pb.WorkOrder{
			with(order("1", highRisk, jan(15), zero), func(o *pb.WorkOrder) {
				o.State, o.CancelReason = pb.WorkOrderState_WORK_ORDER_STATE_CANCELLED, "device retired"
			})},
			overall: none, high: none, life: none},
		{name: "not preventive", orders: []*pb.WorkOrder{
			with(order("1", highRisk, jan(15), zero), func(o *pb.WorkOrder) { o.Type = pb.WorkOrderType_WORK_ORDER_TYPE_REPAIR }),
			with(order("2", highRisk, jan(15), zero), func(o *pb.WorkOrder) { o.Type = pb.WorkOrderType_WORK_ORDER_TYPE_ACCEPTANCE }),
		}, overall: none, high: none, life: none},
		{name: "outside the period", orders: []*pb.WorkOrder{
			order("dec", normal, janStart.Add(-time.Second), zero),
			order("feb", normal, janEnd, zero),
			// Done in January, but its window ends in February: it counts then.
			order("early", normal, jan(33), jan(20)),
		}, overall: none, high: none, life: none},
		{name: "the start is in the period", orders: []*pb.WorkOrder{order("1", normal, janStart, zero)},
			overall: figures(0, 0, 1, 0), high: none, life: none, wantMissed: []string{"workOrders/1"}},
		{name: "risk subsets", orders: []*pb.WorkOrder{
			order("ls-on-time", lifeSupport, jan(5), jan(4)),
			order("ls-late", lifeSupport, jan(6), jan(8)),
			order("hr-on-time", highRisk, jan(7), jan(1)),
			order("hr-missed", highRisk, jan(8), zero),
			order("n1", normal, jan(9), jan(9)),
			order("n2", normal, jan(10), jan(2)),
			order("n3", normal, jan(11), jan(3)),
			order("n-missed", normal, jan(12), zero),
		},
			overall: figures(5, 1, 2, 62.5), high: figures(2, 1, 1, 50), life: figures(1, 1, 0, 50),
			wantLate: []string{"workOrders/ls-late"}, wantMissed: []string{"workOrders/hr-missed", "workOrders/n-missed"}},
		{name: "two of three", orders: []*pb.WorkOrder{
			order("1", normal, jan(5), jan(4)), order("2", normal, jan(6), jan(5)), order("3", normal, jan(7), zero),
		}, overall: figures(2, 0, 1, 200.0/3), high: none, life: none, wantMissed: []string{"workOrders/3"}},
		{name: "seven of eight", orders: []*pb.WorkOrder{
			order("1", lifeSupport, jan(1), jan(1)), order("2", lifeSupport, jan(2), jan(1)), order("3", lifeSupport, jan(3), jan(1)),
			order("4", lifeSupport, jan(4), jan(1)), order("5", lifeSupport, jan(5), jan(1)), order("6", lifeSupport, jan(6), jan(1)),
			order("7", lifeSupport, jan(7), jan(1)), order("8", lifeSupport, jan(8), jan(9)),
		}, overall: figures(7, 1, 0, 87.5), high: figures(7, 1, 0, 87.5), life: figures(7, 1, 0, 87.5),
			wantLate: []string{"workOrders/8"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			at := tc.now
			if at.IsZero() {
				at = reportAt
			}
			r := Compliance(tc.orders, janStart, janEnd, at)
			if !r.GetStartTime().AsTime().Equal(janStart) || !r.GetEndTime().AsTime().Equal(janEnd) {
				t.Errorf("Compliance(...) period = %v to %v, want %v to %v",
					r.GetStartTime().AsTime(), r.GetEndTime().AsTime(), janStart, janEnd)
			}
			for _, f := range []struct {
				name      string
				got, want *pb.ComplianceFigures
			}{{"overall", r.GetOverall(), tc.overall}, {"high risk", r.GetHighRisk(), tc.high}, {"life support", r.GetLifeSupport(), tc.life}} {
				if diff := cmp.Diff(f.want, f.got, protocmp.Transform()); diff != "" {
					t.Errorf("Compliance(...) %s mismatch (-want +got):\n%s", f.name, diff)
				}
			}
			if got := names(r.GetLate()); !equal(got, tc.wantLate) {
				t.Errorf("Compliance(...) late = %q, want %q", got, tc.wantLate)
			}
			if got := names(r.GetMissed()); !equal(got, tc.wantMissed) {
				t.Errorf("Compliance(...) missed = %q, want %q", got, tc.wantMissed)
			}
		})
	}
}

func names(orders []*pb.WorkOrder) []string {
	var out []string
	for _, o := range orders {
		out = append(out, o.GetName())
	}
	return out
}
