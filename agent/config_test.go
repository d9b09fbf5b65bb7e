package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func validConfig() Config {
	return Config{
		Server: "127.0.0.1:5683", DeviceID: "pump-0001", Profile: "infusion-pump",
		Model: "BD Alaris 8100", Serial: "AL8100001", Firmware: "9.33.1",
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(c *Config)
		want   string // substring of the error, "" for none
	}{
		{name: "valid with defaults", modify: func(*Config) {}},
		{name: "valid in full", modify: func(c *Config) {
			c.StateDir, c.Lifetime, c.Interval, c.TimeScale, c.QueueLimit = "/tmp/x", time.Hour, time.Minute, 60, 5
		}},
		{name: "no server", modify: func(c *Config) { c.Server = "" }, want: "server: required"},
		{name: "server without port", modify: func(c *Config) { c.Server = "localhost" }, want: "server: "},
		{name: "no device id", modify: func(c *Config) { c.DeviceID = "" }, want: "device_id: required"},
		{name: "bad device id", modify: func(c *Config) { c.DeviceID = "pump 1" }, want: "device_id: "},
		{name: "no profile", modify: func(c *Config) { c.Profile = "" }, want: "profile: required"},
		{name: "unknown profile", modify: func(c *Config) { c.Profile = "toaster" }, want: "profile: "},
		{name: "no model", modify: func(c *Config) { c.Model = "" }, want: "model: required"},
		{name: "no firmware", modify: func(c *Config) { c.Firmware = "" }, want: "firmware: required"},
		{name: "firmware too long", modify: func(c *Config) { c.Firmware = strings.Repeat("1", 200) }, want: "firmware: "},
		{name: "control character in serial", modify: func(c *Config) { c.Serial = "A\x01" }, want: "serial: "},
		{name: "lifetime too short", modify: func(c *Config) { c.Lifetime = 5 * time.Second }, want: "lifetime: "},
		{name: "lifetime too long", modify: func(c *Config) { c.Lifetime = 48 * time.Hour }, want: "lifetime: "},
		{name: "lifetime not whole seconds", modify: func(c *Config) { c.Lifetime = 10500 * time.Millisecond }, want: "lifetime: "},
		{name: "interval too short", modify: func(c *Config) { c.Interval = time.Millisecond }, want: "interval: "},
		{name: "negative time scale", modify: func(c *Config) { c.TimeScale = -1 }, want: "time_scale: "},
		{name: "negative queue limit", modify: func(c *Config) { c.QueueLimit = -1 }, want: "queue_limit: "},
		{name: "retry max below min", modify: func(c *Config) { c.RetryMin, c.RetryMax = time.Minute, time.Second }, want: "retry_max: "},
		{name: "insecure", modify: func(c *Config) { c.Insecure = true }},
		{name: "enrolment", modify: func(c *Config) { c.EnrolToken, c.EnrolKind, c.CAFile = "mfe_SECRET", "cert", "/etc/medfleet/ca.pem" }},
		{name: "enrolment with an in-process CA", modify: func(c *Config) { c.EnrolToken, c.CA = "mfe_SECRET", []byte("pem") }},
		{name: "enrolment without a CA", modify: func(c *Config) { c.EnrolToken = "mfe_SECRET" }, want: "ca_file: required with enrol_token"},
		{name: "enrolment when insecure", modify: func(c *Config) { c.EnrolToken, c.Insecure = "mfe_SECRET", true }, want: "enrol_token: set with insecure"},
		{name: "not a token", modify: func(c *Config) { c.EnrolToken, c.CAFile = "SECRET", "ca.pem" }, want: "enrol_token: not an enrolment token"},
		{name: "token with a space", modify: func(c *Config) { c.EnrolToken, c.CAFile = "mfe_SECRET x", "ca.pem" }, want: "enrol_token: "},
		{name: "unknown enrol kind", modify: func(c *Config) { c.EnrolKind = "password" }, want: "enrol_kind: "},
		{name: "negative handshake timeout", modify: func(c *Config) { c.HandshakeTimeout = -time.Second }, want: "handshake_timeout: "},
		{name: "firmware commands", modify: func(c *Config) {
			c.StateDir = "/var/lib/medfleet"
			c.FirmwareUpdate = FirmwareUpdate{
				TrustedKeysFile: "/etc/medfleet/fw.pem", MaxDeferPeriod: time.Hour,
				InstallCommand: []string{"/usr/sbin/fw-install"}, SelfTestCommand: []string{"/usr/sbin/fw-check", "-q"},
				RollbackCommand: []string{"/usr/sbin/fw-rollback"},
			}
		}},
		{name: "install command only", modify: func(c *Config) {
			c.StateDir, c.FirmwareUpdate.InstallCommand = "/var/lib/medfleet", []string{"/usr/sbin/fw-install"}
		}},
		{name: "install command without a state dir", modify: func(c *Config) { c.FirmwareUpdate.InstallCommand = []string{"/usr/sbin/fw-install"} },
			want: "firmware_update.install_command: requires state_dir"},
		{name: "self-test without rollback", modify: func(c *Config) {
			c.StateDir = "/var/lib/medfleet"
			c.FirmwareUpdate.InstallCommand, c.FirmwareUpdate.SelfTestCommand = []string{"/usr/sbin/fw-install"}, []string{"/usr/sbin/fw-check"}
		}, want: "firmware_update.rollback_command: required with selftest_command"},
		{name: "rollback without install", modify: func(c *Config) { c.FirmwareUpdate.RollbackCommand = []string{"/usr/sbin/fw-rollback"} },
			want: "firmware_update.install_command: required"},
		{name: "empty program", modify: func(c *Config) { c.StateDir, c.FirmwareUpdate.InstallCommand = "/x", []string{""} },
			want: "firmware_update.install_command: the program is empty"},
		{name: "negative defer period", modify: func(c *Config) { c.FirmwareUpdate.MaxDeferPeriod = -time.Hour },
			want: "firmware_update.max_defer_period: "},
		{name: "negative command timeout", modify: func(c *Config) { c.FirmwareUpdate.CommandTimeout = -time.Second },
			want: "firmware_update.command_timeout: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.modify(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "SECRET") {
				t.Errorf("Validate() = %v: it repeats the enrolment token", err)
			}
			if _, nerr := New(c, nil); (nerr == nil) != (err == nil) {
				t.Errorf("New() = %v, Validate() = %v: want both nil or both errors", nerr, err)
			}
		})
	}
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		want    Config
		wantErr bool
	}{
		{name: "empty", yaml: ""},
		{
			name: "full",
			yaml: "server: 10.0.0.1:5683\ndevice_id: pump-0001\nprofile: infusion-pump\nmodel: BD Alaris 8100\n" +
				"serial: AL1\nfirmware: 9.33.1\nstate_dir: ./data\nlifetime: 300s\ninterval: 10s\ntime_scale: 60\n" +
				"queue_limit: 500\nseed: 3\nno_sync: true\ninsecure: false\nca_file: /etc/medfleet/ca.pem\n" +
				"credentials_file: /etc/medfleet/creds.json\nenrol_token: mfe_x\nenrol_kind: cert\nhandshake_timeout: 5s\n" +
				"firmware_update:\n  trusted_keys_file: /etc/medfleet/firmware-keys.pem\n  max_defer_period: 12h\n" +
				"  install_command: [/usr/sbin/fw-install, --slot, b]\n  selftest_command: [/usr/sbin/fw-check]\n" +
				"  rollback_command: [/usr/sbin/fw-rollback]\n  command_timeout: 10m\n",
			want: Config{
				Server: "10.0.0.1:5683", DeviceID: "pump-0001", Profile: "infusion-pump", Model: "BD Alaris 8100",
				Serial: "AL1", Firmware: "9.33.1", StateDir: "./data", Lifetime: 300 * time.Second,
				Interval: 10 * time.Second, TimeScale: 60, QueueLimit: 500, Seed: 3, NoSync: true,
				CAFile: "/etc/medfleet/ca.pem", CredentialsFile: "/etc/medfleet/creds.json", EnrolToken: "mfe_x",
				EnrolKind: "cert", HandshakeTimeout: 5 * time.Second,
				FirmwareUpdate: FirmwareUpdate{
					TrustedKeysFile: "/etc/medfleet/firmware-keys.pem", MaxDeferPeriod: 12 * time.Hour,
					InstallCommand: []string{"/usr/sbin/fw-install", "--slot", "b"}, SelfTestCommand: []string{"/usr/sbin/fw-check"},
					RollbackCommand: []string{"/usr/sbin/fw-rollback"}, CommandTimeout: 10 * time.Minute,
				},
			},
		},
		{name: "unknown key", yaml: "servr: x\n", wantErr: true},
		{name: "ca is not a key", yaml: "ca: x\n", wantErr: true},
		{name: "trusted keys are not a key", yaml: "firmware_update:\n  trusted_keys: x\n", wantErr: true},
		{name: "bad duration", yaml: "interval: soon\n", wantErr: true},
		{name: "not a map", yaml: "- a\n- b\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseConfig([]byte(tc.yaml))
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseConfig() error = %v, want error %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); err == nil && diff != "" {
				t.Errorf("ParseConfig() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzParseConfig feeds arbitrary bytes to the config parser and the
// validator: errors are fine, panics are not.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("server: 127.0.0.1:5683\ndevice_id: x\nprofile: cpap\nmodel: m\nfirmware: 1\nlifetime: 10s\n"))
	f.Add([]byte("interval: -5s\ntime_scale: .nan\n"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		_ = c.Validate()
	})
}
