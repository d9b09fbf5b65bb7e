package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/status"

	"github.com/medfleet/medfleet/inventory"
	"github.com/medfleet/medfleet/inventory/cmms"
	"github.com/medfleet/medfleet/maintenance/program"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// maxImport bounds an imported file.
const maxImport = 64 << 20

// importRow is what a row of an import will do.
type importRow struct {
	line   int
	id     string
	spec   *pb.Device // the registry part to write
	paths  []string   // for an existing device, the fields that change; nil: create
	exists bool
	zone   string    // where to check it in, "" for nowhere
	lastPM time.Time // zero: none
}

// ImportDevices reads a CMMS inventory, checks every row, and applies the
// rows only if none has a problem.
func (s *deviceService) ImportDevices(stream pb.DeviceService_ImportDevicesServer) error {
	ctx := stream.Context()
	var (
		data    []byte
		first   *pb.ImportDevicesRequest
		columns map[string]string
	)
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if first == nil {
			first, columns = req, req.GetColumnMap()
		}
		if len(data)+len(req.GetData()) > maxImport {
			return invalidArgument("data", fmt.Sprintf("the file is larger than %d MiB; split it", maxImport>>20))
		}
		data = append(data, req.GetData()...)
	}
	if first == nil || len(data) == 0 {
		return invalidArgument("data", "required: the CSV file")
	}
	f, err := cmms.Read(bytes.NewReader(data), columns)
	if err != nil {
		return invalidArgument("data", err.Error())
	}
	resp := &pb.ImportDevicesResponse{Rows: int32(len(f.Rows)), Columns: f.Columns}
	for _, p := range f.Problems {
		resp.Problems = append(resp.Problems, &pb.ImportProblem{Line: int32(p.Line), Column: p.Column, Message: p.Message})
	}
	for i, c := range f.Columns {
		if c == "" {
			resp.Warnings = append(resp.Warnings, &pb.ImportProblem{Line: 1, Message: fmt.Sprintf("header %d is no known column; its values are ignored", i+1)})
		}
	}
	rows, problems := s.planImport(ctx, f)
	resp.Problems = append(resp.Problems, problems...)
	slices.SortStableFunc(resp.Problems, func(a, b *pb.ImportProblem) int { return int(a.Line - b.Line) })
	if first.GetValidateOnly() || len(resp.Problems) > 0 {
		return stream.SendAndClose(resp)
	}
	if err := s.applyImport(ctx, rows, resp); err != nil {
		s.log.Error("import stopped part way", "applied", resp.Created+resp.Updated+resp.Unchanged, "rows", len(rows), "err", err)
		return status.Errorf(status.Code(grpcError(s.log, "ImportDevices", err)),
			"import stopped after %d of %d rows (running it again is safe): %v", resp.Created+resp.Updated+resp.Unchanged, len(rows), err)
	}
	resp.Applied = true
	s.log.Info("devices imported", "rows", resp.Rows, "created", resp.Created, "updated", resp.Updated, "unchanged", resp.Unchanged)
	if s.afterImport != nil && resp.Created+resp.Updated > 0 {
		s.afterImport(ctx)
	}
	return stream.SendAndClose(resp)
}

// planImport turns rows into devices and checks them against the fleet,
// the facility and each other. It writes nothing.
func (s *deviceService) planImport(ctx context.Context, f *cmms.File) ([]importRow, []*pb.ImportProblem) {
	var problems []*pb.ImportProblem
	problem := func(line int, column, format string, args ...any) {
		problems = append(problems, &pb.ImportProblem{Line: int32(line), Column: column, Message: fmt.Sprintf(format, args...)})
	}
	has := func(c string) bool { return slices.Contains(f.Columns, c) }
	site := principalFrom(ctx).Site
	fac := s.facility()
	now := time.Now()

	// Within the file, ids, asset tags, RFID tags and model + serial are unique.
	firstLine := map[string]int{}
	unique := func(line int, column, kind, value string) bool {
		if value == "" {
			return true
		}
		k := kind + "\x00" + value
		if l, ok := firstLine[k]; ok {
			problem(line, column, "%s is also on line %d", value, l)
			return false
		}
		firstLine[k] = line
		return true
	}
	// In the fleet, model + serial is unique too.
	serials := map[string]string{}
	s.inv.Range(func(d *inventory.Summary) bool {
		if d.Serial != "" && !d.Decommissioned {
			serials[d.Model+"\x00"+d.Serial] = d.ID
		}
		return true
	})

	var rows []importRow
	for _, r := range f.Rows {
		id := r.Get(cmms.DeviceID)
		if id == "" {
			if other, ok := s.inv.DeviceByAssetTag(r.Get(cmms.AssetTag)); ok {
				id = other
			} else {
				id = idFromAssetTag(r.Get(cmms.AssetTag))
			}
		}
		row := importRow{line: r.Line, id: id}
		cur, err := s.inv.Get(id)
		row.exists = err == nil
		if row.exists && !inScope(ctx, cur) {
			problem(r.Line, cmms.DeviceID, "%s is a device of another site", id)
			continue
		}
		spec := &pb.Device{}
		if row.exists {
			spec = registryPart(cur)
		}
		set := func(c string, field *string) {
			if has(c) {
				*field = r.Get(c)
			}
		}
		set(cmms.Profile, &spec.Profile)
		set(cmms.Model, &spec.Model)
		set(cmms.Manufacturer, &spec.Manufacturer)
		set(cmms.Serial, &spec.Serial)
		set(cmms.UDI, &spec.Udi)
		set(cmms.Site, &spec.Site)
		set(cmms.RFIDTag, &spec.RfidTag)
		set(cmms.AssetTag, &spec.AssetTag)
		if has(cmms.RiskClass) {
			spec.RiskClass, _ = cmms.ParseRiskClass(r.Get(cmms.RiskClass)) // checked by cmms.Read
		}
		for _, c := range f.Columns {
			if k, ok := strings.CutPrefix(c, cmms.LabelPrefix); ok {
				if spec.Labels == nil {
					spec.Labels = map[string]string{}
				}
				if v := r.Labels[k]; v != "" {
					spec.Labels[k] = v
				} else {
					delete(spec.Labels, k)
				}
			}
		}
		switch {
		case site == "":
		case spec.GetSite() == "":
			spec.Site = site
		case spec.GetSite() != site:
			problem(r.Line, cmms.Site, "you may import devices of site %s only", site)
			continue
		}
		checked, err := s.inv.Check(id, spec)
		if err != nil {
			column, msg := importColumn(err)
			problem(r.Line, column, "%s", msg)
			continue
		}
		row.spec = checked
		if row.exists {
			row.paths = changedFields(registryPart(cur), checked)
		}
		// A repeated asset tag makes a repeated id: say it once.
		if unique(r.Line, cmms.AssetTag, "asset", strings.ToUpper(checked.GetAssetTag())) {
			unique(r.Line, cmms.DeviceID, "id", id)
		}
		unique(r.Line, cmms.RFIDTag, "rfid", checked.GetRfidTag())
		if checked.GetSerial() != "" {
			unique(r.Line, cmms.Serial, "serial", checked.GetModel()+" serial "+checked.GetSerial())
			if other, ok := serials[checked.GetModel()+"\x00"+checked.GetSerial()]; ok && other != id {
				problem(r.Line, cmms.Serial, "%s serial %s is devices/%s's", checked.GetModel(), checked.GetSerial(), other)
			}
		}

		if zone := r.Get(cmms.Location); zone != "" {
			switch z, ok := fac.Resolve(zone); {
			case fac.Zones() == 0:
				problem(r.Line, cmms.Location, "no facility is loaded: apply one first (medfleetctl facility apply)")
			case !ok:
				problem(r.Line, cmms.Location, "%q is not a zone, room or unit of the facility", zone)
			default:
				row.zone = z
			}
		}
		if v := r.Get(cmms.LastPM); v != "" {
			t, _ := cmms.ParseDate(v) // checked by cmms.Read
			switch {
			case t.After(now):
				problem(r.Line, cmms.LastPM, "%s is in the future", v)
			case s.prog == nil:
			default:
				row.lastPM = t
			}
		}
		rows = append(rows, row)
	}
	return rows, problems
}

// applyImport writes the planned rows, counting what each did.
func (s *deviceService) applyImport(ctx context.Context, rows []importRow, resp *pb.ImportDevicesResponse) error {
	who := "import by " + principalFrom(ctx).Name()
	for _, r := range rows {
		changed := false
		switch {
		case !r.exists:
			if _, err := s.inv.Create(ctx, r.id, r.spec, ""); err != nil {
				return fmt.Errorf("line %d: %w", r.line, err)
			}
		case len(r.paths) > 0:
			if _, err := s.inv.Update(ctx, r.id, r.spec, r.paths, ""); err != nil {
				return fmt.Errorf("line %d: %w", r.line, err)
			}
			changed = true
		}
		if r.zone != "" && s.locations != nil {
			moved, warn := s.placeImported(r.id, r.zone, who)
			changed = changed || moved
			if warn != "" {
				resp.Warnings = append(resp.Warnings, &pb.ImportProblem{Line: int32(r.line), Column: cmms.Location, Message: warn})
			}
		}
		if !r.lastPM.IsZero() {
			done, err := s.prog.RecordLastPM(ctx, r.id, r.spec.GetModel(), r.lastPM)
			switch {
			case errors.Is(err, program.ErrNoPlan):
				resp.Warnings = append(resp.Warnings, &pb.ImportProblem{Line: int32(r.line), Column: cmms.LastPM,
					Message: fmt.Sprintf("not recorded: model %q has no maintenance plan with a pm-inspection task", r.spec.GetModel())})
			case err != nil:
				return fmt.Errorf("line %d: last PM date: %w", r.line, err)
			}
			changed = changed || done
		}
		switch {
		case !r.exists:
			resp.Created++
		case changed:
			resp.Updated++
		default:
			resp.Unchanged++
		}
	}
	return nil
}

// placeImported checks a device into the zone the inventory gives, unless
// it is there already or a live RFID or Wi-Fi location (fresher than any
// inventory) says where it is.
func (s *deviceService) placeImported(id, zone, who string) (moved bool, warning string) {
	cur, err := s.locations.Locate(id)
	located := err == nil && cur.GetPlace().GetZone() != ""
	if located && cur.GetPlace().GetZone() == zone {
		return false, ""
	}
	if located && !cur.GetStale() && cur.GetSource() != pb.LocationSource_LOCATION_SOURCE_MANUAL {
		return false, fmt.Sprintf("not applied: %s locates the device in %s now", sourceName(cur.GetSource()), cur.GetPlace().GetZone())
	}
	if _, err := s.locations.CheckIn(id, zone, who, time.Now()); err != nil {
		return false, "not applied: " + err.Error()
	}
	return true, ""
}

func sourceName(src pb.LocationSource) string {
	return strings.ToLower(strings.TrimPrefix(src.String(), "LOCATION_SOURCE_"))
}

// facility is the current facility, or an empty one.
func (s *deviceService) facility() interface {
	Resolve(string) (string, bool)
	Zones() int
} {
	if s.locations != nil && s.locations.Facility() != nil {
		return s.locations.Facility()
	}
	return noFacility{}
}

type noFacility struct{}

func (noFacility) Resolve(string) (string, bool) { return "", false }
func (noFacility) Zones() int                    { return 0 }

// idFromAssetTag makes a device id of an asset tag: lower case, with
// characters a device id cannot have turned into '-'.
func idFromAssetTag(tag string) string {
	b := []byte(strings.ToLower(tag))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	id := strings.TrimLeft(string(b), "._-")
	if len(id) > 64 {
		id = id[:64]
	}
	return id
}

// registryPart is the part of a device an import may write.
func registryPart(d *pb.Device) *pb.Device {
	return &pb.Device{Profile: d.GetProfile(), Model: d.GetModel(), Manufacturer: d.GetManufacturer(), Serial: d.GetSerial(),
		Udi: d.GetUdi(), Site: d.GetSite(), RfidTag: d.GetRfidTag(), AssetTag: d.GetAssetTag(), RiskClass: d.GetRiskClass(),
		Labels: maps.Clone(d.GetLabels())}
}

// changedFields are the UpdateDevice fields in which b differs from a.
func changedFields(a, b *pb.Device) []string {
	var paths []string
	for _, f := range []struct {
		path string
		same bool
	}{
		{"profile", a.GetProfile() == b.GetProfile()},
		{"model", a.GetModel() == b.GetModel()},
		{"manufacturer", a.GetManufacturer() == b.GetManufacturer()},
		{"serial", a.GetSerial() == b.GetSerial()},
		{"udi", a.GetUdi() == b.GetUdi()},
		{"site", a.GetSite() == b.GetSite()},
		{"rfid_tag", a.GetRfidTag() == b.GetRfidTag()},
		{"asset_tag", a.GetAssetTag() == b.GetAssetTag()},
		{"risk_class", a.GetRiskClass() == b.GetRiskClass()},
		{"labels", maps.Equal(a.GetLabels(), b.GetLabels())},
	} {
		if !f.same {
			paths = append(paths, f.path)
		}
	}
	return paths
}

// importColumn names the column of a device check's error.
func importColumn(err error) (column, message string) {
	var fe *inventory.FieldError
	if errors.As(err, &fe) {
		column = strings.TrimPrefix(fe.Field, "device.")
		if column == "labels" {
			column = "label"
		}
		return column, fe.Reason
	}
	if errors.Is(err, inventory.ErrAlreadyExists) {
		msg := strings.TrimPrefix(err.Error(), inventory.ErrAlreadyExists.Error()+": ")
		if strings.HasPrefix(msg, "asset tag") {
			return cmms.AssetTag, msg
		}
		return cmms.RFIDTag, msg
	}
	return "", err.Error()
}

// ExportDevices writes the fleet as a CMMS inventory, in pieces of 64 KiB.
func (s *deviceService) ExportDevices(req *pb.ExportDevicesRequest, stream pb.DeviceService_ExportDevicesServer) error {
	ctx := stream.Context()
	var rows []cmms.Row
	token := ""
	for {
		res, err := s.inv.List(inventory.ListRequest{PageSize: inventory.MaxPageSize, PageToken: token, Filter: req.GetFilter(),
			ShowDecommissioned: req.GetShowDecommissioned(), Site: principalFrom(ctx).Site})
		if err != nil {
			return grpcError(s.log, "ExportDevices", err)
		}
		for _, d := range res.Devices {
			rows = append(rows, s.exportRow(d))
		}
		if token = res.NextPageToken; token == "" {
			break
		}
	}
	out := &chunkWriter{send: func(b []byte) error { return stream.Send(&pb.ExportDevicesResponse{Data: b}) }}
	w, err := cmms.NewWriter(out, cmms.LabelKeys(rows))
	if err != nil {
		return err
	}
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return out.flush()
}

// exportRow is a device as an inventory row.
func (s *deviceService) exportRow(d *pb.Device) cmms.Row {
	id := strings.TrimPrefix(d.GetName(), "devices/")
	v := map[string]string{
		cmms.AssetTag: d.GetAssetTag(), cmms.DeviceID: id, cmms.Manufacturer: d.GetManufacturer(), cmms.Model: d.GetModel(),
		cmms.Serial: d.GetSerial(), cmms.UDI: d.GetUdi(), cmms.Profile: d.GetProfile(), cmms.Site: d.GetSite(),
		cmms.RiskClass: cmms.RiskClassName(d.GetRiskClass()), cmms.RFIDTag: d.GetRfidTag(),
	}
	if s.locations != nil {
		if loc, err := s.locations.Locate(id); err == nil {
			v[cmms.Location] = loc.GetPlace().GetZone()
		}
	}
	if s.prog != nil {
		if t := s.prog.LastPM(id, d.GetModel()); !t.IsZero() {
			v[cmms.LastPM] = t.UTC().Format(time.DateOnly)
		}
	}
	return cmms.Row{Values: v, Labels: d.GetLabels()}
}

// chunkWriter sends what is written in pieces of up to 64 KiB.
type chunkWriter struct {
	buf  []byte
	send func([]byte) error
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	c.buf = append(c.buf, p...)
	for len(c.buf) >= 64<<10 {
		if err := c.send(c.buf[:64<<10]); err != nil {
			return 0, err
		}
		c.buf = c.buf[64<<10:]
	}
	return len(p), nil
}

func (c *chunkWriter) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	err := c.send(c.buf)
	c.buf = nil
	return err
}
