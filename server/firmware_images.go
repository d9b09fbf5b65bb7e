package server

import (
	"context"
	"errors"

	"github.com/medfleet/medfleet/coap/gateway"
	"github.com/medfleet/medfleet/firmware/blob"
)

// Firmware serves an image from the blob store.
func (b coapBackend) Firmware(ctx context.Context, sha string) (gateway.Image, error) {
	img, err := b.images.Image(sha)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, gateway.ErrNoImage
	}
	if err != nil {
		return nil, err
	}
	return img, nil
}
