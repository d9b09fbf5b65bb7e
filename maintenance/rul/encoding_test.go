package rul

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

func TestMarshalRoundTrip(t *testing.T) {
	units := syntheticFleet(10, 9)
	m := train(t, units, smallConfig())
	data, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var d Model
	if err := d.UnmarshalBinary(data); err != nil {
		t.Fatalf("UnmarshalBinary: %v", err)
	}
	for _, u := range syntheticFleet(5, 10) {
		for _, n := range []int{1, 40, len(u.Observations)} {
			want, err1 := m.Predict(cut(u, n))
			got, err2 := d.Predict(cut(u, n))
			if err1 != nil || err2 != nil || got != want {
				t.Errorf("unit %s, %d observations: decoded model predicts %v (%v), want %v (%v)", u.ID, n, got, err2, want, err1)
			}
		}
	}
	if d.Cap() != m.Cap() || len(d.Channels()) != len(m.Channels()) {
		t.Errorf("decoded cap %v, channels %q; want %v, %q", d.Cap(), d.Channels(), m.Cap(), m.Channels())
	}
	again, err := d.MarshalBinary()
	if err != nil || !bytes.Equal(again, data) {
		t.Errorf("MarshalBinary of the decoded model differs from the original encoding (%v)", err)
	}
}

func TestUnmarshalErrors(t *testing.T) {
	cfg := smallConfig()
	cfg.Ensemble, cfg.Trees, cfg.Depth = 1, 3, 2
	m := train(t, syntheticFleet(4, 12), cfg)
	data, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// Every truncation fails.
	for n := range len(data) {
		var d Model
		if err := d.UnmarshalBinary(data[:n]); !errors.Is(err, ErrModelEncoding) {
			t.Fatalf("UnmarshalBinary of %d of %d bytes = %v, want %v", n, len(data), err, ErrModelEncoding)
		}
	}
	// The first tree's root: after the header, the channels, the bias,
	// the member count, the base and the tree and node counts.
	root := len(modelMagic) + 1 + 8 + 4 + 8 + 4 + 8 + 4 + 4
	for _, c := range m.channels {
		root += 2 + len(c) + 3*8
	}
	if f := int32(binary.LittleEndian.Uint32(data[root:])); f != m.members[0].trees[0][0].feature {
		t.Fatalf("test's offset of the root is wrong: feature %d, want %d", f, m.members[0].trees[0][0].feature)
	}
	corrupt := func(name string, change func(b []byte)) {
		b := bytes.Clone(data)
		change(b)
		var d Model
		if err := d.UnmarshalBinary(b); !errors.Is(err, ErrModelEncoding) {
			t.Errorf("%s: UnmarshalBinary = %v, want %v", name, err, ErrModelEncoding)
		}
	}
	corrupt("magic", func(b []byte) { b[0] = 'X' })
	corrupt("version", func(b []byte) { b[len(modelMagic)] = modelVersion + 1 })
	corrupt("cap", func(b []byte) { binary.LittleEndian.PutUint64(b[6:], math.Float64bits(math.NaN())) })
	corrupt("feature out of range", func(b []byte) { binary.LittleEndian.PutUint32(b[root:], 1<<20) })
	corrupt("child before parent", func(b []byte) { binary.LittleEndian.PutUint32(b[root+4:], 0) })
	corrupt("child out of range", func(b []byte) { binary.LittleEndian.PutUint32(b[root+4:], 1000) })
	corrupt("huge leaf", func(b []byte) {
		// The first leaf after the root: the root's left child.
		left := int(binary.LittleEndian.Uint32(b[root+4:]))
		for m.members[0].trees[0][left].feature >= 0 {
			left = int(m.members[0].trees[0][left].left)
		}
		binary.LittleEndian.PutUint64(b[root+left*nodeSize+16:], math.Float64bits(1e300))
	})
	var d Model
	if err := d.UnmarshalBinary(append(bytes.Clone(data), 0)); !errors.Is(err, ErrModelEncoding) {
		t.Errorf("UnmarshalBinary with a trailing byte = %v, want %v", err, ErrModelEncoding)
	}
}

func FuzzUnmarshalBinary(f *testing.F) {
	cfg := smallConfig()
	cfg.Ensemble, cfg.Trees, cfg.Depth = 2, 3, 2
	units := syntheticFleet(4, 13)
	m, err := Train(f.Context(), units, cfg)
	if err != nil {
		f.Fatal(err)
	}
	data, err := m.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(modelMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		var d Model
		if err := d.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, ErrModelEncoding) {
				t.Fatalf("UnmarshalBinary = %v, want an error wrapping %v", err, ErrModelEncoding)
			}
			return
		}
		// A model that decodes predicts, and encodes as it was.
		h := Unit{ID: "h", Channels: d.Channels()}
		for c := 1; c <= 40; c++ {
			v := make([]float64, len(h.Channels))
			for j := range v {
				v[j] = float64(c*j) / 7
			}
			h.Observations = append(h.Observations, Observation{Time: float64(c), Values: v})
		}
		p, err := d.Predict(h)
		if err != nil || math.IsNaN(p) || p < 0 || p > d.Cap() {
			t.Fatalf("decoded model: Predict = %v, %v", p, err)
		}
		again, err := d.MarshalBinary()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("decoded model encodes differently (%v)", err)
		}
	})
}
