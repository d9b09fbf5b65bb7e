package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

func TestParseWorkOrderID(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "20260301-k3x9q2ab", want: "20260301-k3x9q2ab"},
		{in: "workOrders/20260301-k3x9q2ab", want: "20260301-k3x9q2ab"},
		{in: "x", want: "x"},
		{in: "", wantErr: true},
		{in: "workOrders/", wantErr: true},
		{in: "workorders/x", wantErr: true},
		{in: "a/b", wantErr: true},
		{in: "a b", wantErr: true},
		{in: strings.Repeat("w", 65), wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseWorkOrderID(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseWorkOrderID(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestTaskResults(t *testing.T) {
	tests := []struct {
		name       string
		pass, fail []string
		want       []*medfleetv1.TaskResult
		wantErr    string
	}{
		{name: "none"},
		{
			name: "pass and fail in order",
			pass: []string{"pm", "esa"}, fail: []string{"battery"},
			want: []*medfleetv1.TaskResult{{TaskId: "pm", Passed: true}, {TaskId: "esa", Passed: true}, {TaskId: "battery"}},
		},
		{name: "acceptance", pass: []string{"acceptance"}, want: []*medfleetv1.TaskResult{{TaskId: "acceptance", Passed: true}}},
		{name: "both", pass: []string{"pm"}, fail: []string{"pm"}, wantErr: `task "pm": given twice (--pass and --fail)`},
		{name: "twice", fail: []string{"esa", "esa"}, wantErr: `task "esa": given twice`},
		{name: "empty", pass: []string{""}, wantErr: `--pass: want a task id`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := taskResults(tc.pass, tc.fail)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("taskResults(%q, %q) = %v, %v; want error %q", tc.pass, tc.fail, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("taskResults(%q, %q) mismatch (-want +got):\n%s", tc.pass, tc.fail, diff)
			}
		})
	}
}

func TestParseWhen(t *testing.T) {
	date := time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in        string
		dateMeans func(time.Time) time.Time
		want      time.Time
		wantErr   bool
	}{
		{in: "2026-03-31", dateMeans: startOfDay, want: date},
		{in: "2026-03-31", dateMeans: endOfDay, want: date.Add(24*time.Hour - time.Second)},
		{in: "2026-03-31", dateMeans: nextDay, want: date.Add(24 * time.Hour)},
		{in: "2026-03-31T14:00:00Z", dateMeans: nextDay, want: date.Add(14 * time.Hour)},
		{in: "2026-03-31T14:00:00+02:00", dateMeans: startOfDay, want: date.Add(12 * time.Hour)},
		{in: "31.03.2026", dateMeans: startOfDay, wantErr: true},
		{in: "2026-02-30", dateMeans: startOfDay, wantErr: true},
		{in: "tomorrow", dateMeans: startOfDay, wantErr: true},
		{in: "", dateMeans: startOfDay, wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseWhen("--due", tc.in, tc.dateMeans)
		if tc.wantErr {
			if err == nil || !strings.HasPrefix(err.Error(), "--due: want a date") {
				t.Errorf("parseWhen(%q) = %v, %v; want an error naming --due", tc.in, got, err)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// testOrders are a completed preventive order, an open acceptance check
// opened weeks ago, an assigned repair, a cancelled order and an open
// preventive order past its window.
func testOrders() []*medfleetv1.WorkOrder {
	return []*medfleetv1.WorkOrder{
		{
			Name: "workOrders/20260301-p0q1r2s3", Device: "devices/pump-0001", Type: medfleetv1.WorkOrderType_WORK_ORDER_TYPE_PREVENTIVE,
			State: medfleetv1.WorkOrderState_WORK_ORDER_STATE_COMPLETED, TaskIds: []string{"pm", "esa"},
			Reason: medfleetv1.DueReason_DUE_REASON_CALENDAR, Description: "every 365 d; last 2025-03-02",
			CreateTime: ts(testNow.Add(-30 * 24 * time.Hour)), DueTime: ts(testNow.Add(-24 * time.Hour)),
			WindowEndTime: ts(testNow.Add(29 * 24 * time.Hour)), Assignee: "alice", Creator: "system",
			CompleteTime: ts(testNow.Add(-2 * time.Hour)), CompletedBy: "users/alice",
			Results: []*medfleetv1.TaskResult{{TaskId: "pm", Passed: true}, {TaskId: "esa", Passed: false, Note: "enclosure\nleakage 620 uA"}},
			Parts:   []string{"battery pack 1000SP01183"}, MinutesSpent: 50, UsageHoursAtCompletion: 1874.25,
			HighRisk: true, Etag: "9120",
		},
		{
			Name: "workOrders/20260210-a1b2c3d4", Device: "devices/vent-0007", Type: medfleetv1.WorkOrderType_WORK_ORDER_TYPE_ACCEPTANCE,
			State: medfleetv1.WorkOrderState_WORK_ORDER_STATE_OPEN, Reason: medfleetv1.DueReason_DUE_REASON_ACCEPTANCE,
			CreateTime: ts(testNow.Add(-19 * 24 * time.Hour)), DueTime: ts(testNow.Add(-19 * 24 * time.Hour)),
			WindowEndTime: ts(testNow.Add(-19 * 24 * time.Hour)), Creator: "system", HighRisk: true, LifeSupport: true, Etag: "8001",
		},
		{
			Name: "workOrders/20260228-r3p4a5i6", Device: "devices/cpap-0002", Type: medfleetv1.WorkOrderType_WORK_ORDER_TYPE_REPAIR,
			State: medfleetv1.WorkOrderState_WORK_ORDER_STATE_ASSIGNED, Description: "blower noisy", FailureCode: "blower-bearing", Major: true,
			CreateTime: ts(testNow.Add(-26 * time.Hour)), DueTime: ts(testNow.Add(3*24*time.Hour + time.Hour)),
			WindowEndTime: ts(testNow.Add(3*24*time.Hour + time.Hour)), Assignee: "bob", Creator: "users/carol", Etag: "9002",
		},
		{
			Name: "workOrders/20260115-c9c8c7c6", Device: "devices/pump-0003", Type: medfleetv1.WorkOrderType_WORK_ORDER_TYPE_PREVENTIVE,
			State: medfleetv1.WorkOrderState_WORK_ORDER_STATE_CANCELLED, TaskIds: []string{"battery"},
			CreateTime: ts(testNow.Add(-45 * 24 * time.Hour)), DueTime: ts(testNow.Add(-40 * 24 * time.Hour)),
			WindowEndTime: ts(testNow.Add(-10 * 24 * time.Hour)), Creator: "users/carol", CancelReason: "returned to the vendor",
			HighRisk: true, Etag: "7000",
		},
		{
			Name: "workOrders/20260105-o1v2e3r4", Device: "devices/pump-0003", Type: medfleetv1.WorkOrderType_WORK_ORDER_TYPE_PREVENTIVE,
			State: medfleetv1.WorkOrderState_WORK_ORDER_STATE_OPEN, TaskIds: []string{"esa"}, Reason: medfleetv1.DueReason_DUE_REASON_CALENDAR,
			Description: "every 365 d; last 2025-01-24", CreateTime: ts(testNow.Add(-55 * 24 * time.Hour)),
			DueTime: ts(testNow.Add(-36 * 24 * time.Hour)), WindowEndTime: ts(testNow.Add(-6 * 24 * time.Hour)),
			Creator: "system", HighRisk: true, Etag: "6500",
		},
	}
}

func TestWorkOrderGolden(t *testing.T) {
	orders := testOrders()
	tests := []struct {
		name  string
		write func(*bytes.Buffer) error
	}{
		{"workorder_list.golden", func(b *bytes.Buffer) error { return writeWorkOrderTable(b, orders, testNow) }},
		{"workorder_list_empty.golden", func(b *bytes.Buffer) error { return writeWorkOrderTable(b, nil, testNow) }},
		{"workorder_get.golden", func(b *bytes.Buffer) error { return writeWorkOrder(b, orders[0], testNow) }},
		{"workorder_get_acceptance.golden", func(b *bytes.Buffer) error { return writeWorkOrder(b, orders[1], testNow) }},
		{"workorder_get_overdue.golden", func(b *bytes.Buffer) error { return writeWorkOrder(b, orders[4], testNow) }},
		{"workorder_get_repair.golden", func(b *bytes.Buffer) error { return writeWorkOrder(b, orders[2], testNow) }},
		{"workorder_get_cancelled.golden", func(b *bytes.Buffer) error { return writeWorkOrder(b, orders[3], testNow) }},
		{"workorder_list.json.golden", func(b *bytes.Buffer) error {
			return writeJSON(b, &medfleetv1.ListWorkOrdersResponse{WorkOrders: orders})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(&b); err != nil {
				t.Fatalf("write: %v", err)
			}
			checkGolden(t, tc.name, b.Bytes())
		})
	}
}
