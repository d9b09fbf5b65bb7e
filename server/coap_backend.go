package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/coap/gateway"
	"github.com/medfleet/medfleet/inventory"
)

// coapBackend connects the gateway to the inventory, translating the
// inventory's errors to the gateway's: the one place the CoAP boundary does.
type coapBackend struct {
	inv *inventory.Inventory
}

var _ gateway.Backend = coapBackend{}

func (b coapBackend) Register(ctx context.Context, device string, reg *coap.Registration, lifetime time.Duration) (*coap.Desired, error) {
	d, err := b.inv.Register(ctx, device, reg, lifetime)
	return d, coapError(err)
}

func (b coapBackend) UpdateRegistration(ctx context.Context, device string, reg *coap.Registration) (*coap.Desired, error) {
	d, err := b.inv.UpdateRegistration(ctx, device, reg)
	return d, coapError(err)
}

func (b coapBackend) Deregister(ctx context.Context, device string) error {
	return coapError(b.inv.Deregister(ctx, device))
}

func (b coapBackend) Report(ctx context.Context, device string, r *coap.Report) (*coap.Desired, bool, error) {
	res, err := b.inv.Report(ctx, device, r)
	return res.Desired, res.Duplicate, coapError(err)
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
