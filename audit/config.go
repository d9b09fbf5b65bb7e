package audit

import (
	"fmt"
	"time"
)

// Config tunes the group commit.
type Config struct {
	// MaxBatch bounds the records in one etcd transaction. etcd allows 128
	// operations per transaction by default, and the head takes one.
	MaxBatch int `yaml:"max_batch"`
	// FlushInterval is how long the committer waits, once a record is
	// pending, for others to join its batch. 0 commits as soon as the
	// committer is free, which batches by itself under load.
	FlushInterval time.Duration `yaml:"flush_interval"`
}

// DefaultConfig returns the largest batch etcd's default limits allow,
// committed as soon as the committer is free.
func DefaultConfig() Config {
	return Config{MaxBatch: 127, FlushInterval: 0}
}

// Validate checks the configuration; errors name the field by its path.
func (c Config) Validate() error {
	switch {
	case c.MaxBatch < 1 || c.MaxBatch > 127:
		return fmt.Errorf("audit.max_batch: %d is outside 1-127 (etcd's default max-txn-ops is 128; the head takes one)", c.MaxBatch)
	case c.FlushInterval < 0 || c.FlushInterval > time.Second:
		return fmt.Errorf("audit.flush_interval: %v is outside 0-1s", c.FlushInterval)
	}
	return nil
}
