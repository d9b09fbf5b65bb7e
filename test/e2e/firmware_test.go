package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/medfleet/medfleet/agent"
	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/firmware/blob"
	"github.com/medfleet/medfleet/firmware/manifest"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// The pump models of the simulated fleet (agent/simulator.go), which the
// images of this test are built for.
var pumpModels = []string{"BD Alaris 8100", "Baxter Novum IQ LVP", "ICU Medical Plum 360"}

// TestFirmwareRollout runs medfleetd as a process and 200 simulated devices
// over DTLS in the test, and rolls firmware out to the fleet's pumps:
//
//   - a good image goes through a canary and two waves to every pump;
//     pumps held in use are not updated until they are free, and the
//     rollout says it waits on them (clinical hold); medfleetd is killed
//     mid-rollout and the rollout finishes after its restart, no pump
//     installing twice;
//   - a bad image (its self-test fails) pauses the rollout at the canary,
//     whose pumps roll back, and goes no further;
//   - an image with a wrong signature is refused at upload, and, forged
//     into the store behind medfleetd's back, refused by the devices.
func TestFirmwareRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end rollout of 200 devices")
	}
	dir := t.TempDir()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	keysFile := filepath.Join(dir, "signing.pub")
	if err := os.WriteFile(keysFile, manifest.MarshalPublicKey(pub), 0o600); err != nil {
		t.Fatal(err)
	}
	grpcAddr, coapAddr, httpAddr, etcdAddr := freeTCP(t), freeUDP(t), freeTCP(t), freeTCP(t)
	dataDir := filepath.Join(dir, "data")
	config := filepath.Join(dir, "medfleetd.yaml")
	yaml := fmt.Sprintf(`data_dir: %s
etcd:
  listen_client: http://%s
  listen_peer: http://%s
grpc:
  listen: %s
coap:
  dtls_listen: %s
http:
  listen: %s
inventory:
  report_interval: 1s
  checkpoint_interval: 200ms
firmware:
  trusted_keys: %s
rollouts:
  tick: 200ms
`, dataDir, etcdAddr, freeTCP(t), grpcAddr, coapAddr, httpAddr, keysFile)
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	server := start(t, dir, "medfleetd", "--config", config)
	waitHealthy(t, httpAddr)
	conn := dialAPI(t, grpcAddr, dataDir)
	devices, creds := pb.NewDeviceServiceClient(conn), pb.NewCredentialServiceClient(conn)
	fw, rollouts := pb.NewFirmwareServiceClient(conn), pb.NewRolloutServiceClient(conn)

	// The fleet enrols over DTLS as a hospital's would: each device is
	// created, then given a one-time token.
	caPEM, err := os.ReadFile(filepath.Join(dataDir, "tls", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	fleet := map[string]agent.Config{} // filled before the simulator runs
	sim, err := agent.NewSimulator(agent.SimConfig{
		Server: coapAddr, Devices: 200, StateDir: filepath.Join(dir, "sim"), Interval: time.Second,
		Lifetime: 30 * time.Second, TimeScale: 3600, Seed: 7, CA: caPEM, FirmwareKeys: manifest.MarshalPublicKey(pub),
		Enroll: func(ctx context.Context, device string) (string, error) {
			d := fleet[device]
			if _, err := devices.CreateDevice(ctx, &pb.CreateDeviceRequest{DeviceId: device, Device: &pb.Device{Profile: d.Profile, Model: d.Model, Serial: d.Serial}}); err != nil &&
				status.Code(err) != codes.AlreadyExists {
				return "", err
			}
			resp, err := creds.CreateEnrollment(ctx, &pb.CreateEnrollmentRequest{Device: "devices/" + device})
			return resp.GetToken(), err
		},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range sim.Devices() {
		fleet[d.DeviceID] = d
	}
	simCtx, stopSim := context.WithCancel(context.Background())
	simDone := make(chan error, 1)
	go func() { simDone <- sim.Run(simCtx) }()
	t.Cleanup(func() { stopSim(); <-simDone })

	var pumps []string
	oldVersion := map[string]string{}
	for _, d := range sim.Devices() {
		if slices.Contains(pumpModels, d.Model) {
			pumps = append(pumps, d.DeviceID)
			oldVersion[d.DeviceID] = d.Firmware
		}
	}
	ctx := context.Background()
	eventually(t, 90*time.Second, "200 devices online", func() (bool, string) {
		resp, err := devices.ListDevices(ctx, &pb.ListDevicesRequest{Filter: "connectivity = ONLINE", PageSize: 1})
		return err == nil && resp.GetTotalSize() == 200, fmt.Sprintf("%d online, err %v", resp.GetTotalSize(), err)
	})

	// A wrong signature is refused at upload, and nothing is kept.
	good := image(t, "10.0.0", "")
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := upload(ctx, fw, good, "10.0.0", manifest.Sign(other, mf(good, "10.0.0"))); status.Code(err) != codes.InvalidArgument ||
		!strings.Contains(err.Error(), "metadata.signature") {
		t.Fatalf("upload signed by an untrusted key: %v, want InvalidArgument naming metadata.signature", err)
	}
	if list, err := fw.ListArtifacts(ctx, &pb.ListArtifactsRequest{}); err != nil || len(list.GetArtifacts()) != 0 {
		t.Fatalf("after a refused upload: %v, %v; want no artifact", list, err)
	}
	art, err := upload(ctx, fw, good, "10.0.0", manifest.Sign(priv, mf(good, "10.0.0")))
	if err != nil {
		t.Fatal(err)
	}

	// The good image: a canary of 3, then half, then every pump.
	soak := durationpb.New(time.Second)
	r, err := rollouts.CreateRollout(ctx, &pb.CreateRolloutRequest{RolloutId: "good", Rollout: &pb.Rollout{
		Artifact: art.GetName(), DeviceTimeout: durationpb.New(2 * time.Minute),
		Waves: []*pb.Wave{{Devices: 3, Soak: soak}, {CumulativePercent: 50, Soak: soak}, {CumulativePercent: 100}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if r.GetCounts().GetTotal() != int32(len(pumps)) {
		t.Fatalf("rollout took %d devices, want the %d pumps", r.GetCounts().GetTotal(), len(pumps))
	}
	// Four pumps of the last wave go on patients before they are offered
	// the image.
	last, err := rollouts.ListRolloutDevices(ctx, &pb.ListRolloutDevicesRequest{Rollout: "rollouts/good", Wave: 3, PageSize: 1000})
	if err != nil || len(last.GetDevices()) < 4 {
		t.Fatalf("last wave: %v, %v", last, err)
	}
	var held []string
	for _, d := range last.GetDevices()[:4] {
		held = append(held, d.GetDevice())
		sim.SetInUse(d.GetDevice(), true)
	}

	// Kill medfleetd once the second wave has started.
	eventually(t, 2*time.Minute, "wave 2 started", func() (bool, string) {
		r, err := rollouts.GetRollout(ctx, &pb.GetRolloutRequest{Name: "rollouts/good"})
		return err == nil && r.GetCurrentWave() >= 1, rolloutState(r, err)
	})
	server.stop(t, syscall.SIGKILL)
	start(t, dir, "medfleetd", "--config", config)
	waitHealthy(t, httpAddr)
	conn = dialAPI(t, grpcAddr, dataDir)
	fw, rollouts = pb.NewFirmwareServiceClient(conn), pb.NewRolloutServiceClient(conn)

	// Every pump but the held ones updates; the rollout then waits on them.
	eventually(t, 3*time.Minute, "every free pump updated, the rollout in clinical hold", func() (bool, string) {
		r, err := rollouts.GetRollout(ctx, &pb.GetRolloutRequest{Name: "rollouts/good"})
		if err != nil {
			return false, err.Error()
		}
		for _, id := range pumps {
			want := "10.0.0"
			if slices.Contains(held, id) {
				want = oldVersion[id]
			}
			if s, _ := sim.Firmware(id); s.Running != want {
				return false, fmt.Sprintf("%s runs %s, want %s (%+v); %s", id, s.Running, want, s, rolloutState(r, nil))
			}
		}
		return r.GetPauseReason() == pb.PauseReason_PAUSE_REASON_CLINICAL_HOLD, rolloutState(r, nil)
	})
	for _, id := range held {
		sim.SetInUse(id, false)
	}
	eventually(t, 2*time.Minute, "rollout completed", func() (bool, string) {
		r, err := rollouts.GetRollout(ctx, &pb.GetRolloutRequest{Name: "rollouts/good"})
		return err == nil && r.GetState() == pb.RolloutState_ROLLOUT_STATE_COMPLETED, rolloutState(r, err)
	})
	r, _ = rollouts.GetRollout(ctx, &pb.GetRolloutRequest{Name: "rollouts/good"})
	if n := r.GetCounts(); n.GetSucceeded() != int32(len(pumps)) || n.GetFailed()+n.GetTimedOut() != 0 {
		t.Errorf("good rollout counts %v, want all %d succeeded", n, len(pumps))
	}
	for _, id := range pumps {
		if s, _ := sim.Firmware(id); s.Running != "10.0.0" || s.Installs != 1 {
			t.Errorf("%s: runs %s after %d installs, want 10.0.0 after 1", id, s.Running, s.Installs)
		}
	}

	// The bad image fails its self-test everywhere: the canary pauses the
	// rollout, its pumps roll back, no other pump is offered it.
	bad := image(t, "10.0.1", "medfleet-sim: selftest-fail=1\n")
	badArt, err := upload(ctx, fw, bad, "10.0.1", manifest.Sign(priv, mf(bad, "10.0.1")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rollouts.CreateRollout(ctx, &pb.CreateRolloutRequest{RolloutId: "bad", Rollout: &pb.Rollout{
		Artifact: badArt.GetName(), Waves: []*pb.Wave{{Devices: 3}, {CumulativePercent: 100}},
	}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "bad rollout paused by its canary", func() (bool, string) {
		r, err := rollouts.GetRollout(ctx, &pb.GetRolloutRequest{Name: "rollouts/bad"})
		return err == nil && r.GetPauseReason() == pb.PauseReason_PAUSE_REASON_ERROR_THRESHOLD, rolloutState(r, err)
	})
	// The canary devices that installed it failed their self-test and run
	// 10.0.0 again; the pause withholds the install from the others, which
	// keep the image downloaded.
	eventually(t, 30*time.Second, "canary rolled back", func() (bool, string) {
		rolledBack := 0
		for _, d := range rolloutDevices(t, rollouts, "bad", 1) {
			s, _ := sim.Firmware(d.GetDevice())
			if s.Running != "10.0.0" || s.State == coap.FWUpdating {
				return false, fmt.Sprintf("%s: %+v", d.GetDevice(), s)
			}
			if s.Result == coap.FWResultFailed {
				rolledBack++
			}
		}
		return rolledBack > 0, fmt.Sprintf("%d rolled back", rolledBack)
	})
	r, _ = rollouts.GetRollout(ctx, &pb.GetRolloutRequest{Name: "rollouts/bad"})
	if r.GetFailuresByResult()[coap.FWResultFailed] < 1 || r.GetWaves()[1].GetCounts().GetQueued() != r.GetWaves()[1].GetCounts().GetTotal() {
		t.Errorf("bad rollout: failures %v, wave 2 %v; want result 8 failures and wave 2 untouched", r.GetFailuresByResult(), r.GetWaves()[1].GetCounts())
	}
	for _, id := range pumps {
		if s, _ := sim.Firmware(id); s.Running != "10.0.0" {
			t.Errorf("%s runs %s after the bad rollout", id, s.Running)
		}
	}
	if _, err := rollouts.AbortRollout(ctx, &pb.AbortRolloutRequest{Name: "rollouts/bad", Reason: "self-test fails"}); err != nil {
		t.Fatal(err)
	}

	// A forged image: bytes and a record written behind medfleetd's back,
	// signed by a key the devices do not trust. They refuse it (result 5).
	forged := image(t, "10.0.2", "")
	store, err := blob.Open(filepath.Join(dataDir, "firmware"))
	if err != nil {
		t.Fatal(err)
	}
	sha, size, err := store.Put(bytes.NewReader(forged), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	rec := &pb.Artifact{Name: "artifacts/" + sha, Version: "10.0.2", Models: pumpModels, Sha256: sha, SizeBytes: size,
		Signature: manifest.Sign(other, mf(forged, "10.0.2"))}
	etcd, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdAddr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Close()
	val, _ := proto.Marshal(rec)
	if _, err := etcd.Put(ctx, "/medfleet/v1/artifacts/"+sha, string(val)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the forged record seen", func() (bool, string) {
		_, err := fw.GetArtifact(ctx, &pb.GetArtifactRequest{Name: rec.GetName()})
		return err == nil, fmt.Sprint(err)
	})
	if _, err := rollouts.CreateRollout(ctx, &pb.CreateRolloutRequest{RolloutId: "forged", Rollout: &pb.Rollout{
		Artifact: rec.GetName(), Waves: []*pb.Wave{{Devices: 3}, {CumulativePercent: 100}},
	}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "forged rollout paused by its canary", func() (bool, string) {
		r, err := rollouts.GetRollout(ctx, &pb.GetRolloutRequest{Name: "rollouts/forged"})
		return err == nil && r.GetPauseReason() == pb.PauseReason_PAUSE_REASON_ERROR_THRESHOLD, rolloutState(r, err)
	})
	r, _ = rollouts.GetRollout(ctx, &pb.GetRolloutRequest{Name: "rollouts/forged"})
	if r.GetFailuresByResult()[coap.FWResultIntegrity] < 1 {
		t.Errorf("forged rollout failures %v, want result 5 (integrity)", r.GetFailuresByResult())
	}
	for _, id := range pumps {
		if s, _ := sim.Firmware(id); s.Running != "10.0.0" {
			t.Errorf("%s runs %s: a forged image was installed", id, s.Running)
		}
	}
}

// image is a firmware image of 48 KiB (48 blocks), with a header line for
// the simulator.
func image(t *testing.T, version, header string) []byte {
	t.Helper()
	b := make([]byte, 48<<10)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	copy(b, "MEDFLEET-FW "+version+"\n"+header)
	return b
}

func mf(img []byte, version string) manifest.Manifest {
	sum := sha256.Sum256(img)
	return manifest.Manifest{Models: pumpModels, Version: version, SHA256: hex.EncodeToString(sum[:]), Size: uint64(len(img))}
}

func upload(ctx context.Context, fw pb.FirmwareServiceClient, img []byte, version string, sig []byte) (*pb.Artifact, error) {
	stream, err := fw.UploadArtifact(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&pb.UploadArtifactRequest{Content: &pb.UploadArtifactRequest_Metadata{Metadata: &pb.ArtifactUpload{
		Version: version, Models: pumpModels, Signature: sig}}}); err != nil {
		return nil, err
	}
	for chunk := range slices.Chunk(img, 16<<10) {
		if err := stream.Send(&pb.UploadArtifactRequest{Content: &pb.UploadArtifactRequest_Chunk{Chunk: chunk}}); err != nil {
			break // the server ended the stream; CloseAndRecv says why
		}
	}
	return stream.CloseAndRecv()
}

func rolloutDevices(t *testing.T, c pb.RolloutServiceClient, id string, wave int32) []*pb.RolloutDevice {
	t.Helper()
	resp, err := c.ListRolloutDevices(context.Background(), &pb.ListRolloutDevicesRequest{Rollout: "rollouts/" + id, Wave: wave, PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetDevices()
}

func rolloutState(r *pb.Rollout, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("state %v pause %v (%s) wave %d counts {%v} failures %v", r.GetState(), r.GetPauseReason(), r.GetPauseDetail(),
		r.GetCurrentWave()+1, r.GetCounts(), r.GetFailuresByResult())
}

// dialAPI connects to medfleetd's API over TLS as its first administrator.
func dialAPI(t *testing.T, addr, dataDir string) *grpc.ClientConn {
	t.Helper()
	tlsCreds, err := credentials.NewClientTLSFromFile(filepath.Join(dataDir, "tls", "ca.crt"), "")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(tlsCreds), grpc.WithPerRPCCredentials(bearer(strings.TrimSpace(string(tok)))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return true }
