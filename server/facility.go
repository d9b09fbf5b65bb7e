package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/medfleet/medfleet/internal/etcdview"
	"github.com/medfleet/medfleet/inventory/facility"
	"github.com/medfleet/medfleet/inventory/location"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// facilityPrefix holds the facility document: one key, "current".
const (
	facilityPrefix = "/medfleet/v1/facility/"
	facilityKey    = facilityPrefix + "current"
)

// facilities keeps the facility document in etcd and the location engine's
// model of it in step on every replica.
type facilities struct {
	client *clientv3.Client
	view   *etcdview.View[*pb.Facility]
	engine *location.Engine
	log    *slog.Logger
}

func newFacilities(client *clientv3.Client, engine *location.Engine, log *slog.Logger) *facilities {
	return &facilities{client: client, engine: engine, log: log,
		view: etcdview.New(client, facilityPrefix, etcdview.Proto[pb.Facility], log)}
}

// Load reads the document and hands the engine its model.
func (f *facilities) Load(ctx context.Context) error {
	if _, err := f.view.Load(ctx); err != nil {
		return err
	}
	f.apply()
	return nil
}

// Run follows the document until ctx ends, applying every change.
func (f *facilities) Run(ctx context.Context) error {
	go func() { _ = f.view.Run(ctx) }()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, rev, ok := f.view.Get("current"); ok && rev != last {
				last = rev
				f.apply()
			}
		}
	}
}

// apply parses the stored document into the engine's model.
func (f *facilities) apply() {
	doc, _, ok := f.view.Get("current")
	if !ok {
		return
	}
	fac, err := facility.Parse([]byte(doc.GetYaml()))
	if err != nil { // it was valid when applied
		f.log.Error("the stored facility no longer parses; keeping the previous one", "err", err)
		return
	}
	f.engine.SetFacility(fac)
}

// Get returns the document.
func (f *facilities) Get() (*pb.Facility, error) {
	doc, rev, ok := f.view.Get("current")
	if !ok {
		return nil, fmt.Errorf("%w: no facility has been applied (medfleetctl facility apply -f hospital.yaml)", location.ErrNotFound)
	}
	doc = proto.Clone(doc).(*pb.Facility)
	doc.Etag = strconv.FormatInt(rev, 10)
	return doc, nil
}

// Apply checks a document and, unless validateOnly, stores it.
func (f *facilities) Apply(ctx context.Context, yaml, etag string, validateOnly bool) (*pb.Facility, error) {
	fac, err := facility.Parse([]byte(yaml))
	if err != nil {
		return nil, err
	}
	doc := &pb.Facility{Yaml: yaml, Zones: int32(fac.Zones()), Readers: int32(fac.Readers()), AccessPoints: int32(fac.AccessPoints()),
		UpdateTime: timestamppb.Now()}
	if validateOnly {
		return doc, nil
	}
	val, err := proto.Marshal(doc)
	if err != nil {
		return nil, err
	}
	txn := f.client.Txn(ctx)
	if etag != "" {
		rev, err := strconv.ParseInt(etag, 10, 64)
		if err != nil {
			return nil, &location.FieldError{Field: "etag", Reason: fmt.Sprintf("%q is not an etag this server returned", etag)}
		}
		txn = txn.If(clientv3.Compare(clientv3.ModRevision(facilityKey), "=", rev))
	}
	resp, err := txn.Then(clientv3.OpPut(facilityKey, string(val))).Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		return nil, errFacilityConflict
	}
	f.view.Put("current", doc, resp.Header.Revision)
	f.engine.SetFacility(fac)
	doc = proto.Clone(doc).(*pb.Facility)
	doc.Etag = strconv.FormatInt(resp.Header.Revision, 10)
	return doc, nil
}

var errFacilityConflict = errors.New("the facility changed since it was read")
