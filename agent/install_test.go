package agent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medfleet/medfleet/coap"
)

func TestSimSelfTestFails(t *testing.T) {
	const sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	pad := strings.Repeat("x", SimDirectiveWindow)
	tests := []struct {
		name  string
		image string
		want  bool
	}{
		{name: "no directive", image: "MFW1\nversion 2\n", want: false},
		{name: "always", image: "MFW1\nmedfleet-sim: selftest-fail=1\n", want: true},
		{name: "never", image: "medfleet-sim: selftest-fail=0\n", want: false},
		{name: "CRLF and spaces", image: "MFW1\r\n  medfleet-sim: selftest-fail=1.0 \r\n", want: true},
		{name: "at the end of the window", image: pad[:SimDirectiveWindow-30] + "\nmedfleet-sim: selftest-fail=1", want: true},
		{name: "beyond the window", image: pad + "\nmedfleet-sim: selftest-fail=1\n", want: false},
		{name: "not a number", image: "medfleet-sim: selftest-fail=most\n", want: false},
		{name: "above one", image: "medfleet-sim: selftest-fail=2\n", want: false},
		{name: "NaN", image: "medfleet-sim: selftest-fail=NaN\n", want: false},
		{name: "not at the start of its line", image: "# medfleet-sim: selftest-fail=1\n", want: false},
		{name: "only the first counts", image: "medfleet-sim: selftest-fail=0\nmedfleet-sim: selftest-fail=1\n", want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := SimSelfTestFails("sim-pump-0001", sha, []byte(tc.image)); got != tc.want {
				t.Errorf("SimSelfTestFails(%.40q) = %v, want %v", tc.image, got, tc.want)
			}
		})
	}
}

// TestSimSelfTestShare: a fraction F fails on about that share of the
// devices, the same ones every time, and the share depends on the image.
func TestSimSelfTestShare(t *testing.T) {
	const shaA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	const shaB = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
	image := []byte("MFW1\nmedfleet-sim: selftest-fail=0.3\n")
	failsA, failsB, differ := 0, 0, 0
	const devices = 2000
	for i := range devices {
		id := fmt.Sprintf("sim-pump-%04d", i)
		a := SimSelfTestFails(id, shaA, image)
		if again := SimSelfTestFails(id, shaA, image); again != a {
			t.Fatalf("SimSelfTestFails(%s) = %v, then %v", id, a, again)
		}
		b := SimSelfTestFails(id, shaB, image)
		if a {
			failsA++
		}
		if b {
			failsB++
		}
		if a != b {
			differ++
		}
	}
	for _, n := range []int{failsA, failsB} {
		if share := float64(n) / devices; share < 0.25 || share > 0.35 {
			t.Errorf("%d of %d devices fail with F=0.3 (share %.3f), want about 0.3", n, devices, share)
		}
	}
	if differ == 0 {
		t.Errorf("the same devices fail for two images, want the draw to depend on the image")
	}
}

func TestSimInstaller(t *testing.T) {
	img := func(head string) Image {
		return Image{Target: coap.FirmwareTarget{Version: "2.0.0", SHA256: strings.Repeat("a", 64)}, data: []byte(head)}
	}
	inst := simInstaller{device: "sim-rfid-0003"}
	ctx := t.Context()
	if err := inst.Install(ctx, img("")); err != nil {
		t.Errorf("Install() = %v", err)
	}
	if err := inst.SelfTest(ctx, img("MFW1\n")); err != nil {
		t.Errorf("SelfTest() without a directive = %v, want nil", err)
	}
	if err := inst.SelfTest(ctx, img(SimDirective+"1\n")); err != ErrSimSelfTest {
		t.Errorf("SelfTest() with fail=1 = %v, want ErrSimSelfTest", err)
	}
	if err := inst.Rollback(ctx, img("")); err != nil {
		t.Errorf("Rollback() = %v", err)
	}
}

func TestCommandInstaller(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "image")
	if err := os.WriteFile(path, []byte("image"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := filepath.Join(dir, "args")
	img := Image{Target: coap.FirmwareTarget{Version: "2.0.0"}, Path: path}
	inst := newCommandInstaller(FirmwareUpdate{
		InstallCommand:  []string{sh, "-c", `printf '%s %s' "$1" "$2" > "$0"`, args},
		SelfTestCommand: []string{sh, "-c", `echo "self-test of $2 failed" >&2; exit 3`, "selftest"},
		RollbackCommand: []string{sh, "-c", `exec sleep 5`},
		CommandTimeout:  100 * time.Millisecond,
	})
	ctx := t.Context()
	if err := inst.Install(ctx, img); err != nil {
		t.Fatalf("Install() = %v", err)
	}
	if b, err := os.ReadFile(args); err != nil || string(b) != path+" 2.0.0" {
		t.Errorf("install_command got arguments %q (%v), want %q", b, err, path+" 2.0.0")
	}
	err = inst.SelfTest(ctx, img)
	if err == nil || !strings.Contains(err.Error(), "firmware_update.selftest_command") || !strings.Contains(err.Error(), "self-test of 2.0.0 failed") {
		t.Errorf("SelfTest() = %v, want the failure with the command's output", err)
	}
	if err := inst.Rollback(ctx, img); err == nil {
		t.Errorf("Rollback() past its timeout = nil, want an error")
	}
	if err := inst.Install(ctx, Image{Target: img.Target, data: []byte("image")}); err == nil {
		t.Errorf("Install() of an image in memory = nil, want an error")
	}
	none := newCommandInstaller(FirmwareUpdate{InstallCommand: []string{sh, "-c", "exit 0"}, CommandTimeout: time.Second})
	if err := none.SelfTest(context.Background(), img); err != nil {
		t.Errorf("SelfTest() without a selftest_command = %v, want nil", err)
	}
}
