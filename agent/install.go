package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/medfleet/medfleet/coap"
)

// Image is a downloaded firmware image whose size, SHA-256 and signature
// the agent has checked, as an Installer gets it.
type Image struct {
	// Target is the desired state's `fw` entry the image was fetched for.
	Target coap.FirmwareTarget
	// Path is the image file in {state_dir}/firmware; "" when the agent has
	// no state directory and keeps the image in memory.
	Path string
	data []byte
}

// Open returns the image's content.
func (img Image) Open() (io.ReadCloser, error) {
	if img.Path == "" {
		return io.NopCloser(bytes.NewReader(img.data)), nil
	}
	return os.Open(img.Path)
}

// Installer is where real devices and simulated ones differ: what
// installing an image means. The agent calls it from its loop, one call at
// a time, and only when the server allows the install and the device is
// idle. After a restart in the middle of an update the agent calls Install
// again if it had not returned, then SelfTest: both must be safe to repeat.
type Installer interface {
	// Install writes img so that the device runs it, keeping the previous
	// image to go back to (an A/B partition, say). It may restart the
	// device: the agent then runs the self-test when it starts again.
	Install(ctx context.Context, img Image) error
	// SelfTest checks the newly installed image; nil commits it.
	SelfTest(ctx context.Context, img Image) error
	// Rollback goes back to the previous image after a failed install or
	// self-test.
	Rollback(ctx context.Context, img Image) error
}

// commandInstaller runs the programs of Config.FirmwareUpdate with the image
// file and the version as their last two arguments, like Mender's state
// scripts: exit status 0 is success.
type commandInstaller struct {
	install, selfTest, rollback []string
	timeout                     time.Duration
}

func newCommandInstaller(c FirmwareUpdate) commandInstaller {
	return commandInstaller{install: c.InstallCommand, selfTest: c.SelfTestCommand, rollback: c.RollbackCommand, timeout: c.CommandTimeout}
}

func (c commandInstaller) Install(ctx context.Context, img Image) error {
	return c.run(ctx, "install_command", c.install, img)
}

func (c commandInstaller) SelfTest(ctx context.Context, img Image) error {
	return c.run(ctx, "selftest_command", c.selfTest, img)
}

func (c commandInstaller) Rollback(ctx context.Context, img Image) error {
	return c.run(ctx, "rollback_command", c.rollback, img)
}

// commandOutputLimit bounds how much of a failed command's output its error
// quotes; commandWaitDelay how long the agent waits for the output of a
// command killed at its timeout.
const (
	commandOutputLimit = 512
	commandWaitDelay   = 5 * time.Second
)

func (c commandInstaller) run(ctx context.Context, field string, argv []string, img Image) error {
	if len(argv) == 0 {
		return nil // no self-test: the image is good once installed
	}
	if img.Path == "" {
		return fmt.Errorf("agent: firmware_update.%s: the image is not in a file (no state_dir)", field)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	args := append(append([]string(nil), argv[1:]...), img.Path, img.Target.Version)
	cmd := exec.CommandContext(ctx, argv[0], args...)
	cmd.WaitDelay = commandWaitDelay // a killed command's children may hold its output open
	out, err := cmd.CombinedOutput()
	if err != nil {
		out = bytes.TrimSpace(out)
		if len(out) > commandOutputLimit {
			out = append([]byte("..."), out[len(out)-commandOutputLimit:]...)
		}
		return fmt.Errorf("agent: firmware_update.%s: %s: %w: %s", field, argv[0], err, out)
	}
	return nil
}

// The simulator's image directive: a line of the image's first
// SimDirectiveWindow bytes that reads
//
//	medfleet-sim: selftest-fail=F
//
// with F a fraction from 0 to 1 makes the self-test fail on the share F of
// the devices (see SimSelfTestFails).
const (
	SimDirective       = "medfleet-sim: selftest-fail="
	SimDirectiveWindow = 4096
)

// ErrSimSelfTest is the self-test failure of a simulated device.
var ErrSimSelfTest = errors.New("agent: simulated self-test failed (image directive " + SimDirective + "...)")

// simInstaller installs nothing: a simulated device has no flash. Its
// self-test follows the image's directive.
type simInstaller struct {
	device string
}

func (simInstaller) Install(ctx context.Context, _ Image) error { return ctx.Err() }

func (s simInstaller) SelfTest(ctx context.Context, img Image) error {
	r, err := img.Open()
	if err != nil {
		return fmt.Errorf("agent: simulated self-test: %w", err)
	}
	defer r.Close()
	head, err := io.ReadAll(io.LimitReader(r, SimDirectiveWindow))
	if err != nil {
		return fmt.Errorf("agent: simulated self-test: %w", err)
	}
	if SimSelfTestFails(s.device, img.Target.SHA256, head) {
		return ErrSimSelfTest
	}
	return ctx.Err()
}

func (simInstaller) Rollback(ctx context.Context, _ Image) error { return ctx.Err() }

// SimSelfTestFails reports whether a simulated device fails the self-test
// of an image: when the image's first SimDirectiveWindow bytes hold the
// line "medfleet-sim: selftest-fail=F" (F from 0 to 1; a trailing \r and
// spaces around the line are allowed) and the device's draw is below F.
// The draw is h/2^53, h the top 53 bits of the first 8 bytes (big endian)
// of SHA-256(device + "\n" + sha256hex): in [0, 1), deterministic,
// different for every device and image. F = 1 fails on every device, F = 0 (or no directive, or
// an F that is not a number from 0 to 1) on none. Only the first directive
// counts.
func SimSelfTestFails(device, sha256hex string, image []byte) bool {
	f, ok := simFailShare(image)
	if !ok {
		return false
	}
	return simDraw(device, sha256hex) < f
}

// simFailShare finds the directive in the head of an image.
func simFailShare(image []byte) (float64, bool) {
	if len(image) > SimDirectiveWindow {
		image = image[:SimDirectiveWindow]
	}
	for line := range bytes.Lines(image) {
		v, ok := strings.CutPrefix(strings.TrimSpace(string(line)), SimDirective)
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || !(f >= 0 && f <= 1) {
			return 0, false
		}
		return f, true
	}
	return 0, false
}

// simDraw maps (device, image) to [0, 1).
func simDraw(device, sha256hex string) float64 {
	sum := sha256.Sum256([]byte(device + "\n" + sha256hex))
	return float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53)
}
