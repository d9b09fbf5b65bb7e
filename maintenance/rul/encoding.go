package rul

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The binary encoding of a Model, little-endian:
//
//	magic "MFRUL", version byte
//	cap f64
//	channels u32, each: name (u16 length, bytes), mean f64, scale f64, health-index weight f64
//	health-index bias f64
//	members u32, each: base f64, trees u32, each: nodes u32, each:
//	  feature i32 (-1: leaf), left i32, threshold f64, value f64
//
// The version names the feature set as well as the layout: a model
// trained with other features must not decode.
const (
	modelMagic   = "MFRUL"
	modelVersion = 1
	nodeSize     = 4 + 4 + 8 + 8
	// maxValue bounds the cap, the bases and the leaf values of a model
	// that decodes, so that no sum of them overflows into NaN.
	maxValue = 1e12
)

// ErrModelEncoding: UnmarshalBinary was given something other than a
// model of this version.
var ErrModelEncoding = errors.New("rul: bad model encoding")

// MarshalBinary encodes the model, for the server to store.
func (m *Model) MarshalBinary() ([]byte, error) {
	if len(m.members) == 0 {
		return nil, ErrUntrained
	}
	for _, name := range m.channels {
		if len(name) > math.MaxUint16 {
			return nil, fmt.Errorf("rul: marshal: channel name of %d bytes", len(name))
		}
	}
	b := append([]byte(modelMagic), modelVersion)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(m.cap))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.channels)))
	for c, name := range m.channels {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(name)))
		b = append(b, name...)
		for _, v := range []float64{m.mean[c], m.scale[c], m.hiWeights[c]} {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
	}
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(m.hiBias))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.members)))
	for _, mb := range m.members {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(mb.base))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(mb.trees)))
		for _, t := range mb.trees {
			b = binary.LittleEndian.AppendUint32(b, uint32(len(t)))
			for _, n := range t {
				b = binary.LittleEndian.AppendUint32(b, uint32(n.feature))
				b = binary.LittleEndian.AppendUint32(b, uint32(n.left))
				b = binary.LittleEndian.AppendUint64(b, math.Float64bits(n.threshold))
				b = binary.LittleEndian.AppendUint64(b, math.Float64bits(n.value))
			}
		}
	}
	return b, nil
}

// UnmarshalBinary decodes a model that MarshalBinary encoded, and checks
// it whole, so that Predict cannot fail on a model that decoded. Errors
// wrap ErrModelEncoding.
func (m *Model) UnmarshalBinary(data []byte) error {
	d, err := decodeModel(data)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrModelEncoding, err)
	}
	*m = *d
	return nil
}

func decodeModel(data []byte) (*Model, error) {
	r := &reader{b: data}
	if string(r.next(len(modelMagic))) != modelMagic {
		return nil, errors.New("not a model")
	}
	if v := r.next(1); r.err == nil && v[0] != modelVersion {
		return nil, fmt.Errorf("version %d, want %d", v[0], modelVersion)
	}
	m := &Model{cap: r.float()}
	if r.err == nil && !(m.cap > 0 && m.cap <= maxValue) {
		return nil, fmt.Errorf("cap %v", m.cap)
	}
	nc := r.count(2 + 3*8)
	seen := make(map[string]bool)
	for range nc {
		name := string(r.next(int(r.uint16())))
		mean, scale, w := r.float(), r.float(), r.float()
		if r.err != nil {
			break
		}
		if name == "" || seen[name] {
			return nil, fmt.Errorf("channel %q empty or twice", name)
		}
		if !finite(mean) || !finite(w) || !(scale > 0 && finite(scale)) {
			return nil, fmt.Errorf("channel %q: mean %v, scale %v, weight %v", name, mean, scale, w)
		}
		seen[name] = true
		m.channels = append(m.channels, name)
		m.mean, m.scale, m.hiWeights = append(m.mean, mean), append(m.scale, scale), append(m.hiWeights, w)
	}
	m.hiBias = r.float()
	if r.err == nil && (nc == 0 || !finite(m.hiBias)) {
		return nil, fmt.Errorf("%d channels, health-index bias %v", nc, m.hiBias)
	}
	nf := int32(numFeatures(nc + 1))
	nm := r.count(8 + 4)
	for range nm {
		mb := booster{base: r.float()}
		nt := r.count(4 + nodeSize)
		for range nt {
			nn := r.count(nodeSize)
			if r.err != nil {
				break
			}
			if nn == 0 {
				return nil, errors.New("empty tree")
			}
			t := make(tree, nn)
			for i := range t {
				n := &t[i]
				n.feature, n.left = int32(r.uint32()), int32(r.uint32())
				n.threshold, n.value = r.float(), r.float()
				// Children follow their parent, so that Predict ends.
				switch {
				case r.err != nil:
				case n.feature == -1:
					if !bounded(n.value) {
						return nil, fmt.Errorf("leaf value %v", n.value)
					}
				case n.feature < 0 || n.feature >= nf || n.left <= int32(i) || int(n.left) >= nn-1 || math.IsNaN(n.threshold):
					return nil, fmt.Errorf("node %d: feature %d of %d, children %d of %d, threshold %v", i, n.feature, nf, n.left, nn, n.threshold)
				}
			}
			mb.trees = append(mb.trees, t)
		}
		if r.err == nil && !bounded(mb.base) {
			return nil, fmt.Errorf("base %v", mb.base)
		}
		m.members = append(m.members, mb)
	}
	if r.err != nil {
		return nil, r.err
	}
	if nm == 0 {
		return nil, errors.New("no members")
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%d bytes after the model", len(r.b))
	}
	return m, nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func bounded(v float64) bool { return math.Abs(v) <= maxValue }

// reader reads little-endian values; after the first short read it
// returns zeros and keeps the error.
type reader struct {
	b   []byte
	err error
}

var errShort = errors.New("truncated")

func (r *reader) next(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.err = errShort
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) uint16() uint16 {
	if b := r.next(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (r *reader) uint32() uint32 {
	if b := r.next(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *reader) float() float64 {
	if b := r.next(8); b != nil {
		return math.Float64frombits(binary.LittleEndian.Uint64(b))
	}
	return 0
}

// count reads a count of items of at least size bytes each, and refuses
// one that the remaining bytes cannot hold, so that a corrupt count does
// not allocate.
func (r *reader) count(size int) int {
	n := int(r.uint32())
	if r.err == nil && n > len(r.b)/size {
		r.err = fmt.Errorf("count %d exceeds the %d bytes left", n, len(r.b))
		return 0
	}
	return n
}
