package interop

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/internal/servertest"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// coapClientDTLS is libcoap's client over OpenSSL's DTLS (libcoap3-bin).
const coapClientDTLS = "coap-client-openssl"

// TestCoAPClientPSK registers a device with libcoap's DTLS client and a
// pre-shared key that medfleetd issued (-u identity -k key), and checks that
// the same key cannot speak for another device.
func TestCoAPClientPSK(t *testing.T) {
	if _, err := exec.LookPath(coapClientDTLS); err != nil {
		t.Skipf("%s is not on PATH: install libcoap3-bin", coapClientDTLS)
	}
	cfg := servertest.SecureConfig(t)
	srv := servertest.Start(t, cfg)
	creds := pb.NewCredentialServiceClient(servertest.Dial(t, cfg, srv))
	issued, err := creds.IssueDeviceCredential(t.Context(), &pb.IssueDeviceCredentialRequest{
		Device: "devices/libcoap-1", Kind: pb.CredentialKind_CREDENTIAL_KIND_PSK})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	reg, _ := (&coap.Registration{Profile: "infusion-pump", Model: "libcoap pump", Serial: "LC-1"}).Encode(coap.FormatCBOR)
	if err := os.WriteFile(filepath.Join(dir, "reg.cbor"), reg, 0o644); err != nil {
		t.Fatal(err)
	}
	port := srv.Addrs().CoAPDTLS.(*net.UDPAddr).Port
	post := func(identity, key, ep string) string {
		ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, coapClientDTLS, "-B", "5", "-u", identity, "-k", key, "-m", "post", "-t", "60",
			"-f", filepath.Join(dir, "reg.cbor"), fmt.Sprintf("coaps://127.0.0.1:%d/rd?ep=%s&lt=60", port, ep))
		out, _ := cmd.CombinedOutput() // coap-client exits non-zero on 4.xx
		return string(out)
	}

	post("libcoap-1", string(issued.Psk), "libcoap-1")
	d, err := srv.Inventory().Get("libcoap-1")
	if err != nil || d.GetStatus().GetRegistrationTime() == nil {
		t.Fatalf("libcoap-1 after coap-client's POST /rd over DTLS: %v, %v; want registered", d, err)
	}

	out := post("libcoap-1", string(issued.Psk), "libcoap-2")
	if !strings.Contains(out, "4.03") {
		t.Errorf("POST /rd?ep=libcoap-2 with libcoap-1's key printed %q, want a 4.03", out)
	}
	if _, err := srv.Inventory().Get("libcoap-2"); err == nil {
		t.Error("libcoap-2 exists after a refused request")
	}

	post("libcoap-1", "a-wrong-key-a-wrong-key-a-wrong", "libcoap-1-wrong")
	if _, err := srv.Inventory().Get("libcoap-1-wrong"); err == nil {
		t.Error("a wrong key registered a device")
	}
}
