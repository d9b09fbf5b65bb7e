package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/medfleet/medfleet/inventory"
	"github.com/medfleet/medfleet/maintenance/program"
	"github.com/medfleet/medfleet/maintenance/recall"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// Where recalls and their matches live in etcd. A match's key is under its
// recall's, so one range read finds a recall's matches.
const (
	recallsPrefix = "/medfleet/v1/recalls/"
	matchesPrefix = "/medfleet/v1/recall-matches/"
	maxRecalls    = 1000 // a request
	maxRecallText = 16 << 10
)

// recallNumber is the FDA's recall number of a product: "Z-0557-04",
// "Z-1234-2023".
var recallNumber = regexp.MustCompile(`^[A-Z]-[0-9]{4}-[0-9]{2,4}$`)

// productCode is an FDA product code: three capital letters.
var productCode = regexp.MustCompile(`^[A-Z]{3}$`)

// recallService implements medfleet.v1.RecallService. Recalls are few and
// read rarely, so it reads etcd on every call and keeps no cache: every
// replica sees the same.
type recallService struct {
	pb.UnimplementedRecallServiceServer
	client *clientv3.Client
	inv    *inventory.Inventory
	prog   *program.Program
	// mu serialises matching on this replica; every write also compares
	// revisions, for other replicas.
	mu  sync.Mutex
	log *slog.Logger
	now func() time.Time
}

func (s *recallService) ImportRecalls(ctx context.Context, req *pb.ImportRecallsRequest) (*pb.ImportRecallsResponse, error) {
	if len(req.GetRecalls()) == 0 {
		return nil, invalidArgument("recalls", "required")
	}
	if len(req.GetRecalls()) > maxRecalls {
		return nil, invalidArgument("recalls", fmt.Sprintf("%d recalls, at most %d a request", len(req.GetRecalls()), maxRecalls))
	}
	seen := map[string]int{}
	for i, r := range req.GetRecalls() {
		if err := checkRecall(fmt.Sprintf("recalls[%d].", i), r); err != nil {
			return nil, err
		}
		if j, ok := seen[r.GetProductResNumber()]; ok {
			return nil, invalidArgument(fmt.Sprintf("recalls[%d].product_res_number", i), fmt.Sprintf("%s is also recalls[%d]", r.GetProductResNumber(), j))
		}
		seen[r.GetProductResNumber()] = i
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fleet := s.fleet()
	resp := &pb.ImportRecallsResponse{}
	for _, in := range req.GetRecalls() {
		r, changed, created, err := s.store(ctx, in, req.GetValidateOnly())
		if err != nil {
			return nil, grpcError(s.log, "ImportRecalls", err)
		}
		switch {
		case created:
			resp.Created++
		case changed:
			resp.Updated++
		default:
			resp.Unchanged++
		}
		found, added, err := s.match(ctx, r, fleet, req.GetValidateOnly())
		if err != nil {
			return nil, grpcError(s.log, "ImportRecalls", err)
		}
		resp.Matches += int32(found)
		resp.NewMatches += int32(added)
	}
	s.log.Info("recalls imported", "created", resp.Created, "updated", resp.Updated, "unchanged", resp.Unchanged,
		"matches", resp.Matches, "new_matches", resp.NewMatches, "validate_only", req.GetValidateOnly())
	return resp, nil
}

// checkRecall checks what a recall must have; prefix is its path in the
// request.
func checkRecall(prefix string, r *pb.Recall) error {
	if !recallNumber.MatchString(r.GetProductResNumber()) {
		return invalidArgument(prefix+"product_res_number", fmt.Sprintf("%q is not an FDA recall number such as Z-0557-04", r.GetProductResNumber()))
	}
	if pc := r.GetProductCode(); pc != "" && !productCode.MatchString(pc) {
		return invalidArgument(prefix+"product_code", fmt.Sprintf("%q is not an FDA product code: three capital letters", pc))
	}
	for _, f := range []struct{ name, v string }{
		{"code_info", r.GetCodeInfo()}, {"product_description", r.GetProductDescription()}, {"reason", r.GetReason()},
		{"root_cause", r.GetRootCause()}, {"action", r.GetAction()}, {"firm", r.GetFirm()}, {"status", r.GetStatus()},
	} {
		if len(f.v) > maxRecallText {
			return invalidArgument(prefix+f.name, fmt.Sprintf("longer than %d bytes", maxRecallText))
		}
	}
	return nil
}

// store writes a recall unless it is known as it is, keeping its first
// import time.
func (s *recallService) store(ctx context.Context, in *pb.Recall, dryRun bool) (r *pb.Recall, changed, created bool, err error) {
	key := recallsPrefix + in.GetProductResNumber()
	r = proto.CloneOf(in)
	r.Name, r.Codes = "recalls/"+in.GetProductResNumber(), nil
	r.PendingMatches, r.ConfirmedMatches, r.DismissedMatches = 0, 0, 0
	cur, rev, err := s.get(ctx, key)
	if err != nil {
		return nil, false, false, err
	}
	now := timestamppb.New(s.now())
	r.ImportTime, r.UpdateTime = now, now
	if cur != nil {
		r.ImportTime, r.UpdateTime = cur.GetImportTime(), cur.GetUpdateTime()
		if proto.Equal(r, cur) {
			return cur, false, false, nil
		}
		r.UpdateTime = now
	}
	if dryRun {
		return r, true, cur == nil, nil
	}
	b, err := proto.Marshal(r)
	if err != nil {
		return nil, false, false, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := s.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return nil, false, false, fmt.Errorf("recalls: %w", err)
	}
	if !resp.Succeeded {
		return nil, false, false, status.Errorf(codes.Aborted, "recall %s changed while it was imported; import again", in.GetProductResNumber())
	}
	return r, true, cur == nil, nil
}

func (s *recallService) get(ctx context.Context, key string) (*pb.Recall, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return nil, 0, fmt.Errorf("recalls: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	r := &pb.Recall{}
	if err := proto.Unmarshal(resp.Kvs[0].Value, r); err != nil {
		return nil, 0, fmt.Errorf("recalls: %s: %w", key, err)
	}
	return r, resp.Kvs[0].ModRevision, nil
}

// fleet is what matching needs of every live device, with the recall
// identity of its catalogue model.
func (s *recallService) fleet() []recall.Candidate {
	models := map[string]*pb.DeviceModel{}
	if s.prog != nil {
		for _, m := range s.prog.Models() {
			models[m.GetModel()] = m
		}
	}
	var out []recall.Candidate
	s.inv.Range(func(d *inventory.Summary) bool {
		if d.Decommissioned {
			return true
		}
		m := models[d.Model]
		out = append(out, recall.Candidate{Device: "devices/" + d.ID, Manufacturer: d.Manufacturer, Model: d.Model,
			Serial: d.Serial, Lot: d.Lot, UDIDI: d.UDIDI, ProductCode: m.GetProductCode(), ModelNumbers: m.GetModelNumbers()})
		return true
	})
	return out
}

// toRecall is what matching reads of a stored recall.
func toRecall(r *pb.Recall) recall.Recall {
	return recall.Recall{ID: r.GetProductResNumber(), ProductCode: r.GetProductCode(), ProductDescription: r.GetProductDescription(),
		CodeInfo: r.GetCodeInfo(), Firm: r.GetFirm(), Codes: recall.ParseCodes(r.GetCodeInfo(), r.GetProductDescription())}
}

// match matches a recall to the fleet: new matches are stored pending,
// pending matches that no longer match are removed, decided ones are kept
// as they are. It returns the matches found and how many were new.
func (s *recallService) match(ctx context.Context, r *pb.Recall, fleet []recall.Candidate, dryRun bool) (found, added int, err error) {
	matches := recall.MatchFleet(toRecall(r), fleet)
	known, err := s.matches(ctx, r.GetProductResNumber())
	if err != nil {
		return 0, 0, err
	}
	byDevice := map[string]*pb.RecallMatch{}
	for _, m := range known {
		byDevice[m.GetDevice()] = m.RecallMatch
	}
	fresh := map[string]bool{}
	var ops []clientv3.Op
	var cmps []clientv3.Cmp
	now := timestamppb.New(s.now())
	for _, m := range matches {
		fresh[m.Device] = true
		if byDevice[m.Device] != nil {
			continue
		}
		added++
		var model, serial, lot string
		s.inv.Lookup(strings.TrimPrefix(m.Device, "devices/"), func(d *inventory.Summary) { model, serial, lot = d.Model, d.Serial, d.Lot })
		pm := &pb.RecallMatch{Name: r.GetName() + "/matches/" + strings.TrimPrefix(m.Device, "devices/"), Recall: r.GetName(), Device: m.Device,
			State: pb.RecallMatchState_RECALL_MATCH_STATE_PENDING, Strength: strength(m.Strength), Basis: m.Basis, CreateTime: now,
			Model: model, Serial: serial, Lot: lot}
		b, err := proto.Marshal(pm)
		if err != nil {
			return 0, 0, err
		}
		key := matchKey(pm.GetName())
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
		ops = append(ops, clientv3.OpPut(key, string(b)))
	}
	for _, m := range known {
		if !fresh[m.GetDevice()] && m.GetState() == pb.RecallMatchState_RECALL_MATCH_STATE_PENDING {
			key := matchKey(m.GetName())
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", m.modRev))
			ops = append(ops, clientv3.OpDelete(key))
		}
	}
	if dryRun || len(ops) == 0 {
		return len(matches), added, nil
	}
	// etcd caps operations per transaction (128 by default): write in
	// batches, each all or nothing.
	for i := 0; i < len(ops); i += 100 {
		j := min(i+100, len(ops))
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := s.client.Txn(tctx).If(cmps[i:j]...).Then(ops[i:j]...).Commit()
		cancel()
		if err != nil {
			return 0, 0, fmt.Errorf("recalls: %w", err)
		}
		if !resp.Succeeded {
			return 0, 0, status.Errorf(codes.Aborted, "matches of %s changed meanwhile; import again", r.GetName())
		}
	}
	return len(matches), added, nil
}

// storedMatch is a match with its etcd revision.
type storedMatch struct {
	*pb.RecallMatch
	modRev int64
}

func matchKey(name string) string {
	recallID, device, _ := strings.Cut(strings.TrimPrefix(name, "recalls/"), "/matches/")
	return matchesPrefix + recallID + "/" + device
}

func strength(s recall.Strength) pb.RecallMatchStrength {
	if s == recall.StrengthStrong {
		return pb.RecallMatchStrength_RECALL_MATCH_STRENGTH_STRONG
	}
	return pb.RecallMatchStrength_RECALL_MATCH_STRENGTH_POSSIBLE
}

// matches reads the matches of a recall, or of every recall with "".
func (s *recallService) matches(ctx context.Context, recallID string) ([]storedMatch, error) {
	prefix := matchesPrefix
	if recallID != "" {
		prefix += recallID + "/"
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := s.client.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("recalls: %w", err)
	}
	out := make([]storedMatch, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		m := &pb.RecallMatch{}
		if err := proto.Unmarshal(kv.Value, m); err != nil {
			return nil, fmt.Errorf("recalls: %s: %w", kv.Key, err)
		}
		out = append(out, storedMatch{m, kv.ModRevision})
	}
	return out, nil
}

// rematch matches every recall to the fleet again: after devices were
// imported.
func (s *recallService) rematch(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	recalls, err := s.recalls(ctx)
	if err != nil {
		s.log.Error("recall matching after an import failed", "err", err)
		return
	}
	fleet := s.fleet()
	added := 0
	for _, r := range recalls {
		_, n, err := s.match(ctx, r, fleet, false)
		if err != nil {
			s.log.Error("recall matching after an import failed", "recall", r.GetName(), "err", err)
			return
		}
		added += n
	}
	if added > 0 {
		s.log.Info("recall matching found new matches", "new_matches", added)
	}
}

func (s *recallService) recalls(ctx context.Context) ([]*pb.Recall, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := s.client.Get(ctx, recallsPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("recalls: %w", err)
	}
	out := make([]*pb.Recall, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		r := &pb.Recall{}
		if err := proto.Unmarshal(kv.Value, r); err != nil {
			return nil, fmt.Errorf("recalls: %s: %w", kv.Key, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// withCounts adds what matching read and the match counts to a recall.
func withCounts(r *pb.Recall, matches []storedMatch) *pb.Recall {
	r = proto.CloneOf(r)
	c := recall.ParseCodes(r.GetCodeInfo(), r.GetProductDescription())
	r.Codes = &pb.RecallCodes{Models: c.Models, Lots: rangeStrings(c.Lots), Serials: rangeStrings(c.Serials), UdiDis: c.DIs, All: c.All}
	for _, m := range matches {
		if m.GetRecall() != r.GetName() {
			continue
		}
		switch m.GetState() {
		case pb.RecallMatchState_RECALL_MATCH_STATE_PENDING:
			r.PendingMatches++
		case pb.RecallMatchState_RECALL_MATCH_STATE_CONFIRMED:
			r.ConfirmedMatches++
		case pb.RecallMatchState_RECALL_MATCH_STATE_DISMISSED:
			r.DismissedMatches++
		}
	}
	return r
}

func rangeStrings(rs []recall.Range) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.From
		if r.To != r.From {
			out[i] += "-" + r.To
		}
	}
	return out
}

func (s *recallService) GetRecall(ctx context.Context, req *pb.GetRecallRequest) (*pb.Recall, error) {
	id, ok := strings.CutPrefix(req.GetName(), "recalls/")
	if !ok || !recallNumber.MatchString(id) {
		return nil, invalidArgument("name", "want recalls/{product_res_number}, as in recalls/Z-0557-04")
	}
	r, _, err := s.get(ctx, recallsPrefix+id)
	if err != nil {
		return nil, grpcError(s.log, "GetRecall", err)
	}
	if r == nil {
		return nil, status.Errorf(codes.NotFound, "recall %s: not found", id)
	}
	matches, err := s.matches(ctx, id)
	if err != nil {
		return nil, grpcError(s.log, "GetRecall", err)
	}
	return withCounts(r, scoped(ctx, s.inv, matches)), nil
}

func (s *recallService) ListRecalls(ctx context.Context, req *pb.ListRecallsRequest) (*pb.ListRecallsResponse, error) {
	recalls, err := s.recalls(ctx)
	if err != nil {
		return nil, grpcError(s.log, "ListRecalls", err)
	}
	matches, err := s.matches(ctx, "")
	if err != nil {
		return nil, grpcError(s.log, "ListRecalls", err)
	}
	matches = scoped(ctx, s.inv, matches)
	var out []*pb.Recall
	for _, r := range recalls {
		if st := req.GetMatchState(); st != pb.RecallMatchState_RECALL_MATCH_STATE_UNSPECIFIED &&
			!slices.ContainsFunc(matches, func(m storedMatch) bool { return m.GetRecall() == r.GetName() && m.GetState() == st }) {
			continue
		}
		out = append(out, withCounts(r, matches))
	}
	slices.SortStableFunc(out, func(a, b *pb.Recall) int {
		if c := b.GetInitiateTime().AsTime().Compare(a.GetInitiateTime().AsTime()); c != 0 {
			return c
		}
		return strings.Compare(a.GetName(), b.GetName())
	})
	page, next, err := offsetPage(len(out), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	return &pb.ListRecallsResponse{Recalls: out[page.from:page.to], NextPageToken: next}, nil
}

// scoped keeps the matches of devices the caller may see.
func scoped(ctx context.Context, inv *inventory.Inventory, ms []storedMatch) []storedMatch {
	site := principalFrom(ctx).Site
	if site == "" {
		return ms
	}
	return slices.DeleteFunc(ms, func(m storedMatch) bool {
		in := false
		inv.Lookup(strings.TrimPrefix(m.GetDevice(), "devices/"), func(d *inventory.Summary) { in = d.Site == site })
		return !in
	})
}

func (s *recallService) ListRecallMatches(ctx context.Context, req *pb.ListRecallMatchesRequest) (*pb.ListRecallMatchesResponse, error) {
	recallID := ""
	if req.GetRecall() != "" {
		id, ok := strings.CutPrefix(req.GetRecall(), "recalls/")
		if !ok || !recallNumber.MatchString(id) {
			return nil, invalidArgument("recall", "want recalls/{product_res_number}, as in recalls/Z-0557-04")
		}
		recallID = id
	}
	if req.GetDevice() != "" {
		if _, err := parseDeviceName("device", req.GetDevice()); err != nil {
			return nil, err
		}
	}
	matches, err := s.matches(ctx, recallID)
	if err != nil {
		return nil, grpcError(s.log, "ListRecallMatches", err)
	}
	var out []*pb.RecallMatch
	for _, m := range scoped(ctx, s.inv, matches) {
		if (req.GetState() == 0 || m.GetState() == req.GetState()) && (req.GetDevice() == "" || m.GetDevice() == req.GetDevice()) {
			out = append(out, m.RecallMatch)
		}
	}
	page, next, err := offsetPage(len(out), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	return &pb.ListRecallMatchesResponse{Matches: out[page.from:page.to], NextPageToken: next}, nil
}

// ConfirmRecallMatch takes the device out of service first (the safe half
// on its own), then opens the recall work order, then records the decision.
// A retry after a failure part way finds the device already out of service
// and the order's absence, and completes.
func (s *recallService) ConfirmRecallMatch(ctx context.Context, req *pb.ConfirmRecallMatchRequest) (*pb.RecallMatch, error) {
	if len(req.GetNote()) > 1024 {
		return nil, invalidArgument("note", "longer than 1024 bytes")
	}
	return s.decide(ctx, req.GetName(), func(m *pb.RecallMatch, r *pb.Recall) error {
		device := strings.TrimPrefix(m.GetDevice(), "devices/")
		if _, err := s.inv.SetAvailability(ctx, device, pb.Availability_AVAILABILITY_OUT_OF_SERVICE); err != nil &&
			!errors.Is(err, inventory.ErrDecommissioned) {
			return err
		}
		m.State = pb.RecallMatchState_RECALL_MATCH_STATE_CONFIRMED
		if s.prog == nil {
			return nil
		}
		// A retry after the decision failed to be stored finds the order
		// the first attempt opened.
		for _, o := range s.prog.WorkOrders(m.GetDevice(), pb.WorkOrderState_WORK_ORDER_STATE_UNSPECIFIED) {
			if o.GetType() == pb.WorkOrderType_WORK_ORDER_TYPE_RECALL && strings.HasPrefix(o.GetDescription(), recallOrderPrefix(r)) {
				m.WorkOrder = o.GetName()
				return nil
			}
		}
		o, err := s.prog.CreateWorkOrder(ctx, &pb.WorkOrder{Device: m.GetDevice(), Type: pb.WorkOrderType_WORK_ORDER_TYPE_RECALL,
			Description: recallOrderText(r, req.GetNote())}, principalFrom(ctx).Name())
		if err != nil {
			return fmt.Errorf("the device is out of service, but the recall work order was not opened: %w", err)
		}
		m.WorkOrder = o.GetName()
		return nil
	}, req.GetNote())
}

// recallOrderPrefix starts the description of a recall's work orders.
func recallOrderPrefix(r *pb.Recall) string { return "Recall " + r.GetProductResNumber() + " " }

// recallOrderText is the description of a recall work order.
func recallOrderText(r *pb.Recall, note string) string {
	s := fmt.Sprintf("%s(%s): %s", recallOrderPrefix(r), r.GetFirm(), r.GetReason())
	if a := r.GetAction(); a != "" {
		s += "\nAction: " + a
	}
	if note != "" {
		s += "\nNote: " + note
	}
	if len(s) > 4000 {
		s = s[:4000]
	}
	return s
}

func (s *recallService) DismissRecallMatch(ctx context.Context, req *pb.DismissRecallMatchRequest) (*pb.RecallMatch, error) {
	if strings.TrimSpace(req.GetNote()) == "" {
		return nil, invalidArgument("note", "required: say why the device is not affected")
	}
	if len(req.GetNote()) > 1024 {
		return nil, invalidArgument("note", "longer than 1024 bytes")
	}
	return s.decide(ctx, req.GetName(), func(m *pb.RecallMatch, _ *pb.Recall) error {
		m.State = pb.RecallMatchState_RECALL_MATCH_STATE_DISMISSED
		return nil
	}, req.GetNote())
}

// decide applies a person's decision to a pending match and stores it,
// guarded by the match's revision.
func (s *recallService) decide(ctx context.Context, name string, apply func(*pb.RecallMatch, *pb.Recall) error, note string) (*pb.RecallMatch, error) {
	recallID, device, ok := strings.Cut(strings.TrimPrefix(name, "recalls/"), "/matches/")
	if !ok || !strings.HasPrefix(name, "recalls/") || !recallNumber.MatchString(recallID) || device == "" {
		return nil, invalidArgument("name", "want recalls/{recall}/matches/{device}")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := matchKey(name)
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	resp, err := s.client.Get(gctx, key)
	cancel()
	if err != nil {
		return nil, grpcError(s.log, "RecallMatch", fmt.Errorf("recalls: %w", err))
	}
	m := &pb.RecallMatch{}
	if len(resp.Kvs) == 0 || proto.Unmarshal(resp.Kvs[0].Value, m) != nil || len(scoped(ctx, s.inv, []storedMatch{{m, 0}})) == 0 {
		return nil, status.Errorf(codes.NotFound, "%s: not found", name)
	}
	if m.GetState() != pb.RecallMatchState_RECALL_MATCH_STATE_PENDING {
		return nil, status.Errorf(codes.FailedPrecondition, "%s is already %s", name, matchStateName(m.GetState()))
	}
	r, _, err := s.get(ctx, recallsPrefix+recallID)
	if err != nil {
		return nil, grpcError(s.log, "RecallMatch", err)
	}
	if r == nil {
		return nil, status.Errorf(codes.NotFound, "recall %s: not found", recallID)
	}
	if err := apply(m, r); err != nil {
		return nil, grpcError(s.log, "RecallMatch", err)
	}
	m.DecideTime, m.DecidedBy, m.Note = timestamppb.New(s.now()), principalFrom(ctx).Name(), note
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	tresp, err := s.client.Txn(wctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)).
		Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return nil, grpcError(s.log, "RecallMatch", fmt.Errorf("recalls: %w", err))
	}
	if !tresp.Succeeded {
		return nil, status.Errorf(codes.Aborted, "%s changed meanwhile; look again", name)
	}
	s.log.Info("recall match decided", "match", name, "state", matchStateName(m.GetState()), "by", m.GetDecidedBy(), "work_order", m.GetWorkOrder())
	return m, nil
}

func matchStateName(s pb.RecallMatchState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "RECALL_MATCH_STATE_"))
}
