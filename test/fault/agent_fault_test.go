package fault

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/firmware/manifest"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// The firmware part of TestAgentRestartedMidReport.
const (
	fwTargets   = 5         // pumps that download the image
	fwImageSize = 384 << 10 // 384 blocks of 1 KiB
	fwVersion   = "10.0.0"
	fwRestarts  = 3
	// fwPass is the most blocks an agent fetches before it records its
	// progress (docs/protocol.md 14.6): what a restart may cost a
	// download that resumes.
	fwPass = 16
	// fwLinkDelay is added each way to every datagram while the pumps
	// download, so that a download lasts seconds (about 10 blocks per
	// 100 ms pass) and a restart finds it in progress.
	fwLinkDelay = 5 * time.Millisecond
)

// The pump models of the simulated fleet (agent/simulator.go).
var pumpModels = []string{"BD Alaris 8100", "Baxter Novum IQ LVP", "ICU Medical Plum 360"}

// TestAgentRestartedMidReport stops the whole fleet while it delivers
// reports and starts it again from its state on disk, three times in quick
// succession. Meanwhile five pumps download a firmware image: each restart
// finds a download in progress, and the pumps must resume where they
// stopped (firmware.json) rather than from the first block, and hold the
// whole image in the end.
func TestAgentRestartedMidReport(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := startSystem(t, options{seed: 5, firmwareKeys: manifest.MarshalPublicKey(pub)})
	ctx := contextFor(t, 2*time.Minute)
	api := s.replicas[0]

	// The targets are labelled, so that the rollout takes them and no other.
	var targets []string
	for _, d := range s.fleet.sim.Devices() {
		if slices.Contains(pumpModels, d.Model) && len(targets) < fwTargets {
			targets = append(targets, d.DeviceID)
		}
	}
	for _, id := range targets {
		if _, err := api.devices().UpdateDevice(ctx, &pb.UpdateDeviceRequest{
			Device:     &pb.Device{Name: "devices/" + id, Labels: map[string]string{"fault": "firmware"}},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels"}},
		}); err != nil {
			t.Fatalf("label %s: %v", id, err)
		}
	}
	img := make([]byte, fwImageSize)
	if _, err := rand.Read(img); err != nil {
		t.Fatal(err)
	}
	copy(img, "MEDFLEET-FW "+fwVersion+"\n")
	sum := sha256.Sum256(img)
	sig := manifest.Sign(priv, manifest.Manifest{Models: pumpModels, Version: fwVersion, SHA256: hex.EncodeToString(sum[:]), Size: fwImageSize})
	fw, rollouts := pb.NewFirmwareServiceClient(api.conn), pb.NewRolloutServiceClient(api.conn)
	art, err := upload(ctx, fw, img, fwVersion, sig)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	blocksBefore := firmwareBlocks(t, s.replicas)
	s.proxy.setFaults(upstream, faults{Delay: fwLinkDelay})
	s.proxy.setFaults(downstream, faults{Delay: fwLinkDelay})
	if _, err := rollouts.CreateRollout(ctx, &pb.CreateRolloutRequest{RolloutId: "fault", Rollout: &pb.Rollout{
		Artifact: art.GetName(), Target: &pb.RolloutTarget{Filter: `labels.fault = "firmware"`},
		Waves:         []*pb.Wave{{CumulativePercent: 100}},
		DeviceTimeout: durationpb.New(10 * time.Minute),
	}}); err != nil {
		t.Fatalf("CreateRollout: %v", err)
	}

	// Restart the fleet once the downloads have gone on for a while (48
	// blocks a pump) since the last restart and are not finished, so that
	// a download that started over would cost far more than one that
	// resumes.
	progress := map[string]uint64{}
	var held uint64 // bytes the targets held at the restarts: what starting over would fetch again
	for i := range fwRestarts {
		var caught string
		eventually(t, 30*time.Second, 20*time.Millisecond, fmt.Sprintf("downloads in progress before restart %d", i+1), func() (bool, string) {
			var states []string
			var gained, bytes uint64
			downloading := 0
			for _, id := range targets {
				st, _ := s.fleet.sim.Firmware(id)
				states = append(states, fmt.Sprintf("%s %d/%d %d bytes", id, st.State, st.Result, st.Downloaded))
				if st.State == coap.FWDownloading && st.Downloaded < fwImageSize {
					downloading++
					gained += st.Downloaded - min(st.Downloaded, progress[id])
					bytes += st.Downloaded
				}
			}
			caught = fmt.Sprintf("%d pumps downloading, holding %d KiB in all", downloading, bytes>>10)
			return downloading > 0 && gained >= fwTargets*48<<10, fmt.Sprint(states)
		})
		for _, id := range targets {
			st, _ := s.fleet.sim.Firmware(id)
			progress[id] = st.Downloaded
			held += st.Downloaded
		}
		began := time.Now()
		s.fleet.restart()
		s.figures.add("restart %d of the fleet, with %s: took %v", i+1, caught, time.Since(began).Round(10*time.Millisecond))
	}
	s.proxy.heal()

	eventually(t, 60*time.Second, 250*time.Millisecond, "every target holds the whole image", func() (bool, string) {
		var waiting []string
		for _, id := range targets {
			st, _ := s.fleet.sim.Firmware(id)
			if st.Running != fwVersion && st.State != coap.FWDownloaded && st.State != coap.FWUpdating {
				waiting = append(waiting, fmt.Sprintf("%s state %d result %d, %d bytes", id, st.State, st.Result, st.Downloaded))
			}
		}
		return len(waiting) == 0, fmt.Sprint(waiting)
	})
	served := firmwareBlocks(t, s.replicas) - blocksBefore
	once := float64(fwTargets * fwImageSize / 1024)
	resumed := once + fwTargets*fwRestarts*fwPass
	s.figures.add("firmware blocks served: %.0f for %d pumps of %.0f blocks each (%.2f times the image); "+
		"at most %.0f if every download resumes, %.0f if each started again at every restart",
		served, fwTargets, once/fwTargets, served/once, resumed, once+float64(held/1024))
	if served < once || served > resumed {
		t.Errorf("%.0f firmware blocks served for %d pumps of an image of %.0f blocks, want %.0f to %.0f: a restart must resume a download, not start it again",
			served, fwTargets, once/fwTargets, once, resumed)
	}
	s.checkGroundTruth()
}

// firmwareBlocks is the number of firmware blocks the replicas served.
func firmwareBlocks(t *testing.T, replicas []*replica) float64 {
	t.Helper()
	var sum float64
	for _, r := range replicas {
		v, err := r.metric("medfleet_coap_firmware_blocks_total", nil)
		if err != nil {
			t.Fatal(err)
		}
		sum += v
	}
	return sum
}

// upload streams a signed image to UploadArtifact.
func upload(ctx context.Context, fw pb.FirmwareServiceClient, img []byte, version string, sig []byte) (*pb.Artifact, error) {
	stream, err := fw.UploadArtifact(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&pb.UploadArtifactRequest{Content: &pb.UploadArtifactRequest_Metadata{Metadata: &pb.ArtifactUpload{
		Version: version, Models: pumpModels, Signature: sig}}}); err != nil {
		return nil, err
	}
	for chunk := range slices.Chunk(img, 64<<10) {
		if err := stream.Send(&pb.UploadArtifactRequest{Content: &pb.UploadArtifactRequest_Chunk{Chunk: chunk}}); err != nil {
			break // the server ended the stream; CloseAndRecv says why
		}
	}
	return stream.CloseAndRecv()
}
