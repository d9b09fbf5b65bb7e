package inventory

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/medfleet/medfleet/coap"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// List bounds (AIP-158).
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
	maxLabels       = 64
	maxAssetTag     = 64
	maxRequestID    = 64
)

var labelKeyPattern = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,62}$`)

// UpdatableFields are the registry fields UpdateDevice may change.
var UpdatableFields = []string{"profile", "model", "manufacturer", "serial", "udi", "labels", "site", "rfid_tag", "asset_tag", "risk_class"}

// Create adds a device. With a requestID seen in the last 24 hours it
// returns the device that request created instead.
func (inv *Inventory) Create(ctx context.Context, id string, d *pb.Device, requestID string) (*pb.Device, error) {
	if err := validateID("device_id", id); err != nil {
		return nil, err
	}
	if d == nil {
		return nil, &FieldError{Field: "device", Reason: "required"}
	}
	if len(requestID) > maxRequestID {
		return nil, &FieldError{Field: "request_id", Reason: fmt.Sprintf("longer than %d characters", maxRequestID)}
	}
	now := inv.now()
	spec := &pb.Device{
		Profile:      d.GetProfile(),
		Model:        d.GetModel(),
		Manufacturer: d.GetManufacturer(),
		Serial:       d.GetSerial(),
		Udi:          d.GetUdi(),
		Site:         d.GetSite(),
		Labels:       d.GetLabels(),
		RfidTag:      d.GetRfidTag(),
		AssetTag:     d.GetAssetTag(),
		RiskClass:    d.GetRiskClass(),
		CreateTime:   ts(now),
		UpdateTime:   ts(now),
	}
	if err := inv.prepare(id, spec); err != nil {
		return nil, err
	}
	return inv.create(ctx, id, spec, requestID)
}

func (inv *Inventory) create(ctx context.Context, id string, spec *pb.Device, requestID string) (*pb.Device, error) {
	inv.createMu.Lock()
	defer inv.createMu.Unlock()
	if _, ok := inv.lookup(id); ok && requestID == "" {
		return nil, ErrAlreadyExists
	}
	ctx, cancel := inv.ctx(ctx)
	defer cancel()
	rev, madeBy, err := inv.store.createDevice(ctx, id, spec, requestID)
	if err != nil {
		return nil, err
	}
	if madeBy != "" {
		return inv.Get(madeBy)
	}
	e := inv.insert(id, spec, rev, nil, 0) // or the entry the watch inserted first
	inv.log.Info("device created", "device", id, "profile", spec.GetProfile(), "model", spec.GetModel())
	e.mu.Lock()
	defer e.mu.Unlock()
	return inv.view(id, e, inv.now()), nil
}

// Get returns a device.
func (inv *Inventory) Get(id string) (*pb.Device, error) {
	e, ok := inv.lookup(id)
	if !ok {
		return nil, ErrNotFound
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return inv.view(id, e, inv.now()), nil
}

// ListRequest is a ListDevices query.
type ListRequest struct {
	PageSize           int
	PageToken          string
	Filter             string
	ShowDecommissioned bool
	// Site, when set, confines the listing to one site's devices whatever
	// the filter says.
	Site string
}

// ListResult is one page of devices.
type ListResult struct {
	Devices       []*pb.Device
	NextPageToken string
	TotalSize     int
}

// List returns one page of devices, ordered by id.
func (inv *Inventory) List(req ListRequest) (*ListResult, error) {
	switch {
	case req.PageSize < 0:
		return nil, &FieldError{Field: "page_size", Reason: "negative"}
	case req.PageSize == 0:
		req.PageSize = DefaultPageSize
	case req.PageSize > MaxPageSize:
		req.PageSize = MaxPageSize
	}
	f, err := ParseFilter(req.Filter)
	if err != nil {
		return nil, err
	}
	if req.Site != "" {
		f.terms = append(f.terms, term{field: "site", value: req.Site})
	}
	query := queryDigest(f.String(), req.ShowDecommissioned)
	after, err := decodePageToken(req.PageToken, query)
	if err != nil {
		return nil, err
	}

	inv.mu.RLock()
	sorted := inv.sorted
	start := 0
	if after != "" {
		// The first device after the token's, whether or not that one still
		// exists.
		start = sort.Search(len(sorted), func(i int) bool { return sorted[i].id > after })
	}
	// With a filter the whole index is scanned to count the matches on all
	// pages; without one the total is known, and only the page (and one
	// more device, for the next page token) is visited.
	now := inv.now()
	res := &ListResult{}
	scanAll := len(f.terms) > 0
	from := start
	if scanAll {
		from = 0
	} else {
		res.TotalSize = len(sorted)
		if !req.ShowDecommissioned {
			res.TotalSize -= int(inv.decommissioned.Load())
		}
	}
	var last string // id of the last device on the page
	for i := from; i < len(sorted) && (scanAll || res.NextPageToken == ""); i++ {
		e := sorted[i]
		id := e.id
		e.mu.Lock()
		match := (req.ShowDecommissioned || e.spec.GetDecommissionTime() == nil) &&
			f.match(e.spec, e.status, func() pb.Connectivity { return inv.connectivity(e.status, now) })
		if match {
			if scanAll {
				res.TotalSize++
			}
			switch {
			case i < start:
			case len(res.Devices) < req.PageSize:
				res.Devices = append(res.Devices, inv.view(id, e, now))
				last = id
			case res.NextPageToken == "":
				res.NextPageToken = encodePageToken(pageToken{After: last, Query: query})
			}
		}
		e.mu.Unlock()
	}
	inv.mu.RUnlock()
	return res, nil
}

func (inv *Inventory) connectivity(st *pb.DeviceStatus, now time.Time) pb.Connectivity {
	if inv.online(st, now) {
		return pb.Connectivity_CONNECTIVITY_ONLINE
	}
	return pb.Connectivity_CONNECTIVITY_OFFLINE
}

// Update changes the registry fields named in paths ("*" for all), if etag is
// empty or still the device's.
func (inv *Inventory) Update(ctx context.Context, id string, d *pb.Device, paths []string, etag string) (*pb.Device, error) {
	if len(paths) == 0 {
		return nil, &FieldError{Field: "update_mask", Reason: "required; name the fields to change, or *"}
	}
	if slices.Contains(paths, "*") {
		paths = UpdatableFields
	}
	for _, p := range paths {
		if !slices.Contains(UpdatableFields, p) {
			return nil, &FieldError{Field: "update_mask", Reason: fmt.Sprintf("%q cannot be updated; updatable: %s", p, strings.Join(UpdatableFields, ", "))}
		}
	}
	return inv.modify(ctx, id, etag, func(spec *pb.Device) error {
		for _, p := range paths {
			switch p {
			case "profile":
				spec.Profile = d.GetProfile()
			case "model":
				spec.Model = d.GetModel()
			case "manufacturer":
				spec.Manufacturer = d.GetManufacturer()
			case "serial":
				spec.Serial = d.GetSerial()
			case "udi":
				spec.Udi = d.GetUdi()
			case "site":
				spec.Site = d.GetSite()
			case "labels":
				spec.Labels = maps.Clone(d.GetLabels())
			case "rfid_tag":
				spec.RfidTag = d.GetRfidTag()
			case "asset_tag":
				spec.AssetTag = d.GetAssetTag()
			case "risk_class":
				spec.RiskClass = d.GetRiskClass()
			}
		}
		return inv.prepare(id, spec)
	})
}

// Decommission marks a device decommissioned (DeleteDevice).
func (inv *Inventory) Decommission(ctx context.Context, id, etag string) (*pb.Device, error) {
	d, err := inv.modify(ctx, id, etag, func(spec *pb.Device) error {
		if spec.DecommissionTime != nil {
			return ErrDecommissioned
		}
		spec.DecommissionTime = ts(inv.now())
		return nil
	})
	if err == nil {
		inv.decommissioned.Add(1)
	}
	return d, err
}

// modify applies change to a copy of the device's registry part and writes
// it through to etcd, guarded by the etag.
func (inv *Inventory) modify(ctx context.Context, id, etag string, change func(*pb.Device) error) (*pb.Device, error) {
	e, ok := inv.lookup(id)
	if !ok {
		return nil, ErrNotFound
	}
	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.mu.Lock()
	spec, rev := proto.Clone(e.spec).(*pb.Device), e.rev
	e.mu.Unlock()
	if etag != "" && etag != strconv.FormatInt(rev, 10) {
		return nil, ErrConflict
	}
	if err := change(spec); err != nil {
		return nil, err
	}
	spec.UpdateTime = ts(inv.now())
	ctx, cancel := inv.ctx(ctx)
	defer cancel()
	newRev, err := inv.store.updateDevice(ctx, id, spec, rev)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	old := e.spec
	e.spec, e.rev = spec, newRev
	d := inv.view(id, e, inv.now())
	e.mu.Unlock()
	tag, asset := spec.GetRfidTag(), assetKey(spec.GetAssetTag())
	if spec.GetDecommissionTime() != nil {
		// A decommissioned device's tag locates nothing, and its asset tag
		// may go to another device.
		tag, asset = "", ""
	}
	inv.tags.move(id, old.GetRfidTag(), tag)
	inv.assets.move(id, assetKey(old.GetAssetTag()), asset)
	return d, nil
}

var sitePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// prepare completes a device's registry part from its UDI, checks it, and
// checks that no other device has its RFID tag or asset tag.
func (inv *Inventory) prepare(id string, spec *pb.Device) error {
	spec.RfidTag = strings.ToUpper(strings.TrimSpace(spec.GetRfidTag()))
	spec.AssetTag = strings.TrimSpace(spec.GetAssetTag())
	if err := inv.fromUDI(spec); err != nil {
		return err
	}
	if err := validateSpec("device.", spec); err != nil {
		return err
	}
	if other, ok := inv.tags.taken(id, spec.GetRfidTag()); ok {
		return fmt.Errorf("%w: tag %s is on devices/%s; untag it first", ErrAlreadyExists, spec.GetRfidTag(), other)
	}
	if other, ok := inv.assets.taken(id, assetKey(spec.GetAssetTag())); ok {
		return fmt.Errorf("%w: asset tag %s is on devices/%s", ErrAlreadyExists, spec.GetAssetTag(), other)
	}
	return nil
}

// validateSpec checks the registry fields of a device; prefix is the path
// of the device in the request ("device.").
func validateSpec(prefix string, d *pb.Device) error {
	if d.GetProfile() == "" {
		return &FieldError{Field: prefix + "profile", Reason: "required"}
	}
	if err := coap.ValidateProfile(d.GetProfile()); err != nil {
		return &FieldError{Field: prefix + "profile", Reason: err.Error()}
	}
	for _, f := range []struct{ name, value string }{
		{"model", d.GetModel()}, {"manufacturer", d.GetManufacturer()}, {"serial", d.GetSerial()}, {"udi", d.GetUdi()},
		{"asset_tag", d.GetAssetTag()},
	} {
		if err := checkText(f.value); err != nil {
			return &FieldError{Field: prefix + f.name, Reason: err.Error()}
		}
	}
	if d.GetModel() == "" {
		return &FieldError{Field: prefix + "model", Reason: "required"}
	}
	if len(d.GetAssetTag()) > maxAssetTag {
		return &FieldError{Field: prefix + "asset_tag", Reason: fmt.Sprintf("longer than %d bytes", maxAssetTag)}
	}
	if _, ok := pb.RiskClass_name[int32(d.GetRiskClass())]; !ok {
		return &FieldError{Field: prefix + "risk_class", Reason: fmt.Sprintf("%d is not a risk class", d.GetRiskClass())}
	}
	if tag := d.GetRfidTag(); tag != "" && !epcPattern.MatchString(tag) {
		return &FieldError{Field: prefix + "rfid_tag", Reason: fmt.Sprintf("%q is not an EPC: 8 to 64 hex digits", tag)}
	}
	if site := d.GetSite(); site != "" && !sitePattern.MatchString(site) {
		return &FieldError{Field: prefix + "site", Reason: fmt.Sprintf("%q is not a site id: 1-64 of [a-z0-9._-], starting with a letter or digit", site)}
	}
	if len(d.GetLabels()) > maxLabels {
		return &FieldError{Field: prefix + "labels", Reason: fmt.Sprintf("%d labels, at most %d", len(d.GetLabels()), maxLabels)}
	}
	for k, v := range d.GetLabels() {
		if !labelKeyPattern.MatchString(k) {
			return &FieldError{Field: prefix + "labels", Reason: fmt.Sprintf("key %q: want a lower-case letter, then up to 62 of [a-z0-9_.-]", k)}
		}
		if len(v) > 63 || checkText(v) != nil {
			return &FieldError{Field: prefix + "labels", Reason: fmt.Sprintf("value of %q: at most 63 bytes of printable UTF-8", k)}
		}
	}
	return nil
}

func checkText(s string) error {
	if len(s) > coap.MaxStringLen {
		return fmt.Errorf("longer than %d bytes", coap.MaxStringLen)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("not UTF-8")
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("contains a control character")
		}
	}
	return nil
}

// Check completes a device's registry part as Create and Update would (from
// its UDI) and checks it, including that no other device than id has its
// RFID or asset tag, without writing anything.
func (inv *Inventory) Check(id string, d *pb.Device) (*pb.Device, error) {
	if err := validateID("device_id", id); err != nil {
		return nil, err
	}
	spec := proto.CloneOf(d)
	return spec, inv.prepare(id, spec)
}
