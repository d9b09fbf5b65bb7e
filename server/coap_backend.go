package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/coap/gateway"
	"github.com/medfleet/medfleet/credentials"
	"github.com/medfleet/medfleet/firmware/blob"
	"github.com/medfleet/medfleet/firmware/rollout"
	"github.com/medfleet/medfleet/internal/pki"
	"github.com/medfleet/medfleet/inventory"
	"github.com/medfleet/medfleet/inventory/location"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// coapBackend connects the gateway to the inventory and the credentials,
// translating their errors to the gateway's: the one place the CoAP
// boundary does. It audits what devices change that matters: registration,
// deregistration, enrolment.
type coapBackend struct {
	inv   *inventory.Inventory
	creds *credentials.Store // nil when DTLS is off
	audit auditLog
	// serverCA signs medfleetd's certificate, which enrolled devices check.
	serverCA *pki.CA
	// images serves GET /fw; rollouts say which image a device is offered.
	images   *blob.Store
	rollouts *rollout.Controller
	// locations hears readers' sightings and devices' access points.
	locations *location.Engine
	log       *slog.Logger
}

var _ gateway.Backend = coapBackend{}

func (b coapBackend) Register(ctx context.Context, device string, reg *coap.Registration, lifetime time.Duration) (*coap.Desired, error) {
	d, err := b.inv.Register(ctx, device, reg, lifetime)
	if err == nil {
		b.record(ctx, device, "device.register", "devices/"+device, fmt.Sprintf("fw=%s lt=%d", reg.Firmware, int(lifetime.Seconds())))
	}
	return b.withFirmware(device, d), coapError(err)
}

func (b coapBackend) UpdateRegistration(ctx context.Context, device string, reg *coap.Registration) (*coap.Desired, error) {
	d, err := b.inv.UpdateRegistration(ctx, device, reg)
	return b.withFirmware(device, d), coapError(err)
}

// withFirmware adds to a desired state the image a rollout offers the
// device, if any.
func (b coapBackend) withFirmware(device string, d *coap.Desired) *coap.Desired {
	if d == nil || b.rollouts == nil || !b.rollouts.Offers(device) {
		return d
	}
	b.inv.Lookup(device, func(s *inventory.Summary) {
		d.Firmware = b.rollouts.Offer(device, s.Site, s.InUse)
	})
	return d
}

func (b coapBackend) Deregister(ctx context.Context, device string) error {
	err := b.inv.Deregister(ctx, device)
	if err == nil {
		b.record(ctx, device, "device.deregister", "devices/"+device, "")
	}
	return coapError(err)
}

// Enrol redeems a one-time token and issues the credential the device
// asked for.
func (b coapBackend) Enrol(ctx context.Context, device string, r *coap.EnrolRequest) (*coap.EnrolResponse, error) {
	if b.creds == nil {
		return nil, fmt.Errorf("%w: enrolment is not served", gateway.ErrForbidden)
	}
	if d, err := b.inv.Get(device); err == nil && d.GetDecommissionTime() != nil {
		return nil, fmt.Errorf("%w: the device is decommissioned", gateway.ErrForbidden)
	}
	enrollment, err := b.creds.Redeem(ctx, r.Token, device)
	if errors.Is(err, credentials.ErrInvalidToken) {
		b.log.Warn("enrolment refused", "device", device, "peer", gateway.Peer(ctx))
		return nil, fmt.Errorf("%w: the enrolment token is invalid, expired, used, or for another device", gateway.ErrForbidden)
	}
	if err != nil {
		return nil, err
	}
	resp := &coap.EnrolResponse{Kind: r.Kind, CA: b.serverCA.Cert.Raw}
	switch r.Kind {
	case coap.KindPSK:
		_, resp.PSK, err = b.creds.IssuePSK(ctx, device, enrollment)
	case coap.KindCertificate:
		var cert *x509.Certificate
		if _, cert, err = b.creds.IssueCertificate(ctx, device, enrollment, r.CSR); err == nil {
			resp.Certificate = cert.Raw
		}
	}
	var fe *credentials.FieldError
	if errors.As(err, &fe) {
		return nil, &coap.FieldError{Field: fe.Field, Err: errors.New(fe.Reason)}
	}
	if err != nil {
		return nil, err
	}
	b.record(ctx, device, "device.enrol", "devices/"+device+"/credential", enrollment+" kind="+r.Kind)
	return resp, nil
}

// record appends a device event to the audit log. The event has happened;
// failing to record it is an error an operator must see, but not the
// device's problem.
func (b coapBackend) record(ctx context.Context, device, action, target, detail string) {
	if b.audit == nil {
		return
	}
	rec := &pb.AuditRecord{Actor: "devices/" + device, Role: "device", Action: action, Target: target,
		Source: gateway.Peer(ctx), Outcome: "OK", Detail: detail}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := b.audit.Append(actx, rec); err != nil {
		b.log.Error("cannot append to the audit log", "action", action, "device", device, "err", err)
	}
}

func (b coapBackend) Report(ctx context.Context, device string, r *coap.Report) (*coap.Desired, bool, error) {
	res, err := b.inv.Report(ctx, device, r)
	if err == nil && !res.Duplicate && !res.OutOfOrder && b.locations != nil {
		now := time.Now()
		if len(r.Sightings) > 0 {
			b.locations.Sightings(device, r.Sightings, now)
		}
		if r.WiFiBSSID != "" {
			b.locations.WiFi(device, r.WiFiBSSID, now)
		}
	}
	return b.withFirmware(device, res.Desired), res.Duplicate || res.OutOfOrder, coapError(err)
}

func coapError(err error) error {
	var fe *inventory.FieldError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, inventory.ErrNotRegistered), errors.Is(err, inventory.ErrNotFound):
		return gateway.ErrNotRegistered
	case errors.Is(err, inventory.ErrDecommissioned):
		return fmt.Errorf("%w: the device is decommissioned", gateway.ErrForbidden)
	case errors.As(err, &fe):
		return &coap.FieldError{Field: fe.Field, Err: errors.New(fe.Reason)}
	}
	return err
}
