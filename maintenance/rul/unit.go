package rul

import (
	"errors"
	"fmt"
	"math"
)

// Unit is one device's history: its observations in time order, each a
// value for every channel.
type Unit struct {
	// ID names the unit in errors and reports.
	ID string
	// Channels names the values of every observation: Observations[i].Values[j]
	// is a reading of channel Channels[j]. Names are unique.
	Channels []string
	// Observations are in strictly increasing Time.
	Observations []Observation
}

// Observation is one multichannel reading of a unit.
type Observation struct {
	// Time is the unit's age when observed, in the unit RUL is counted in:
	// cycles, operating hours. It is not wall-clock time: the model uses it
	// as a feature.
	Time float64
	// Values holds one reading per channel of the unit. NaN is a missing
	// reading: the model carries the last reading of the channel forward.
	Values []float64
}

// Errors of units and models. They are wrapped with the unit and channel.
var (
	// ErrNoObservations: a unit has no observations.
	ErrNoObservations = errors.New("rul: no observations")
	// ErrChannel: a unit lacks a channel the model needs, or names one twice.
	ErrChannel = errors.New("rul: bad channels")
	// ErrUnit: a unit is inconsistent (values per observation, time order).
	ErrUnit = errors.New("rul: bad unit")
)

// check verifies the unit's shape: unique channel names, one value per
// channel in every observation, finite and strictly increasing times.
func (u Unit) check() error {
	if len(u.Observations) == 0 {
		return fmt.Errorf("unit %q: %w", u.ID, ErrNoObservations)
	}
	seen := make(map[string]bool, len(u.Channels))
	for _, c := range u.Channels {
		if seen[c] {
			return fmt.Errorf("unit %q: channel %q twice: %w", u.ID, c, ErrChannel)
		}
		seen[c] = true
	}
	prev := math.Inf(-1)
	for i, o := range u.Observations {
		if len(o.Values) != len(u.Channels) {
			return fmt.Errorf("unit %q: observation %d: %d values for %d channels: %w", u.ID, i, len(o.Values), len(u.Channels), ErrUnit)
		}
		if math.IsNaN(o.Time) || math.IsInf(o.Time, 0) || o.Time <= prev {
			return fmt.Errorf("unit %q: observation %d: time %v does not follow %v: %w", u.ID, i, o.Time, prev, ErrUnit)
		}
		prev = o.Time
	}
	return nil
}

// columns maps names to the unit's channel indices; it fails when the unit
// lacks one of them.
func (u Unit) columns(names []string) ([]int, error) {
	at := make(map[string]int, len(u.Channels))
	for j, c := range u.Channels {
		at[c] = j
	}
	cols := make([]int, len(names))
	for i, name := range names {
		j, ok := at[name]
		if !ok {
			return nil, fmt.Errorf("unit %q: no channel %q: %w", u.ID, name, ErrChannel)
		}
		cols[i] = j
	}
	return cols, nil
}
