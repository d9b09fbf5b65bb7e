package audit

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(c *Config)
		wantErr string // "": valid
	}{
		{name: "default", change: func(*Config) {}},
		{name: "batch of one", change: func(c *Config) { c.MaxBatch = 1 }},
		{name: "flush interval", change: func(c *Config) { c.FlushInterval = 10 * time.Millisecond }},
		{name: "batch of zero", change: func(c *Config) { c.MaxBatch = 0 }, wantErr: "audit.max_batch: 0 is outside 1-127"},
		{name: "batch above etcd's limit", change: func(c *Config) { c.MaxBatch = 128 }, wantErr: "audit.max_batch: 128 is outside 1-127"},
		{name: "negative flush interval", change: func(c *Config) { c.FlushInterval = -1 }, wantErr: "audit.flush_interval: -1ns is outside 0-1s"},
		{name: "long flush interval", change: func(c *Config) { c.FlushInterval = time.Minute }, wantErr: "audit.flush_interval: 1m0s is outside 0-1s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.change(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Errorf("Validate(%+v) = %v, want nil", c, err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Errorf("Validate(%+v) = %v, want %s...", c, err, tc.wantErr)
			}
			if _, err := New(c, nil, nil, nil); err == nil {
				t.Errorf("New(%+v) = nil error, want the validation error", c)
			}
		})
	}
}
