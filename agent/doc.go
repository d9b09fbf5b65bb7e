// Package agent is the device side of Medfleet's protocol (v1): the loop that
// runs on a medical device, or many times over in one process as a simulator.
//
// It owns:
//
//   - the protocol loop (agent.go, over one CoAP client per device in
//     link.go): register with POST /rd, report SenML packs with POST /dp,
//     heartbeat with POST /rd/{device} when nothing else was sent for half
//     the registration lifetime, deregister with DELETE /rd/{device} on a
//     graceful stop, and follow the server's desired state (acknowledged
//     sequence number, report interval);
//   - the transport (link.go): CoAP over DTLS 1.2 by default, a session per
//     connection with a PSK (identity = device id) or a certificate from
//     Medfleet's device CA, or plain CoAP when Config.Insecure says so;
//   - the device's credential (credentials.go): the credentials file, read
//     again for every new session so that a rotated credential takes effect,
//     and enrolment (enrol.go): a one-time token traded for a credential
//     with POST /bs over a session that authenticates only the server;
//   - retries with jittered exponential backoff (backoff.go), and one
//     goroutine for the retransmissions of many connections (ticker.go);
//   - the bounded offline queue of unacknowledged reports, on disk or in
//     memory (queue.go), and the device state file that lets a restarted agent
//     continue its sequence numbers and cumulative counters (state.go);
//   - simulated device profiles: infusion pump, CPAP, RFID reader
//     (profile*.go), and the simulator that runs many agents (simulator.go).
//     Profile is also where a real device's sensors would plug in.
//
// Firmware updates (GET /fw/{sha256}, verify, install when idle) will live
// here too; Agent.follow is where a desired firmware is picked up.
//
// The package sits just above coap and go-coap's client. It must never import
// server, inventory, etcd, gRPC or the generated API (proto): the agent binary
// has to stay small, and
//
//	go list -deps ./cmd/medfleet-agent | grep -E 'etcd|google.golang.org/grpc$'
//
// must print nothing.
package agent
