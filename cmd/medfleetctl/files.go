package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// outFile is a file that a command will write once the server has
// answered. It is opened before the call, so that a file that exists, or a
// directory that cannot be written, fails the command before anything
// irreversible (a new credential, which revokes the old one) happens on the
// server.
//
// Without force the file itself is created (O_EXCL) and removed again by
// abort; with force a temporary file beside it is renamed over it by
// commit, so that an existing file is replaced whole, with the new mode,
// or not at all.
type outFile struct {
	flag, path string
	f          *os.File
	tmp        string // with force
}

// createOutFile prepares path for writing with mode. The errors are usage
// errors naming flag.
func createOutFile(flag, path string, mode fs.FileMode, force bool) (*outFile, error) {
	if path == "" {
		return nil, usageError{err: fmt.Errorf("%s: want a file name", flag)}
	}
	o := &outFile{flag: flag, path: path}
	var err error
	if force {
		if fi, serr := os.Stat(path); serr == nil && fi.IsDir() {
			return nil, usageError{err: fmt.Errorf("%s %q: is a directory", flag, path)}
		}
		o.f, err = os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
		if err == nil {
			o.tmp = o.f.Name()
		}
	} else {
		o.f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if errors.Is(err, fs.ErrExist) {
			return nil, usageError{err: fmt.Errorf("%s %q: the file exists; --force replaces it", flag, path)}
		}
	}
	if err != nil {
		return nil, usageError{err: fmt.Errorf("%s %q: %w", flag, path, unwrapPath(err))}
	}
	// Exactly mode, whatever the umask.
	if err := o.f.Chmod(mode); err != nil {
		o.abort()
		return nil, usageError{err: fmt.Errorf("%s %q: %w", flag, path, unwrapPath(err))}
	}
	return o, nil
}

// commit writes data and puts the file in place.
func (o *outFile) commit(data []byte) error {
	_, err := o.f.Write(data)
	if err == nil {
		err = o.f.Sync()
	}
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	if err == nil && o.tmp != "" {
		err = os.Rename(o.tmp, o.path)
	}
	if err != nil {
		o.remove()
		return fmt.Errorf("%s %q: %w", o.flag, o.path, err)
	}
	return nil
}

// abort removes what createOutFile made. It is a no-op after commit.
func (o *outFile) abort() {
	if o.f.Close() == nil { // not yet committed
		o.remove()
	}
}

func (o *outFile) remove() {
	if o.tmp != "" {
		_ = os.Remove(o.tmp)
	} else {
		_ = os.Remove(o.path)
	}
}

// daysFlag is a duration flag that also takes days, "90d", which is how
// certificate and token lifetimes are thought of; time.ParseDuration
// stops at hours.
type daysFlag time.Duration

func (d *daysFlag) String() string {
	v := time.Duration(*d)
	if v != 0 && v%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(v/(24*time.Hour)), 10) + "d"
	}
	return v.String()
}

func (d *daysFlag) Set(s string) error {
	v, err := parseDays(s)
	if err != nil {
		return err
	}
	*d = daysFlag(v)
	return nil
}

func (d *daysFlag) Type() string { return "duration" }

// parseDays parses "90d" as 90 days, anything else as time.ParseDuration
// does. Negative durations are refused.
func parseDays(s string) (time.Duration, error) {
	var v time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseUint(n, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("want a duration such as 90d or 720h, got %q", s)
		}
		v = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if v, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("want a duration such as 90d or 720h, got %q", s)
		}
	}
	if v < 0 {
		return 0, fmt.Errorf("must not be negative, got %q", s)
	}
	return v, nil
}
