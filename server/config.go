package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/medfleet/medfleet/audit"
	"github.com/medfleet/medfleet/coap/gateway"
	"github.com/medfleet/medfleet/credentials"
	"github.com/medfleet/medfleet/firmware"
	"github.com/medfleet/medfleet/firmware/rollout"
	"github.com/medfleet/medfleet/inventory"
	"github.com/medfleet/medfleet/inventory/location"
	"github.com/medfleet/medfleet/maintenance/program"
)

// Config is everything medfleetd can be told, from flags or a YAML file.
type Config struct {
	// DataDir holds the embedded etcd's data (DataDir/etcd), the CAs and keys
	// (DataDir/tls) and the first administrator's token (DataDir/admin.token).
	DataDir string     `yaml:"data_dir"`
	Etcd    EtcdConfig `yaml:"etcd"`
	GRPC    GRPCConfig `yaml:"grpc"`
	CoAP    CoAPConfig `yaml:"coap"`
	HTTP    HTTPConfig `yaml:"http"`

	Inventory   inventory.Config   `yaml:"inventory"`
	Credentials credentials.Config `yaml:"credentials"`
	Audit       audit.Config       `yaml:"audit"`
	Maintenance program.Config     `yaml:"maintenance"`
	Firmware    FirmwareConfig     `yaml:"firmware"`
	Rollouts    rollout.Config     `yaml:"rollouts"`
	Location    location.Config    `yaml:"location"`
	Telemetry   TelemetryConfig    `yaml:"telemetry"`
	// ShutdownTimeout bounds a graceful stop.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// EtcdConfig chooses between the embedded etcd and an external cluster.
type EtcdConfig struct {
	// Endpoints of an external etcd cluster. Empty: run an embedded
	// single-node etcd in DataDir.
	Endpoints   []string      `yaml:"endpoints"`
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// ListenClient and ListenPeer are the embedded etcd's URLs. The client
	// URL is for etcdctl (backups, inspection); medfleetd itself talks to
	// its embedded etcd in process.
	ListenClient string `yaml:"listen_client"`
	ListenPeer   string `yaml:"listen_peer"`
	// QuotaBytes is the embedded etcd's backend quota.
	QuotaBytes int64 `yaml:"quota_bytes"`
	// CompactionRetention keeps this much history (periodic auto-compaction).
	CompactionRetention time.Duration `yaml:"compaction_retention"`
}

// GRPCConfig is the API listener.
type GRPCConfig struct {
	Listen string `yaml:"listen"`
	// Insecure serves plaintext gRPC without authentication: every caller
	// is an administrator. For development on one machine only.
	Insecure bool `yaml:"insecure"`
	// TLSCert and TLSKey are the server's certificate and key (PEM). Empty:
	// medfleetd issues its own from its CA in {data_dir}/tls.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// ClientCA verifies client certificates (PEM). Empty: medfleetd's own
	// CA, which also signs users' certificates (SignUserCertificate).
	ClientCA string `yaml:"client_ca"`
}

// CoAPConfig is the device protocol listener.
type CoAPConfig struct {
	// DTLSListen is the UDP address of CoAP over DTLS.
	DTLSListen string `yaml:"dtls_listen"`
	// Insecure also serves plain CoAP on Listen, where devices are not
	// authenticated. For development and for legacy devices on an isolated
	// network only.
	Insecure bool `yaml:"insecure"`
	// Listen is the UDP address of plain CoAP, used only when Insecure.
	Listen string `yaml:"listen"`
	// HandshakeTimeout bounds one DTLS handshake.
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	gateway.Config   `yaml:",inline"`
}

// HTTPConfig is the HTTP listener (/healthz).
type HTTPConfig struct {
	Listen string `yaml:"listen"`
	// Pprof serves Go's profiles under /debug/pprof/ (net/http/pprof) on
	// this listener, unauthenticated: for a trusted network only.
	Pprof bool `yaml:"pprof"`
}

// FirmwareConfig is where images are kept and whom they must be signed by.
type FirmwareConfig struct {
	// TrustedKeys is a PEM file of the ed25519 public keys whose signatures
	// uploads must carry. Empty: no upload is accepted.
	TrustedKeys string `yaml:"trusted_keys"`
	// Dir is the blob store of images. Empty: {data_dir}/firmware. Replicas
	// that share an etcd cluster must share this directory too.
	Dir string `yaml:"dir"`
	// MaxImageSize bounds an upload, in bytes.
	MaxImageSize int64 `yaml:"max_image_size"`
}

// FirmwareDir is where the blob store of images lives.
func (c Config) FirmwareDir() string {
	if c.Firmware.Dir != "" {
		return c.Firmware.Dir
	}
	return filepath.Join(c.DataDir, "firmware")
}

// TelemetryConfig is what the OTEL_* environment variables do not say.
type TelemetryConfig struct {
	// TraceSampleRatio is the share of root traces kept; a sampled parent
	// (a traced CLI call, a device's traceparent) is always followed.
	TraceSampleRatio float64 `yaml:"trace_sample_ratio"`
}

// DefaultConfig returns the defaults documented in docs/operations.md.
func DefaultConfig() Config {
	return Config{
		DataDir: "./medfleet-data",
		Etcd: EtcdConfig{
			DialTimeout:         5 * time.Second,
			ListenClient:        "http://127.0.0.1:2379",
			ListenPeer:          "http://127.0.0.1:2380",
			QuotaBytes:          8 << 30,
			CompactionRetention: 5 * time.Minute,
		},
		GRPC:            GRPCConfig{Listen: "127.0.0.1:7443"},
		CoAP:            CoAPConfig{DTLSListen: ":5684", Listen: ":5683", HandshakeTimeout: 10 * time.Second, Config: gateway.DefaultConfig()},
		HTTP:            HTTPConfig{Listen: ":8080"},
		Inventory:       inventory.DefaultConfig(),
		Credentials:     credentials.DefaultConfig(),
		Audit:           audit.DefaultConfig(),
		Maintenance:     program.DefaultConfig(),
		Firmware:        FirmwareConfig{MaxImageSize: firmware.DefaultMaxImageSize},
		Rollouts:        rollout.DefaultConfig(),
		Location:        location.DefaultConfig(),
		Telemetry:       TelemetryConfig{TraceSampleRatio: 0.01},
		ShutdownTimeout: 10 * time.Second,
	}
}

// LoadConfigFile overlays a YAML file on cfg.
func LoadConfigFile(path string, cfg *Config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := ParseConfig(b, cfg); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// ParseConfig overlays YAML on cfg. Unknown keys are errors, so that a
// misspelt setting is not silently ignored.
func ParseConfig(data []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) { // io.EOF: an empty file
		return err
	}
	return nil
}

// Validate checks the configuration; errors name the field by its path.
func (c Config) Validate() error {
	if len(c.Etcd.Endpoints) == 0 {
		if c.DataDir == "" {
			return errors.New("data_dir: required with the embedded etcd")
		}
		for _, u := range []struct{ field, value string }{{"etcd.listen_client", c.Etcd.ListenClient}, {"etcd.listen_peer", c.Etcd.ListenPeer}} {
			if p, err := url.Parse(u.value); err != nil || p.Host == "" || (p.Scheme != "http" && p.Scheme != "https") {
				return fmt.Errorf("%s: %q is not an http(s)://host:port URL", u.field, u.value)
			}
		}
		if c.Etcd.QuotaBytes < 0 {
			return errors.New("etcd.quota_bytes: negative")
		}
		if c.Etcd.CompactionRetention < time.Minute {
			return fmt.Errorf("etcd.compaction_retention: %v is under 1m", c.Etcd.CompactionRetention)
		}
	}
	for i, ep := range c.Etcd.Endpoints {
		if err := checkEndpoint(ep); err != nil {
			return fmt.Errorf("etcd.endpoints[%d]: %q is not host:port or an http(s) URL: %v", i, ep, err)
		}
	}
	if c.Etcd.DialTimeout <= 0 {
		return errors.New("etcd.dial_timeout: must be positive")
	}
	for _, a := range []struct{ field, value string }{{"grpc.listen", c.GRPC.Listen}, {"coap.dtls_listen", c.CoAP.DTLSListen}, {"coap.listen", c.CoAP.Listen}, {"http.listen", c.HTTP.Listen}} {
		if _, _, err := net.SplitHostPort(a.value); err != nil {
			return fmt.Errorf("%s: %q is not host:port: %v", a.field, a.value, err)
		}
	}
	if r := c.Telemetry.TraceSampleRatio; r < 0 || r > 1 {
		return fmt.Errorf("telemetry.trace_sample_ratio: %v is outside 0-1", r)
	}
	if c.ShutdownTimeout <= 0 {
		return errors.New("shutdown_timeout: must be positive")
	}
	if c.Firmware.MaxImageSize < 1 {
		return errors.New("firmware.max_image_size: must be positive")
	}
	if c.Firmware.Dir == "" && c.DataDir == "" {
		return errors.New("firmware.dir: required without data_dir")
	}
	if err := c.Rollouts.Validate(); err != nil {
		return err
	}
	if err := c.Location.Validate(); err != nil {
		return err
	}
	if (c.GRPC.TLSCert == "") != (c.GRPC.TLSKey == "") {
		return errors.New("grpc.tls_cert: tls_cert and tls_key go together")
	}
	for _, f := range []struct{ field, path string }{{"grpc.tls_cert", c.GRPC.TLSCert}, {"grpc.tls_key", c.GRPC.TLSKey}, {"grpc.client_ca", c.GRPC.ClientCA}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("%s: %v", f.field, err)
		}
	}
	if c.DataDir == "" {
		return errors.New("data_dir: required: it keeps the CAs and keys in data_dir/tls")
	}
	if c.CoAP.HandshakeTimeout < 100*time.Millisecond {
		return fmt.Errorf("coap.handshake_timeout: %v is under 100ms", c.CoAP.HandshakeTimeout)
	}
	if err := c.CoAP.Config.Validate(); err != nil {
		return err
	}
	if err := c.Credentials.Validate(); err != nil {
		return err
	}
	if err := c.Audit.Validate(); err != nil {
		return err
	}
	if err := c.Maintenance.Validate(); err != nil {
		return err
	}
	return c.Inventory.Validate()
}

// checkEndpoint accepts host:port and http(s)://host:port, as clientv3 does.
func checkEndpoint(ep string) error {
	hostport := ep
	if strings.Contains(ep, "://") {
		u, err := url.Parse(ep)
		if err != nil {
			return err
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return fmt.Errorf("scheme %q", u.Scheme)
		}
		hostport = u.Host
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return err
	}
	if host == "" || port == "" {
		return errors.New("no host or port")
	}
	return nil
}
