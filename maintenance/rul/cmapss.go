package rul

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// cmapssChannels are the channel names ReadCMAPSS gives the 24 columns after
// unit and cycle: the three operational settings, then the 21 sensors.
var cmapssChannels = func() []string {
	names := []string{"setting1", "setting2", "setting3"}
	for i := 1; i <= 21; i++ {
		names = append(names, "s"+strconv.Itoa(i))
	}
	return names
}()

// cmapssColumns is the number of columns of a C-MAPSS row: unit, cycle and
// the channels.
var cmapssColumns = 2 + len(cmapssChannels)

// maxLine bounds a line of a C-MAPSS or RUL file; real rows are ~200 bytes.
const maxLine = 64 << 10

// LineError is a line of an input file that cannot be read.
type LineError struct {
	Line int // 1-based
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// ReadCMAPSS reads a NASA C-MAPSS train or test file (train_FD00x.txt,
// test_FD00x.txt): space-separated rows of 26 columns, unit number, cycle,
// three operational settings and 21 sensor readings. Each unit becomes a
// Unit with ID the unit number, Time the cycle, and channels named setting1,
// setting2, setting3, s1, ..., s21. A unit's rows must be contiguous with increasing cycles;
// blank lines are skipped. Errors are *LineError, wrapped, naming the line.
func ReadCMAPSS(r io.Reader) ([]Unit, error) {
	var (
		units []Unit
		seen  = make(map[int]bool)
		unit  = -1
	)
	err := readLines(r, func(line int, fields []string) error {
		if len(fields) != cmapssColumns {
			return fmt.Errorf("want %d columns, got %d", cmapssColumns, len(fields))
		}
		id, err := strconv.Atoi(fields[0])
		if err != nil || id < 0 {
			return fmt.Errorf("unit %q: want a non-negative integer", fields[0])
		}
		cycle, err := parseFinite(fields[1])
		if err != nil {
			return fmt.Errorf("cycle: %w", err)
		}
		values := make([]float64, len(cmapssChannels))
		for j, f := range fields[2:] {
			if values[j], err = parseFinite(f); err != nil {
				return fmt.Errorf("column %d (%s): %w", j+3, cmapssChannels[j], err)
			}
		}
		if id != unit {
			if seen[id] {
				return fmt.Errorf("unit %d again after unit %d: a unit's rows must be contiguous", id, unit)
			}
			seen[id], unit = true, id
			units = append(units, Unit{ID: strconv.Itoa(id), Channels: slices.Clone(cmapssChannels)})
		}
		u := &units[len(units)-1]
		if n := len(u.Observations); n > 0 && cycle <= u.Observations[n-1].Time {
			return fmt.Errorf("unit %d: cycle %v after cycle %v: want increasing cycles", id, cycle, u.Observations[n-1].Time)
		}
		u.Observations = append(u.Observations, Observation{Time: cycle, Values: values})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cmapss: %w", err)
	}
	return units, nil
}

// ReadRUL reads a C-MAPSS truth file (RUL_FD00x.txt): one remaining useful
// life per line, in the order of the test file's units. Errors are
// *LineError, wrapped.
func ReadRUL(r io.Reader) ([]float64, error) {
	var out []float64
	err := readLines(r, func(line int, fields []string) error {
		if len(fields) != 1 {
			return fmt.Errorf("want 1 column, got %d", len(fields))
		}
		v, err := parseFinite(fields[0])
		if err != nil {
			return err
		}
		if v < 0 {
			return fmt.Errorf("remaining life %v: must not be negative", v)
		}
		out = append(out, v)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rul file: %w", err)
	}
	return out, nil
}

// readLines calls fn with the whitespace-separated fields of each non-blank
// line, and wraps its error in a *LineError.
func readLines(r io.Reader, fn func(line int, fields []string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	line := 0
	for sc.Scan() {
		line++
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if err := fn(line, fields); err != nil {
			return &LineError{Line: line, Err: err}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return &LineError{Line: line + 1, Err: fmt.Errorf("longer than %d bytes", maxLine)}
		}
		return err
	}
	return nil
}

// parseFinite parses a decimal number and refuses NaN and infinities.
func parseFinite(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: not a number", s)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q: not a finite number", s)
	}
	return v, nil
}
