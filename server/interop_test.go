package server

import (
	"bytes"
	"encoding/csv"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/medfleet/medfleet/inventory/cmms"
	"github.com/medfleet/medfleet/maintenance"
	"github.com/medfleet/medfleet/maintenance/recall"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// interopServer is a server with the sample facility and the example
// models, as a hospital would set one up before importing its inventory.
func interopServer(t *testing.T) (*testServer, pb.MaintenanceServiceClient) {
	t.Helper()
	ts := startServer(t, testConfig(t, t.TempDir()))
	doc, err := os.ReadFile("../examples/facility/hospital.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.srv.ApplyFacility(t.Context(), doc); err != nil {
		t.Fatal(err)
	}
	mc := pb.NewMaintenanceServiceClient(ts.conn)
	for _, f := range []string{"infusion-pump.yaml", "cpap.yaml"} {
		b, err := os.ReadFile("../examples/models/" + f)
		if err != nil {
			t.Fatal(err)
		}
		id, m, err := maintenance.ParseModelYAML(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mc.ApplyDeviceModel(t.Context(), &pb.ApplyDeviceModelRequest{ModelId: id, DeviceModel: m}); err != nil {
			t.Fatal(err)
		}
	}
	return ts, mc
}

// wantInvalid checks that err is InvalidArgument naming field, with reason
// containing text.
func wantInvalid(t *testing.T, err error, field, text string) {
	t.Helper()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), field) || !strings.Contains(err.Error(), text) {
		t.Fatalf("error %v, want InvalidArgument naming %s with %q", err, field, text)
	}
}

func TestCreateDeviceFromUDI(t *testing.T) {
	ts, _ := interopServer(t)
	ctx := t.Context()

	// As a scanner types it: symbology identifier, raw form, GS separator.
	scanned := "]d201108854038100221726063010A7\x1d2112580001"
	d, err := ts.client.CreateDevice(ctx, &pb.CreateDeviceRequest{Device: &pb.Device{Udi: scanned, AssetTag: "BME-000001"}})
	if err != nil {
		t.Fatal(err)
	}
	u := d.GetUdiCarrier()
	switch {
	case d.GetName() != "devices/bme-000001":
		t.Errorf("name %s, want devices/bme-000001 (from the asset tag)", d.GetName())
	case d.GetModel() != "BD Alaris 8100" || d.GetManufacturer() != "BD" || d.GetProfile() != "infusion-pump":
		t.Errorf("model %q manufacturer %q profile %q: want the catalogue model of DI 10885403810022", d.GetModel(), d.GetManufacturer(), d.GetProfile())
	case d.GetSerial() != "12580001":
		t.Errorf("serial %q, want the UDI's", d.GetSerial())
	case d.GetUdi() != "(01)10885403810022(17)260630(10)A7(21)12580001":
		t.Errorf("udi %q, want the canonical form", d.GetUdi())
	case u.GetDeviceIdentifier() != "10885403810022" || u.GetLot() != "A7" || u.GetExpiryDate() != "2026-06-30" || u.GetIssuer() != "GS1":
		t.Errorf("carrier %v", u)
	}

	// No asset tag: the id is the DI and serial.
	d, err = ts.client.CreateDevice(ctx, &pb.CreateDeviceRequest{Device: &pb.Device{Udi: "(01)10885403810022(21)12580002"}})
	if err != nil || d.GetName() != "devices/10885403810022-12580002" {
		t.Fatalf("CreateDevice: %v, %s", err, d.GetName())
	}

	for _, tc := range []struct {
		name        string
		dev         *pb.Device
		field, text string
	}{
		{"check digit", &pb.Device{Udi: "(01)10885403810023(21)9", Profile: "p", Model: "m"}, "device.udi", "check digit 3, want 2"},
		{"date", &pb.Device{Udi: "(01)10885403810022(17)261332(21)9"}, "device.udi", "(17)"},
		{"other model", &pb.Device{Udi: "(01)10885403810022(21)9", Model: "ResMed AirSense 11"}, "device.udi", `is model "BD Alaris 8100"`},
		{"other serial", &pb.Device{Udi: "(01)10885403810022(21)9", Serial: "8"}, "device.udi", `"9" is not device.serial "8"`},
		{"asset tag taken", &pb.Device{Profile: "p", Model: "m", AssetTag: "bme-000001"}, "", "asset tag bme-000001 is on devices/bme-000001"},
	} {
		_, err := ts.client.CreateDevice(ctx, &pb.CreateDeviceRequest{DeviceId: "x-" + strings.ReplaceAll(tc.name, " ", "-"), Device: tc.dev})
		if tc.field == "" {
			if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		wantInvalid(t, err, tc.field, tc.text)
	}
}

// importCSV sends a CSV file in two pieces, as the CLI does in many.
func importCSV(t *testing.T, c pb.DeviceServiceClient, data []byte, validateOnly bool) *pb.ImportDevicesResponse {
	t.Helper()
	stream, err := c.ImportDevices(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	half := len(data) / 2
	if err := stream.Send(&pb.ImportDevicesRequest{ValidateOnly: validateOnly, Data: data[:half]}); err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.ImportDevicesRequest{Data: data[half:]}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func exportCSV(t *testing.T, c pb.DeviceServiceClient) []byte {
	t.Helper()
	stream, err := c.ExportDevices(t.Context(), &pb.ExportDevicesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return b.Bytes()
		}
		if err != nil {
			t.Fatal(err)
		}
		b.Write(resp.GetData())
	}
}

func TestImportExportInventory(t *testing.T) {
	ts, mc := interopServer(t)
	ctx := t.Context()
	sample, err := os.ReadFile("../examples/cmms/inventory.csv")
	if err != nil {
		t.Fatal(err)
	}
	count := func() int32 {
		resp, err := ts.client.ListDevices(ctx, &pb.ListDevicesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetTotalSize()
	}

	// A dry run checks every row and applies nothing.
	resp := importCSV(t, ts.client, sample, true)
	if resp.GetRows() != 300 || len(resp.GetProblems()) != 0 || resp.GetApplied() || count() != 0 {
		t.Fatalf("dry run: rows %d problems %v applied %v, %d devices", resp.GetRows(), resp.GetProblems(), resp.GetApplied(), count())
	}

	// Bad rows: every problem is reported with its line, nothing applied.
	// Columns: Asset Tag, Manufacturer, Model, Serial Number, UDI, Device
	// Type, Site, Location, Last PM Date, Risk Class, label.unit.
	recs, err := csv.NewReader(bytes.NewReader(sample)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	recs[3][4] = "(01)10885403810029(21)" + recs[3][3] // line 4: check digit
	recs[7][7] = "nowhere-ward"                        // line 8: no such place
	recs[9][0] = recs[2][0]                            // line 10: asset tag of line 3
	recs[11][8] = "05/01/2026"                         // line 12: ambiguous date
	var b bytes.Buffer
	csv.NewWriter(&b).WriteAll(recs)
	resp = importCSV(t, ts.client, b.Bytes(), false)
	var got []int32
	for _, p := range resp.GetProblems() {
		got = append(got, p.GetLine())
	}
	if resp.GetApplied() || count() != 0 || !slices.Equal(slices.Compact(got), []int32{4, 8, 10, 12}) {
		t.Fatalf("bad rows: applied %v, %d devices, problems %v", resp.GetApplied(), count(), resp.GetProblems())
	}
	for _, p := range resp.GetProblems() {
		if p.GetLine() == 8 && (p.GetColumn() != "location" || !strings.Contains(p.GetMessage(), "nowhere-ward")) {
			t.Errorf("line 8: %v", p)
		}
		if p.GetLine() == 10 && (p.GetColumn() != "asset_tag" || !strings.Contains(p.GetMessage(), "also on line 3")) {
			t.Errorf("line 10: %v", p)
		}
	}

	// The real import.
	resp = importCSV(t, ts.client, sample, false)
	if !resp.GetApplied() || resp.GetCreated() != 300 || len(resp.GetProblems()) != 0 {
		t.Fatalf("import: %v", resp)
	}
	noPlan := 0
	for _, w := range resp.GetWarnings() {
		if w.GetColumn() == cmms.LastPM {
			noPlan++
		}
	}
	if noPlan != 60 { // 20 defibrillators and 40 monitors have no plan here
		t.Errorf("%d last-PM warnings, want 60: %v", noPlan, resp.GetWarnings())
	}
	// Row 2 of the sample: BME-004234, a pump in SPD clean storage, last PM 2026-08-22.
	d, err := ts.client.GetDevice(ctx, &pb.GetDeviceRequest{Name: "devices/bme-004234"})
	if err != nil {
		t.Fatal(err)
	}
	if d.GetSerial() != "12580134" || d.GetRiskClass() != pb.RiskClass_RISK_CLASS_HIGH || d.GetLabels()["unit"] != "3-west" ||
		d.GetUdiCarrier().GetDeviceIdentifier() != "10885403810022" {
		t.Errorf("device %v", d)
	}
	loc, err := pb.NewLocationServiceClient(ts.conn).Locate(ctx, &pb.LocateRequest{Device: "devices/bme-004234"})
	if err != nil || loc.GetPlace().GetRoom() != "spd-clean-storage" || loc.GetSource() != pb.LocationSource_LOCATION_SOURCE_MANUAL {
		t.Errorf("Locate: %v %v", loc, err)
	}
	rec, err := mc.GetDeviceMaintenance(ctx, &pb.GetDeviceMaintenanceRequest{Name: "devices/bme-004234/maintenance"})
	if err != nil {
		t.Fatal(err)
	}
	pm := slices.IndexFunc(rec.GetTasks(), func(t *pb.TaskState) bool { return t.GetTaskId() == "pm" })
	if pm < 0 || rec.GetTasks()[pm].GetLastDoneTime().AsTime().Format("2006-01-02") != "2026-08-22" ||
		rec.GetServiceState() != pb.ServiceState_SERVICE_STATE_IN_SERVICE {
		t.Errorf("maintenance record %v", rec)
	}

	// Again: nothing changes.
	resp = importCSV(t, ts.client, sample, false)
	if resp.GetCreated() != 0 || resp.GetUpdated() != 0 || resp.GetUnchanged() != 300 {
		t.Fatalf("re-import: %d created, %d updated, %d unchanged", resp.GetCreated(), resp.GetUpdated(), resp.GetUnchanged())
	}

	// Export, and import the export: the same fleet, nothing changes.
	out := exportCSV(t, ts.client)
	f, err := cmms.Read(bytes.NewReader(out), nil)
	if err != nil || len(f.Problems) != 0 || len(f.Rows) != 300 {
		t.Fatalf("export: %v, %d rows, problems %v", err, len(f.Rows), f.Problems)
	}
	in, _ := cmms.Read(bytes.NewReader(sample), nil)
	exported := map[string]cmms.Row{}
	for _, r := range f.Rows {
		exported[r.Get(cmms.AssetTag)] = r
	}
	for _, r := range in.Rows {
		e := exported[r.Get(cmms.AssetTag)]
		for _, c := range []string{cmms.Model, cmms.Serial, cmms.RiskClass, cmms.Site, cmms.Profile} {
			if e.Get(c) != r.Get(c) {
				t.Errorf("%s: exported %s %q, imported %q", r.Get(cmms.AssetTag), c, e.Get(c), r.Get(c))
			}
		}
		if e.Labels["unit"] != r.Labels["unit"] {
			t.Errorf("%s: label unit %q, want %q", r.Get(cmms.AssetTag), e.Labels["unit"], r.Labels["unit"])
		}
	}
	resp = importCSV(t, ts.client, out, false)
	if resp.GetCreated() != 0 || resp.GetUpdated() != 0 || resp.GetUnchanged() != 300 || len(resp.GetProblems()) != 0 {
		t.Fatalf("importing the export: %v", resp)
	}
}

func TestRecallMatching(t *testing.T) {
	ts, mc := interopServer(t)
	ctx := t.Context()
	sample, err := os.ReadFile("../examples/cmms/inventory.csv")
	if err != nil {
		t.Fatal(err)
	}
	if resp := importCSV(t, ts.client, sample, false); !resp.GetApplied() {
		t.Fatalf("import: %v", resp.GetProblems())
	}
	f, err := os.Open("../examples/recalls/openfda-device-recall.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parsed, err := recall.ParseOpenFDA(f)
	if err != nil {
		t.Fatal(err)
	}
	rc := pb.NewRecallServiceClient(ts.conn)
	req := &pb.ImportRecallsRequest{}
	for _, r := range parsed {
		req.Recalls = append(req.Recalls, &pb.Recall{ProductResNumber: r.ID, ProductCode: r.ProductCode, ProductDescription: r.ProductDescription,
			CodeInfo: r.CodeInfo, Firm: r.Firm, Reason: r.Reason, Action: r.Action, Status: r.Status})
	}

	// A dry run stores nothing.
	dry, err := rc.ImportRecalls(ctx, &pb.ImportRecallsRequest{Recalls: req.Recalls, ValidateOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if list, _ := rc.ListRecalls(ctx, &pb.ListRecallsRequest{}); len(list.GetRecalls()) != 0 {
		t.Fatalf("dry run stored %d recalls", len(list.GetRecalls()))
	}
	resp, err := rc.ImportRecalls(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetCreated() != int32(len(parsed)) || resp.GetMatches() != dry.GetMatches() || resp.GetNewMatches() != resp.GetMatches() {
		t.Fatalf("import: %v (dry run %v)", resp, dry)
	}

	matches := func(recallID string, state pb.RecallMatchState) []*pb.RecallMatch {
		t.Helper()
		resp, err := rc.ListRecallMatches(ctx, &pb.ListRecallMatchesRequest{Recall: "recalls/" + recallID, State: state, PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetMatches()
	}
	strong := func(ms []*pb.RecallMatch) int {
		n := 0
		for _, m := range ms {
			if m.GetStrength() == pb.RecallMatchStrength_RECALL_MATCH_STRENGTH_STRONG {
				n++
			}
		}
		return n
	}
	// Alaris 8100 serials 12580050-12580099, 12580120 and 12580133: 52 pumps.
	if ms := matches("Z-1432-2026", 0); len(ms) != 52 || strong(ms) != 52 {
		t.Errorf("Z-1432-2026: %d matches, %d strong; want 52 strong", len(ms), strong(ms))
	}
	// ZOLL R Series lots 4505 to 4510: six defibrillators, by their UDI's lot.
	ms := matches("Z-1207-2026", 0)
	var lots []string
	for _, m := range ms {
		lots = append(lots, m.GetLot())
	}
	slices.Sort(lots)
	if !slices.Equal(lots, []string{"4505", "4506", "4507", "4508", "4509", "4510"}) || strong(ms) != 6 {
		t.Errorf("Z-1207-2026: lots %v, %d strong; want 4505-4510", lots, strong(ms))
	}
	// AirSense 11, all serial numbers: every CPAP, possible.
	if ms := matches("Z-1610-2026", 0); len(ms) != 60 || strong(ms) != 0 {
		t.Errorf("Z-1610-2026: %d matches, %d strong; want 60 possible", len(ms), strong(ms))
	}
	// Another firm's pump with the same product code: nothing.
	if ms := matches("Z-1389-2026", 0); len(ms) != 0 {
		t.Errorf("Z-1389-2026: %d matches, want none", len(ms))
	}

	// Confirm one: out of service, with a recall work order.
	name := "recalls/Z-1432-2026/matches/" + strings.TrimPrefix(matches("Z-1432-2026", 0)[0].GetDevice(), "devices/")
	m, err := rc.ConfirmRecallMatch(ctx, &pb.ConfirmRecallMatchRequest{Name: name, Note: "serial checked on the label"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := ts.client.GetDevice(ctx, &pb.GetDeviceRequest{Name: m.GetDevice()})
	if err != nil {
		t.Fatal(err)
	}
	if m.GetState() != pb.RecallMatchState_RECALL_MATCH_STATE_CONFIRMED || d.GetStatus().GetAvailability() != pb.Availability_AVAILABILITY_OUT_OF_SERVICE {
		t.Errorf("confirmed %v, device availability %v", m.GetState(), d.GetStatus().GetAvailability())
	}
	wo, err := mc.GetWorkOrder(ctx, &pb.GetWorkOrderRequest{Name: m.GetWorkOrder()})
	if err != nil || wo.GetType() != pb.WorkOrderType_WORK_ORDER_TYPE_RECALL || !strings.HasPrefix(wo.GetDescription(), "Recall Z-1432-2026 ") {
		t.Errorf("work order %v: %v", wo, err)
	}
	if _, err := rc.ConfirmRecallMatch(ctx, &pb.ConfirmRecallMatchRequest{Name: name}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("confirming twice: %v, want FailedPrecondition", err)
	}
	other := "recalls/Z-1610-2026/matches/" + strings.TrimPrefix(matches("Z-1610-2026", 0)[0].GetDevice(), "devices/")
	_, err = rc.DismissRecallMatch(ctx, &pb.DismissRecallMatchRequest{Name: other})
	wantInvalid(t, err, "note", "required")
	if _, err := rc.DismissRecallMatch(ctx, &pb.DismissRecallMatchRequest{Name: other, Note: "firmware SX585-0400, not affected"}); err != nil {
		t.Fatal(err)
	}

	// Importing again keeps the decisions and finds nothing new.
	resp, err = rc.ImportRecalls(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetUnchanged() != int32(len(parsed)) || resp.GetNewMatches() != 0 {
		t.Errorf("re-import: %v", resp)
	}
	if n := len(matches("Z-1432-2026", pb.RecallMatchState_RECALL_MATCH_STATE_CONFIRMED)); n != 1 {
		t.Errorf("%d confirmed after re-import, want 1", n)
	}
	got, err := rc.GetRecall(ctx, &pb.GetRecallRequest{Name: "recalls/Z-1432-2026"})
	if err != nil || got.GetPendingMatches() != 51 || got.GetConfirmedMatches() != 1 || len(got.GetCodes().GetSerials()) == 0 {
		t.Errorf("GetRecall: %v %v", got, err)
	}
	_, err = rc.ImportRecalls(ctx, &pb.ImportRecallsRequest{Recalls: []*pb.Recall{{ProductResNumber: "Z-12"}}})
	wantInvalid(t, err, "recalls[0].product_res_number", "not an FDA recall number")
}
