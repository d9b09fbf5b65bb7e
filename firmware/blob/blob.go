package blob

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
	"sync"
)

// Errors of the store.
var (
	// ErrNotFound: no image has that SHA-256, or the name is not one (64
	// lower-case hex digits).
	ErrNotFound = errors.New("blob: image not found")
	// ErrTooLarge: Put read more than its maxSize.
	ErrTooLarge = errors.New("blob: image too large")
	// ErrEmpty: Put read no byte.
	ErrEmpty = errors.New("blob: empty image")
	// ErrCorrupt: a stored file no longer hashes to its name (bit rot or
	// tampering).
	ErrCorrupt = errors.New("blob: image does not match its SHA-256")
	// ErrClosed: Image after Close.
	ErrClosed = errors.New("blob: store closed")
)

// Store is a directory of images named by their SHA-256. Its methods may
// be called concurrently.
type Store struct {
	dir string

	mu sync.RWMutex
	// open holds the images served so far, each with its file open, so
	// that serving a block costs a pread and no open.
	open   map[string]*Image
	closed bool
}

// Image is a stored image, open for reading. Its bytes never change; it
// reads nothing once the image is deleted or the store closed.
type Image struct {
	sha string
	f   *os.File
	r   *io.SectionReader
}

// ReadAt reads len(p) bytes at off, as io.ReaderAt does.
func (im *Image) ReadAt(p []byte, off int64) (int, error) { return im.r.ReadAt(p, off) }

// Size is the image's length in bytes.
func (im *Image) Size() int64 { return im.r.Size() }

// SHA256 is the image's name: 64 lower-case hex digits.
func (im *Image) SHA256() string { return im.sha }

// Open opens the store in dir, creating it (mode 0700) if needed, and
// removes the temporary files an interrupted Put left behind.
func Open(dir string) (*Store, error) {
	s := &Store{dir: dir, open: map[string]*Image{}}
	if err := os.MkdirAll(filepath.Join(dir, "sha256"), 0o700); err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	if err := os.RemoveAll(s.tmp()); err != nil {
		return nil, fmt.Errorf("blob: clearing temporary files: %w", err)
	}
	if err := os.Mkdir(s.tmp(), 0o700); err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	return s, nil
}

// Close closes the files of the images served; Image fails afterwards.
// Calling it again does nothing.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for sha, im := range s.open {
		errs = append(errs, im.f.Close())
		delete(s.open, sha)
	}
	s.closed = true
	return errors.Join(errs...)
}

func (s *Store) tmp() string { return filepath.Join(s.dir, "tmp") }

func (s *Store) path(sha string) string { return filepath.Join(s.dir, "sha256", sha[:2], sha) }

// Put stores the bytes of r, at most maxSize of them, and returns their
// SHA-256 in hex and their length. The image is durable when Put returns:
// the file and its directory are synced. Putting bytes that are stored
// already changes nothing, unless the stored copy no longer matches its
// name, which Put then replaces. Errors: ErrTooLarge, ErrEmpty, or the
// reader's or the file system's.
func (s *Store) Put(r io.Reader, maxSize int64) (sha string, size int64, err error) {
	if maxSize < 1 {
		return "", 0, fmt.Errorf("blob: maxSize %d is under 1", maxSize)
	}
	f, err := os.CreateTemp(s.tmp(), "put-*")
	if err != nil {
		return "", 0, fmt.Errorf("blob: %w", err)
	}
	tmp, renamed := f.Name(), false
	defer func() {
		_ = f.Close() // a second Close on success: harmless
		if !renamed {
			_ = os.Remove(tmp)
		}
	}()
	h := sha256.New()
	size, err = io.Copy(io.MultiWriter(f, h), io.LimitReader(r, maxSize+1))
	switch {
	case err != nil:
		return "", 0, fmt.Errorf("blob: writing the image: %w", err)
	case size > maxSize:
		return "", 0, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxSize)
	case size == 0:
		return "", 0, ErrEmpty
	}
	if err := f.Sync(); err != nil {
		return "", 0, fmt.Errorf("blob: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", 0, fmt.Errorf("blob: %w", err)
	}
	sha = hex.EncodeToString(h.Sum(nil))
	if err := s.Verify(sha); err == nil {
		return sha, size, nil // stored already, intact
	}
	shard := filepath.Dir(s.path(sha))
	created, err := mkdir(shard)
	if err != nil {
		return "", 0, err
	}
	if err := os.Rename(tmp, s.path(sha)); err != nil {
		return "", 0, fmt.Errorf("blob: %w", err)
	}
	renamed = true
	if err := syncDir(shard); err != nil {
		return "", 0, err
	}
	if created {
		if err := syncDir(filepath.Dir(shard)); err != nil {
			return "", 0, err
		}
	}
	s.forget(sha) // an open copy that did not match its name
	return sha, size, nil
}

// mkdir makes dir (mode 0700) and reports whether it did.
func mkdir(dir string) (bool, error) {
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("blob: %w", err)
	}
	return true, nil
}

// syncDir makes the entries of dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("blob: syncing %s: %w", dir, err)
	}
	return nil
}

// Image returns the image named sha, open for serving. The store keeps the
// file open and returns the same *Image to every caller until the image is
// deleted. ErrNotFound when there is none.
func (s *Store) Image(sha string) (*Image, error) {
	if !validSHA256(sha) {
		return nil, fmt.Errorf("%w: %q is not 64 lower-case hex digits", ErrNotFound, truncate(sha))
	}
	s.mu.RLock()
	im, ok := s.open[sha]
	closed := s.closed
	s.mu.RUnlock()
	switch {
	case closed:
		return nil, ErrClosed
	case ok:
		return im, nil
	}

	// Opened under the write lock, so that a Delete cannot slip between the
	// open and the map.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if im, ok := s.open[sha]; ok {
		return im, nil
	}
	f, err := os.Open(s.path(sha))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, sha)
	}
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", f.Name())
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blob: %w", err)
	}
	im = &Image{sha: sha, f: f, r: io.NewSectionReader(f, 0, fi.Size())}
	s.open[sha] = im
	return im, nil
}

// forget closes the open file of sha, if any.
func (s *Store) forget(sha string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if im, ok := s.open[sha]; ok {
		_ = im.f.Close()
		delete(s.open, sha)
	}
}

// Delete removes the image named sha and closes its open file: a read in
// progress may fail. Deleting an image that is not stored does nothing; a
// sha that cannot name one is ErrNotFound.
func (s *Store) Delete(sha string) error {
	if !validSHA256(sha) {
		return fmt.Errorf("%w: %q is not 64 lower-case hex digits", ErrNotFound, truncate(sha))
	}
	s.forget(sha)
	if err := os.Remove(s.path(sha)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob: %w", err)
	}
	return nil
}

// Has reports whether the image named sha is stored.
func (s *Store) Has(sha string) bool {
	if !validSHA256(sha) {
		return false
	}
	fi, err := os.Lstat(s.path(sha))
	return err == nil && fi.Mode().IsRegular()
}

// List returns the names of the stored images, sorted, so that images that
// no record owns can be found and deleted. Files that cannot be an image's
// are skipped.
func (s *Store) List() ([]string, error) {
	root := filepath.Join(s.dir, "sha256")
	shards, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	var out []string
	for _, shard := range shards {
		if !shard.IsDir() || len(shard.Name()) != 2 {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(root, shard.Name()))
		if err != nil {
			return nil, fmt.Errorf("blob: %w", err)
		}
		for _, e := range entries {
			if name := e.Name(); e.Type().IsRegular() && validSHA256(name) && name[:2] == shard.Name() {
				out = append(out, name)
			}
		}
	}
	return out, nil
}

// Verify hashes the stored file of sha again: ErrCorrupt when its bytes no
// longer match its name, ErrNotFound when there is no such image.
func (s *Store) Verify(sha string) error {
	if !validSHA256(sha) {
		return fmt.Errorf("%w: %q is not 64 lower-case hex digits", ErrNotFound, truncate(sha))
	}
	f, err := os.Open(s.path(sha))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNotFound, sha)
	}
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("blob: reading %s: %w", sha, err)
	}
	want, _ := hex.DecodeString(sha)
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		return fmt.Errorf("%w: %s hashes to %x", ErrCorrupt, sha, got)
	}
	return nil
}

// validSHA256 reports whether s is 64 lower-case hex digits, the only
// names the store makes paths of.
func validSHA256(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
