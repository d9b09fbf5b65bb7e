package rul

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
)

// This file is the learner: gradient boosting of regression trees under
// squared loss (Friedman, "Greedy function approximation", 2001; the
// stochastic variant, 2002), with splits found on histograms of quantile
// bins as LightGBM and XGBoost's hist method do, and an L2 penalty on leaf
// values. It knows nothing of units or channels.

// boostParams are the parameters of one booster; Config documents them.
type boostParams struct {
	trees, depth, minLeaf int
	rate, subsample       float64
	colsample, lambda     float64
	workers               int
}

// dataset is a feature matrix quantised into bins, column by column.
type dataset struct {
	n     int
	bins  [][]uint8   // bins[f][row]
	edges [][]float64 // bin b of feature f holds edges[f][b-1] < x <= edges[f][b]
}

// newDataset quantises the columns cols[f][row] into at most maxBins
// (<= 256) bins each, with edges at quantiles halfway between observed
// values.
func newDataset(cols [][]float64, maxBins int) *dataset {
	d := &dataset{bins: make([][]uint8, len(cols)), edges: make([][]float64, len(cols))}
	if len(cols) > 0 {
		d.n = len(cols[0])
	}
	sorted := make([]float64, d.n)
	for f, col := range cols {
		copy(sorted, col)
		slices.Sort(sorted)
		d.edges[f] = quantileEdges(sorted, maxBins)
		b := make([]uint8, d.n)
		for i, x := range col {
			b[i] = uint8(sort.SearchFloat64s(d.edges[f], x))
		}
		d.bins[f] = b
	}
	return d
}

// quantileEdges returns at most maxBins-1 increasing edges that split the
// sorted values into bins of about equal counts, each edge halfway between
// two adjacent distinct values.
func quantileEdges(sorted []float64, maxBins int) []float64 {
	var edges []float64
	n := len(sorted)
	// Few distinct values: an edge between every two.
	distinct := 0
	for i := range n {
		if i == 0 || sorted[i] != sorted[i-1] {
			distinct++
			if distinct > maxBins {
				break
			}
		}
	}
	if distinct <= maxBins {
		for i := 1; i < n; i++ {
			if sorted[i] != sorted[i-1] {
				edges = append(edges, sorted[i-1]+(sorted[i]-sorted[i-1])/2)
			}
		}
		return edges
	}
	for q := 1; q < maxBins; q++ {
		// The last value of the q-th of maxBins equal shares.
		v := sorted[max(0, q*n/maxBins-1)]
		if len(edges) > 0 && v <= edges[len(edges)-1] {
			continue
		}
		// The first value greater than v.
		j := sort.Search(n, func(i int) bool { return sorted[i] > v })
		if j == n {
			break
		}
		edges = append(edges, v+(sorted[j]-v)/2)
	}
	return edges
}

// node is a node of a regression tree: a split when feature >= 0, else a
// leaf.
type node struct {
	feature   int32   // -1 for a leaf
	left      int32   // the children are nodes left and left+1
	threshold float64 // x[feature] <= threshold goes left
	value     float64 // of a leaf
	bin       uint8   // the split's bin when training: bin <= bin goes left
}

type tree []node

func (t tree) predict(x []float64) float64 {
	i := int32(0)
	for t[i].feature >= 0 {
		if x[t[i].feature] <= t[i].threshold {
			i = t[i].left
		} else {
			i = t[i].left + 1
		}
	}
	return t[i].value
}

// predictBinned follows the tree on row r of the training data.
func (t tree) predictBinned(d *dataset, r int) float64 {
	i := int32(0)
	for t[i].feature >= 0 {
		if d.bins[t[i].feature][r] <= t[i].bin {
			i = t[i].left
		} else {
			i = t[i].left + 1
		}
	}
	return t[i].value
}

// booster is a sum of trees.
type booster struct {
	base  float64
	trees []tree
}

func (b *booster) predict(x []float64) float64 {
	s := b.base
	for _, t := range b.trees {
		s += t.predict(x)
	}
	return s
}

// fitBooster fits p.trees trees to the targets y of the rows of d, each to
// the residuals of those before it on a random subsample of the rows and
// the features. It returns ctx's error when ctx is done first.
func fitBooster(ctx context.Context, d *dataset, y []float64, p boostParams, rng *rand.Rand) (booster, error) {
	var b booster
	for _, v := range y {
		b.base += v
	}
	b.base /= float64(len(y))
	g := newGrower(d, p)
	pred := make([]float64, d.n)
	for i := range pred {
		pred[i] = b.base
	}
	nf := len(d.bins)
	k := max(1, int(math.Round(p.colsample*float64(nf))))
	for range p.trees {
		if err := ctx.Err(); err != nil {
			return booster{}, err
		}
		for i := range y {
			g.grad[i] = y[i] - pred[i]
		}
		g.idx = g.idx[:0]
		for i := range d.n {
			if p.subsample >= 1 || rng.Float64() < p.subsample {
				g.idx = append(g.idx, int32(i))
			}
		}
		g.feats = g.feats[:0]
		if k < nf {
			for _, f := range rng.Perm(nf)[:k] {
				g.feats = append(g.feats, int32(f))
			}
			slices.Sort(g.feats)
		} else {
			for f := range nf {
				g.feats = append(g.feats, int32(f))
			}
		}
		if len(g.idx) == 0 {
			continue
		}
		t := g.grow()
		for i := range pred {
			pred[i] += t.predictBinned(d, i)
		}
		b.trees = append(b.trees, t)
	}
	return b, nil
}

// grower grows one tree depth first on the rows idx, splitting on the
// features feats. Each node owns a contiguous range of idx.
type grower struct {
	d     *dataset
	p     boostParams
	grad  []float64 // residual of every row
	idx   []int32
	feats []int32
	nb    int     // histogram stride: the largest number of bins
	free  []*hist // histograms to reuse
	t     tree
}

// hist holds, for each sampled feature k and bin b, the sum of the
// residuals and the count of the node's rows at k*nb+b.
type hist struct {
	sum []float64
	cnt []int32
}

func newGrower(d *dataset, p boostParams) *grower {
	g := &grower{d: d, p: p, grad: make([]float64, d.n), idx: make([]int32, 0, d.n)}
	for _, e := range d.edges {
		g.nb = max(g.nb, len(e)+1)
	}
	return g
}

func (g *grower) grow() tree {
	g.t = tree{{}}
	h := g.build(g.idx)
	g.split(0, 0, len(g.idx), 0, h)
	return slices.Clip(g.t)
}

// split makes node ni of the rows idx[lo:hi], whose histogram is h, a leaf
// or a split, and recurses. It releases h.
func (g *grower) split(ni int32, lo, hi, depth int, h *hist) {
	rows := g.idx[lo:hi]
	var sum float64
	for _, r := range rows {
		sum += g.grad[r]
	}
	n := len(rows)
	var (
		k   int
		bin uint8
		ok  bool
	)
	if depth < g.p.depth {
		k, bin, ok = g.best(h, sum, n)
	}
	if !ok {
		g.release(h)
		g.t[ni] = node{feature: -1, value: g.p.rate * sum / (float64(n) + g.p.lambda)}
		return
	}
	f := g.feats[k]
	col := g.d.bins[f]
	// Partition: rows with bin <= bin first.
	mid := 0
	for i, r := range rows {
		if col[r] <= bin {
			rows[i], rows[mid] = rows[mid], r
			mid++
		}
	}
	left := int32(len(g.t))
	g.t = append(g.t, node{}, node{})
	g.t[ni] = node{feature: f, left: left, threshold: g.d.edges[f][bin], bin: bin}
	// The smaller child's histogram is built; the larger's is the parent's
	// minus it.
	var hl, hr *hist
	if mid <= n-mid {
		hl = g.build(rows[:mid])
		subtract(h, hl)
		hr = h
	} else {
		hr = g.build(rows[mid:])
		subtract(h, hr)
		hl = h
	}
	g.split(left, lo, lo+mid, depth+1, hl)
	g.split(left+1, lo+mid, hi, depth+1, hr)
}

// best finds the split of largest gain in the squared loss, penalised by
// lambda, that leaves at least minLeaf rows on each side: the sampled
// feature index k and the last bin that goes left.
func (g *grower) best(h *hist, sum float64, n int) (k int, bin uint8, ok bool) {
	if n < 2*g.p.minLeaf {
		return 0, 0, false
	}
	lambda := g.p.lambda
	parent := sum * sum / (float64(n) + lambda)
	bestGain := 1e-9 * (1 + math.Abs(parent))
	for fk, f := range g.feats {
		nbins := len(g.d.edges[f]) + 1
		s := h.sum[fk*g.nb : fk*g.nb+nbins]
		c := h.cnt[fk*g.nb : fk*g.nb+nbins]
		var sl float64
		var nl int
		for b := range nbins - 1 {
			sl += s[b]
			nl += int(c[b])
			if nl < g.p.minLeaf {
				continue
			}
			nr := n - nl
			if nr < g.p.minLeaf {
				break
			}
			sr := sum - sl
			gain := sl*sl/(float64(nl)+lambda) + sr*sr/(float64(nr)+lambda) - parent
			if gain > bestGain {
				bestGain, k, bin, ok = gain, fk, uint8(b), true
			}
		}
	}
	return k, bin, ok
}

// parallelRows is the node size from which histograms are built by
// several goroutines, one per share of the features.
const parallelRows = 4096

// build returns the histogram of rows.
func (g *grower) build(rows []int32) *hist {
	h := g.alloc()
	fill := func(from, to int) {
		for k := from; k < to; k++ {
			col := g.d.bins[g.feats[k]]
			s := h.sum[k*g.nb : (k+1)*g.nb]
			c := h.cnt[k*g.nb : (k+1)*g.nb]
			for _, r := range rows {
				b := col[r]
				s[b] += g.grad[r]
				c[b]++
			}
		}
	}
	w := g.p.workers
	if w <= 1 || len(rows) < parallelRows {
		fill(0, len(g.feats))
		return h
	}
	var wg sync.WaitGroup
	per := (len(g.feats) + w - 1) / w
	for from := 0; from < len(g.feats); from += per {
		wg.Go(func() { fill(from, min(from+per, len(g.feats))) })
	}
	wg.Wait()
	return h
}

func (g *grower) alloc() *hist {
	size := len(g.feats) * g.nb
	if n := len(g.free); n > 0 {
		h := g.free[n-1]
		g.free = g.free[:n-1]
		h.sum, h.cnt = h.sum[:size], h.cnt[:size]
		clear(h.sum)
		clear(h.cnt)
		return h
	}
	full := len(g.d.bins) * g.nb
	return &hist{sum: make([]float64, size, full), cnt: make([]int32, size, full)}
}

func (g *grower) release(h *hist) { g.free = append(g.free, h) }

// subtract sets h to h minus c.
func subtract(h, c *hist) {
	for i := range h.sum {
		h.sum[i] -= c.sum[i]
		h.cnt[i] -= c.cnt[i]
	}
}
