package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/medfleet/medfleet/coap"
)

// FirmwareDir is the directory in Config.StateDir that holds the image being
// downloaded, as a file named by its SHA-256.
const FirmwareDir = "firmware"

// stage keeps the image the agent downloads and installs: a file in
// {StateDir}/firmware, or memory without a state directory. It holds one
// image at a time.
type stage struct {
	dir  string // "" keeps the image in memory
	sync bool
	sha  string // of the staged image, "" when none
	f    *os.File
	mem  []byte
}

func (s *stage) path() string { return filepath.Join(s.dir, s.sha) }

// open makes sha (already checked to be 64 hex digits) the staged image,
// keeping at most keep bytes of what is staged for it already (from before
// a restart), and returns how many it kept.
func (s *stage) open(sha string, keep uint64) (uint64, error) {
	if s.sha != sha {
		s.remove()
	}
	s.sha = sha
	if s.dir == "" {
		keep = min(keep, uint64(len(s.mem)))
		s.mem = s.mem[:keep]
		return keep, nil
	}
	if s.f == nil {
		if err := os.MkdirAll(s.dir, 0o700); err != nil {
			return 0, fmt.Errorf("agent: firmware: %w", err)
		}
		f, err := os.OpenFile(s.path(), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return 0, fmt.Errorf("agent: firmware: %w", err)
		}
		s.f = f
	}
	fi, err := s.f.Stat()
	if err != nil {
		return 0, fmt.Errorf("agent: firmware: %w", err)
	}
	keep = min(keep, uint64(fi.Size()))
	if err := s.f.Truncate(int64(keep)); err != nil {
		return 0, fmt.Errorf("agent: firmware: %w", err)
	}
	return keep, nil
}

// writeAt writes p at off, dropping whatever was staged from off on; off
// is at most the staged length.
func (s *stage) writeAt(off uint64, p []byte) error {
	if s.dir == "" {
		s.mem = append(s.mem[:off], p...)
		return nil
	}
	if s.f == nil {
		return errors.New("agent: firmware: no image staged")
	}
	if err := s.f.Truncate(int64(off)); err != nil {
		return fmt.Errorf("agent: firmware: %w", err)
	}
	if _, err := s.f.WriteAt(p, int64(off)); err != nil {
		return fmt.Errorf("agent: firmware: %w", err)
	}
	return nil
}

// flush makes what was written durable, before the progress that counts on
// it is saved.
func (s *stage) flush() error {
	if s.f == nil || !s.sync {
		return nil
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("agent: firmware: fsync: %w", err)
	}
	return nil
}

// sum returns the size and SHA-256 (hex) of the staged image.
func (s *stage) sum() (uint64, string, error) {
	h := sha256.New()
	var r io.Reader = bytes.NewReader(s.mem)
	if s.dir != "" {
		if s.f == nil {
			return 0, "", errors.New("agent: firmware: no image staged")
		}
		r = io.NewSectionReader(s.f, 0, 1<<62)
	}
	n, err := io.Copy(h, r)
	if err != nil {
		return 0, "", fmt.Errorf("agent: firmware: %w", err)
	}
	return uint64(n), hex.EncodeToString(h.Sum(nil)), nil
}

// image is the staged image for an Installer.
func (s *stage) image(t coap.FirmwareTarget) Image {
	if s.dir == "" {
		return Image{Target: t, data: s.mem}
	}
	return Image{Target: t, Path: s.path()}
}

// remove deletes the staged image.
func (s *stage) remove() {
	s.close()
	if s.dir != "" && s.sha != "" {
		_ = os.Remove(s.path())
	}
	s.sha, s.mem = "", nil
}

// close closes the image file, if open; the image stays.
func (s *stage) close() {
	if s.f != nil {
		_ = s.f.Close()
		s.f = nil
	}
}

// clean deletes every file of the directory but the image keep ("" for
// none): leftovers of images the agent no longer handles.
func (s *stage) clean(keep string) error {
	if s.dir == "" {
		return nil
	}
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("agent: firmware: %w", err)
	}
	for _, e := range entries {
		if e.Name() != keep {
			_ = os.RemoveAll(filepath.Join(s.dir, e.Name()))
		}
	}
	return nil
}
