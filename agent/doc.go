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
//     Profile is also where a real device's sensors would plug in;
//   - the simulator's world (world.go, world_graph.go): a facility described
//     by plain types (World: zones, walkways, reader antennas, device tags),
//     which medfleetd builds from its facility model, so that this package
//     never imports it. Tagged simulated devices walk through it along
//     shortest paths, where their clinical state takes them, or where a test
//     sends them (Simulator.MoveTo, Place, Hide, Release, Position); the
//     simulated readers report the tags in their antennas' zones, and
//     faintly some of those next door;
//   - firmware updates (firmware.go), the states and result codes of LwM2M
//     object 5: the desired state's `fw` starts a download, one GET
//     /fw/{sha256} per Block2 block, interleaved with the reports and
//     resumed from the last saved block after a lost connection or a
//     restart; the image is checked (size, SHA-256, ed25519 signature of
//     its manifest with firmware/manifest), then installed when the server
//     allows it and the device is idle, self-tested, and committed (the
//     agent registers again with the new version) or rolled back. Every
//     change of fw/state or fw/result is reported at once. The update state
//     lives in {state_dir}/firmware.json and the image in
//     {state_dir}/firmware/ (firmware_stage.go). What installing means is an
//     Installer (install.go): commands on a real device, nothing on a
//     simulated one.
//
// A simulated device flashes nothing; its self-test obeys the image. When
// the first 4 KiB of the image (SimDirectiveWindow) hold a line
//
//	medfleet-sim: selftest-fail=F
//
// (F a fraction from 0 to 1; spaces around the line and a \r before its
// newline are allowed), the self-test fails on a device when its draw is
// below F. The draw is h/2^53, h the top 53 bits of the first 8 bytes (big
// endian) of SHA-256(device id + "\n" + the image's sha256 in lower-case
// hex): deterministic, the share F of a fleet, different devices for
// different images. F = 1 fails everywhere; no directive, F = 0 or an F
// that is not a number from 0 to 1 fail nowhere; only the first directive
// counts. SimSelfTestFails computes it for tests.
//
// The package sits just above coap and go-coap's client. It must never import
// server, inventory, etcd, gRPC or the generated API (proto): the agent binary
// has to stay small, and
//
//	go list -deps ./cmd/medfleet-agent | grep -E 'etcd|google.golang.org/grpc$'
//
// must print nothing.
package agent
