package server

import (
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string // substring of the parse or Validate error; "" for none
		check   func(Config) bool
	}{
		{name: "empty keeps defaults", yaml: "", check: func(c Config) bool { return c.GRPC.Listen == "127.0.0.1:7443" && c.DataDir == "./medfleet-data" }},
		{name: "overrides", yaml: "grpc:\n  listen: 127.0.0.1:9000\ninventory:\n  report_interval: 30s\ncoap:\n  read_buffer: 1024\n",
			check: func(c Config) bool {
				return c.GRPC.Listen == "127.0.0.1:9000" && c.Inventory.ReportInterval == 30*time.Second && c.CoAP.ReadBuffer == 1024 && c.CoAP.Listen == ":5683"
			}},
		{name: "external etcd", yaml: "etcd:\n  endpoints: [http://10.0.0.1:2379, 10.0.0.2:2379]\n",
			check: func(c Config) bool { return len(c.Etcd.Endpoints) == 2 }},
		{name: "unknown key", yaml: "grpc:\n  listne: x\n", wantErr: "listne"},
		{name: "bad duration", yaml: "inventory:\n  report_interval: often\n", wantErr: "often"},
		{name: "bad listen", yaml: "grpc:\n  listen: nowhere\n", wantErr: "grpc.listen"},
		{name: "interval too short", yaml: "inventory:\n  report_interval: 10ms\n", wantErr: "inventory.report_interval"},
		{name: "bad endpoint", yaml: "etcd:\n  endpoints: [\"http://\"]\n", wantErr: "etcd.endpoints[0]"},
		{name: "no data dir", yaml: "data_dir: \"\"\n", wantErr: "data_dir"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			err := ParseConfig([]byte(tc.yaml), &cfg)
			if err == nil {
				err = cfg.Validate()
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseConfig(%q) = %v, want an error mentioning %q", tc.yaml, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseConfig(%q): %v", tc.yaml, err)
			}
			if !tc.check(cfg) {
				t.Errorf("ParseConfig(%q) = %+v, not what the file says", tc.yaml, cfg)
			}
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("grpc:\n  listen: 127.0.0.1:7443\n"))
	f.Add([]byte("etcd:\n  endpoints: [a:1]\ninventory:\n  max_txn_ops: 7\n"))
	f.Add([]byte("{{{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := DefaultConfig()
		if err := ParseConfig(data, &cfg); err != nil {
			return
		}
		_ = cfg.Validate() // must not panic, whatever the file held
	})
}
