package blob

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// image returns n pseudo-random bytes and their SHA-256 in hex.
func image(seed uint64, n int) ([]byte, string) {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

func open(t *testing.T) (*Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "firmware")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func TestOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "firmware")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("Stat(%s) = %v, %v; want a directory with mode 0700", dir, fi, err)
	}
	stale := filepath.Join(dir, "tmp", "put-123")
	if err := os.WriteFile(stale, []byte("half an upload"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stat(%s) after Open = %v, want not exist: Open clears tmp", stale, err)
	}
}

func TestPutImage(t *testing.T) {
	s, dir := open(t)
	data, want := image(1, 10*1024+37)
	sha, size, err := s.Put(bytes.NewReader(data), 1<<20)
	if err != nil || sha != want || size != int64(len(data)) {
		t.Fatalf("Put = %s, %d, %v; want %s, %d", sha, size, err, want, len(data))
	}
	path := filepath.Join(dir, "sha256", sha[:2], sha)
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadFile(%s) = %d bytes, %v; want the image", path, len(got), err)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(entries) != 0 {
		t.Errorf("tmp holds %v after Put, want nothing", entries)
	}
	im, err := s.Image(sha)
	if err != nil {
		t.Fatal(err)
	}
	if im.Size() != int64(len(data)) || im.SHA256() != sha {
		t.Errorf("Image(%s) = size %d, sha %s; want %d, %s", sha, im.Size(), im.SHA256(), len(data), sha)
	}
	got, err := io.ReadAll(io.NewSectionReader(im, 0, im.Size()))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("reading the image = %d bytes, %v; want the %d bytes put", len(got), err, len(data))
	}
	if again, _ := s.Image(sha); again != im {
		t.Errorf("Image(%s) twice = two images, want the open one again", sha)
	}
	if !s.Has(sha) {
		t.Errorf("Has(%s) = false after Put", sha)
	}
	if err := s.Verify(sha); err != nil {
		t.Errorf("Verify(%s) = %v", sha, err)
	}
}

func TestPutIdempotent(t *testing.T) {
	s, _ := open(t)
	data, want := image(2, 3000)
	first, _, err := s.Put(bytes.NewReader(data), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	im, err := s.Image(first)
	if err != nil {
		t.Fatal(err)
	}
	second, size, err := s.Put(bytes.NewReader(data), 1<<20)
	if err != nil || second != want || size != int64(len(data)) {
		t.Fatalf("Put of the same bytes again = %s, %d, %v; want %s, %d", second, size, err, want, len(data))
	}
	// An intact copy is kept, and so is its open file: downloads in
	// progress are not disturbed.
	buf := make([]byte, 10)
	if _, err := im.ReadAt(buf, 100); err != nil || !bytes.Equal(buf, data[100:110]) {
		t.Errorf("ReadAt on the image opened before the second Put = %x, %v; want %x", buf, err, data[100:110])
	}
	if list, _ := s.List(); !slices.Equal(list, []string{want}) {
		t.Errorf("List() = %v, want [%s]", list, want)
	}
}

func TestPutRefused(t *testing.T) {
	s, dir := open(t)
	for _, tc := range []struct {
		name    string
		data    []byte
		maxSize int64
		want    error
	}{
		{name: "one byte over", data: make([]byte, 1025), maxSize: 1024, want: ErrTooLarge},
		{name: "empty", data: nil, maxSize: 1024, want: ErrEmpty},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sha, _, err := s.Put(bytes.NewReader(tc.data), tc.maxSize)
			if !errors.Is(err, tc.want) {
				t.Errorf("Put(%d bytes, max %d) = %q, %v; want %v", len(tc.data), tc.maxSize, sha, err, tc.want)
			}
		})
	}
	if sha, size, err := s.Put(bytes.NewReader(make([]byte, 1024)), 1024); err != nil || size != 1024 {
		t.Errorf("Put(1024 bytes, max 1024) = %s, %d, %v; want it stored", sha, size, err)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(entries) != 0 {
		t.Errorf("tmp holds %v after refused puts, want nothing", entries)
	}
	if list, _ := s.List(); len(list) != 1 {
		t.Errorf("List() = %v, want only the image of 1024 bytes", list)
	}
}

// failingReader fails after some bytes, as a dropped upload does.
type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errors.New("connection reset")
	}
	n := min(len(p), r.n)
	r.n -= n
	return n, nil
}

func TestPutReaderFails(t *testing.T) {
	s, dir := open(t)
	if _, _, err := s.Put(&failingReader{n: 5000}, 1<<20); err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("Put(a reader that fails) = %v, want its error", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(entries) != 0 {
		t.Errorf("tmp holds %v after a failed put, want nothing", entries)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	s, dir := open(t)
	data, _ := image(3, 4096)
	sha, _, err := s.Put(bytes.NewReader(data), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Image(sha); err != nil { // open, as a download would hold it
		t.Fatal(err)
	}
	path := filepath.Join(dir, "sha256", sha[:2], sha)
	tampered := slices.Clone(data)
	tampered[2000] ^= 0x01 // one flipped bit
	if err := os.WriteFile(path, tampered, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(sha); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify(%s) of a file with a flipped bit = %v, want ErrCorrupt", sha, err)
	}
	// Putting the right bytes again repairs the copy, and serving uses it.
	if _, _, err := s.Put(bytes.NewReader(data), 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(sha); err != nil {
		t.Errorf("Verify(%s) after putting the image again = %v, want nil", sha, err)
	}
	im, err := s.Image(sha)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := im.ReadAt(b, 2000); err != nil || b[0] != data[2000] {
		t.Errorf("ReadAt(2000) after the repair = %x, %v; want %x", b, err, data[2000])
	}
	if err := s.Verify(strings.Repeat("0", 64)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Verify(an unknown sha) = %v, want ErrNotFound", err)
	}
}

func TestConcurrentReadAt(t *testing.T) {
	s, _ := open(t)
	data, _ := image(4, 64*1024+1)
	sha, _, err := s.Put(bytes.NewReader(data), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	const readers, blockSize = 16, 1024
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for g := range readers {
		wg.Go(func() {
			im, err := s.Image(sha) // every reader opens: one file for all
			if err != nil {
				errs <- err
				return
			}
			buf := make([]byte, blockSize)
			for i := range 500 {
				off := int64((g*7919+i*104729)%len(data)) / blockSize * blockSize
				n, err := im.ReadAt(buf, off)
				if err != nil && !(errors.Is(err, io.EOF) && off+int64(n) == im.Size()) {
					errs <- err
					return
				}
				if !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
					errs <- errors.New("a block read concurrently differs from the image")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s.mu.RLock()
	n := len(s.open)
	s.mu.RUnlock()
	if n != 1 {
		t.Errorf("%d open images after concurrent reads of one, want 1", n)
	}
}

func TestDelete(t *testing.T) {
	s, dir := open(t)
	data, _ := image(5, 2048)
	sha, _, err := s.Put(bytes.NewReader(data), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	im, err := s.Image(sha)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(sha); err != nil {
		t.Fatalf("Delete(%s) = %v", sha, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sha256", sha[:2], sha)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the file after Delete: %v, want it gone", err)
	}
	if s.Has(sha) {
		t.Errorf("Has(%s) = true after Delete", sha)
	}
	if _, err := s.Image(sha); !errors.Is(err, ErrNotFound) {
		t.Errorf("Image(%s) after Delete = %v, want ErrNotFound", sha, err)
	}
	if _, err := im.ReadAt(make([]byte, 1), 0); err == nil {
		t.Errorf("ReadAt on an image held across its Delete = nil error, want a failure (its file is closed)")
	}
	if err := s.Delete(sha); err != nil {
		t.Errorf("Delete(%s) again = %v, want nil", sha, err)
	}
	if list, err := s.List(); err != nil || len(list) != 0 {
		t.Errorf("List() after Delete = %v, %v; want nothing", list, err)
	}
}

func TestMalformedSHA(t *testing.T) {
	s, dir := open(t)
	// A file outside the store that a path built from a bad name could reach.
	if err := os.WriteFile(filepath.Join(dir, "x"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	data, sha := image(6, 100)
	if _, _, err := s.Put(bytes.NewReader(data), 1<<20); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		"", "../x", "../../x", strings.Repeat("../", 21) + "x", "/etc/passwd",
		strings.ToUpper(sha), sha[:63], sha + "0", sha[:62] + "/x", sha[:2] + "/../../x" + sha[11:],
		strings.Repeat("g", 64), sha[:63] + "\x00",
	} {
		if _, err := s.Image(bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("Image(%q) = %v, want ErrNotFound", bad, err)
		}
		if s.Has(bad) {
			t.Errorf("Has(%q) = true", bad)
		}
		if err := s.Verify(bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("Verify(%q) = %v, want ErrNotFound", bad, err)
		}
		if err := s.Delete(bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("Delete(%q) = %v, want ErrNotFound", bad, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err != nil {
		t.Errorf("the file outside the store: %v, want it untouched", err)
	}
}

func TestList(t *testing.T) {
	s, dir := open(t)
	var want []string
	for i := range 5 {
		data, sha := image(uint64(10+i), 100+i)
		if _, _, err := s.Put(bytes.NewReader(data), 1<<20); err != nil {
			t.Fatal(err)
		}
		want = append(want, sha)
	}
	slices.Sort(want)
	// Files that cannot be images: skipped, not listed.
	for _, p := range []string{"sha256/README", "sha256/zz/abc", "sha256/" + want[0][:2] + "/notes.txt",
		"sha256/00/" + strings.Repeat("1", 64)} { // a name in the wrong shard
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.List()
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("List() = %v, %v; want %v", got, err, want)
	}
}

func TestClose(t *testing.T) {
	s, _ := open(t)
	data, sha := image(7, 100)
	if _, _, err := s.Put(bytes.NewReader(data), 1<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Image(sha); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close() again = %v, want nil", err)
	}
	if _, err := s.Image(sha); !errors.Is(err, ErrClosed) {
		t.Errorf("Image after Close = %v, want ErrClosed", err)
	}
}
