// Package inventory owns the device registry and the devices' hot state.
//
// Every device lives in memory: its registry part (the API's Device message
// without status), written through to etcd on every mutation with optimistic
// concurrency on the key's ModRevision, and its status (usage, sequence
// numbers, clinical state, liveness), updated by the CoAP gateway on every
// report and checkpointed to etcd in batches. A crash loses at most one
// checkpoint window of status, which the agents' next reports restore: they
// send cumulative counters with sequence numbers and keep unconfirmed reports.
//
// etcd layout, under one prefix:
//
//	/medfleet/v1/devices/{id}     medfleet.v1.Device, status cleared
//	/medfleet/v1/status/{id}      medfleet.v1.DeviceStatus, output-only fields cleared
//	/medfleet/v1/requests/{rid}   device id a CreateDevice request_id made (24 h lease)
//
// inventory imports proto, coap and internal packages only from Medfleet; it must not import
// server, the gRPC server packages, or the gateway.
package inventory
