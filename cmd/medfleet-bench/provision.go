package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

const (
	// provisionConcurrency is how many devices are provisioned at once,
	// over one connection.
	provisionConcurrency = 32
	// provisionTimeout bounds each call.
	provisionTimeout = 30 * time.Second
	// provisionProgress is how often a progress line is written.
	provisionProgress = 10_000
)

// provision gives every device, before a DTLS run, what a real device has
// before it first connects: a registry entry (DeviceService.CreateDevice,
// with the profile, model and serial it registers with; one that exists
// already is fine) and a pre-shared key (CredentialService.
// IssueDeviceCredential, kind PSK, which retires any earlier one). It calls
// the gRPC API at --grpc, plaintext and unauthenticated, as medfleetd serves
// it with --insecure-grpc, provisionConcurrency devices at a time on one
// connection, and sets each device's psk.
func provision(ctx context.Context, cfg *Config, devs []*device) error {
	cc, err := grpc.NewClient(cfg.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("--grpc: %w", err)
	}
	defer cc.Close()
	devices, creds := pb.NewDeviceServiceClient(cc), pb.NewCredentialServiceClient(cc)

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	start := time.Now()
	var next, done atomic.Int64
	var wg sync.WaitGroup
	for range min(provisionConcurrency, len(devs)) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(devs) {
					return
				}
				if err := provisionDevice(ctx, devices, creds, devs[i]); err != nil {
					cancel(fmt.Errorf("%s: %w", devs[i].id, err))
					return
				}
				if n := done.Add(1); cfg.Progress != nil && (n%provisionProgress == 0 || int(n) == len(devs)) {
					fmt.Fprintf(cfg.Progress, "medfleet-bench: %d of %d devices provisioned in %.1f s\n", n, len(devs), time.Since(start).Seconds())
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil { // a device's error, or the run's end
		return fmt.Errorf("provisioning over --grpc %s: %w", cfg.GRPC, err)
	}
	return nil
}

// provisionDevice creates one device and issues its PSK.
func provisionDevice(ctx context.Context, devices pb.DeviceServiceClient, creds pb.CredentialServiceClient, d *device) error {
	reg := d.registration()
	cctx, cancel := context.WithTimeout(ctx, provisionTimeout)
	defer cancel()
	_, err := devices.CreateDevice(cctx, &pb.CreateDeviceRequest{
		DeviceId: d.id,
		Device:   &pb.Device{Profile: reg.Profile, Model: reg.Model, Serial: reg.Serial},
	})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("CreateDevice: %w", err)
	}
	ictx, cancel := context.WithTimeout(ctx, provisionTimeout)
	defer cancel()
	resp, err := creds.IssueDeviceCredential(ictx, &pb.IssueDeviceCredentialRequest{
		Device: "devices/" + d.id,
		Kind:   pb.CredentialKind_CREDENTIAL_KIND_PSK,
	})
	if err != nil {
		return fmt.Errorf("IssueDeviceCredential: %w", err)
	}
	if len(resp.GetPsk()) == 0 {
		return fmt.Errorf("IssueDeviceCredential: no psk in the response")
	}
	d.psk = resp.GetPsk()
	return nil
}
