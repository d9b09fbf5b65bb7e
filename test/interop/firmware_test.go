package interop

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medfleet/medfleet/firmware/blob"
	"github.com/medfleet/medfleet/internal/servertest"
)

// TestFirmwareWithCoAPClient fetches an image from a real medfleetd with
// libcoap's own block-wise client (Block2, RFC 7959), in blocks of 1024
// and of 256 bytes, and checks the file it writes against the image's
// SHA-256: the server's stateless block handler must satisfy a client it
// was not written with.
func TestFirmwareWithCoAPClient(t *testing.T) {
	if _, err := exec.LookPath(coapClient); err != nil {
		t.Skipf("%s is not on PATH: install libcoap3-bin (apt-get install -y libcoap3-bin) to fetch firmware with libcoap", coapClient)
	}
	// An odd size, so that the last block of either size is short.
	img := make([]byte, 48*1024+333)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range img {
		img[i] = byte(r.Uint32())
	}

	// The server has no API that reaches its blob store from outside, so
	// the image is put into the store's directory before the server opens
	// it.
	cfg := servertest.Config(t)
	store, err := blob.Open(cfg.FirmwareDir())
	if err != nil {
		t.Fatal(err)
	}
	sha, _, err := store.Put(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, cfg)
	base := fmt.Sprintf("coap://127.0.0.1:%d/fw/", srv.Addrs().CoAP.(*net.UDPAddr).Port)
	dir := t.TempDir()

	for _, size := range []int{1024, 256} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			file := filepath.Join(dir, fmt.Sprintf("fw-%d.bin", size))
			out, err := coapGet(t, "-m", "get", "-b", strconv.Itoa(size), "-o", file, base+sha)
			if err != nil {
				t.Fatalf("%s -b %d: %v", coapClient, size, err)
			}
			got, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%s -b %d wrote no file (output %q): %v", coapClient, size, out, err)
			}
			if sum := sha256.Sum256(got); hex.EncodeToString(sum[:]) != sha {
				t.Errorf("%s -b %d fetched %d bytes hashing to %x; want the %d bytes of %s", coapClient, size, len(got), sum, len(img), sha)
			}
		})
	}

	t.Run("unknown image", func(t *testing.T) {
		out, err := coapGet(t, "-m", "get", "-b", "1024", base+strings.Repeat("0", 64))
		if err != nil || !strings.Contains(out, "4.04") {
			t.Errorf("%s of an unknown image printed %q, %v; want 4.04 with a diagnostic", coapClient, out, err)
		}
	})
}

// coapGet runs coap-client with args and returns what it printed, standard
// output and standard error together.
func coapGet(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, coapClient, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	return out.String(), err
}
