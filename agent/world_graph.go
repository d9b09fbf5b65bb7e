package agent

import (
	"cmp"
	"math"
	"slices"
)

// worldGraph is a World's zones and walkways, with zone ids interned as
// indexes in id order. It is immutable after newWorldGraph, apart from the
// cache of shortest-path trees, which its owner guards.
type worldGraph struct {
	zones []worldZone
	index map[string]int32
	adj   [][]arc // by zone, sorted by neighbour; one arc per pair, the shortest
	comp  []int32 // connected component of each zone
	// byKind lists the zones of each kind; rooms are the zones that are
	// not corridors.
	byKind map[string][]int32
	rooms  []int32

	trees  map[int32]*pathTree // by source zone
	cached int                 // entries held by trees
}

type worldZone struct {
	id, floor, kind string
	x, y            float64
}

type arc struct {
	to     int32
	metres float64
}

// pathTree is the result of Dijkstra's algorithm from one zone: the
// distance to every zone (+Inf when unreachable) and the previous zone on
// the shortest path (-1 for the source and unreachable zones).
type pathTree struct {
	dist []float64
	prev []int32
}

// maxCachedPaths bounds the entries of the cached trees (12 bytes each):
// a facility of ~1000 zones keeps every tree, a bigger one computes the
// rest each time.
const maxCachedPaths = 1 << 20

// newWorldGraph builds the graph of w. It leaves out the edges that
// Validate would refuse.
func newWorldGraph(w *World) *worldGraph {
	g := &worldGraph{index: make(map[string]int32, len(w.Zones)), byKind: map[string][]int32{}, trees: map[int32]*pathTree{}}
	for _, z := range w.Zones {
		g.zones = append(g.zones, worldZone{id: z.ID, floor: z.Floor, kind: z.Kind, x: z.X, y: z.Y})
	}
	slices.SortFunc(g.zones, func(a, b worldZone) int { return cmp.Compare(a.id, b.id) })
	for i, z := range g.zones {
		g.index[z.id] = int32(i)
		g.byKind[z.kind] = append(g.byKind[z.kind], int32(i))
		if z.kind != ZoneKindCorridor {
			g.rooms = append(g.rooms, int32(i))
		}
	}
	g.adj = make([][]arc, len(g.zones))
	for _, e := range w.Edges {
		a, okA := g.index[e.From]
		b, okB := g.index[e.To]
		if !okA || !okB || a == b || !(e.Metres >= 0) {
			continue // Validate says why
		}
		m := e.Metres
		if m == 0 {
			m = math.Hypot(g.zones[a].x-g.zones[b].x, g.zones[a].y-g.zones[b].y)
		}
		if !(m > 0) || math.IsInf(m, 1) {
			continue
		}
		g.link(a, b, m)
		g.link(b, a, m)
	}
	for i := range g.adj {
		slices.SortFunc(g.adj[i], func(x, y arc) int { return int(x.to - y.to) })
	}
	g.comp = make([]int32, len(g.zones))
	for i := range g.comp {
		g.comp[i] = -1
	}
	var stack []int32
	for i := range g.zones {
		if g.comp[i] >= 0 {
			continue
		}
		g.comp[i] = int32(i)
		stack = append(stack[:0], int32(i))
		for len(stack) > 0 {
			z := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, a := range g.adj[z] {
				if g.comp[a.to] < 0 {
					g.comp[a.to] = int32(i)
					stack = append(stack, a.to)
				}
			}
		}
	}
	return g
}

// link adds the arc a->b, or shortens the one there is.
func (g *worldGraph) link(a, b int32, metres float64) {
	for i := range g.adj[a] {
		if g.adj[a][i].to == b {
			g.adj[a][i].metres = min(g.adj[a][i].metres, metres)
			return
		}
	}
	g.adj[a] = append(g.adj[a], arc{to: b, metres: metres})
}

// metres is the length of the walkway between two adjacent zones.
func (g *worldGraph) metres(a, b int32) float64 {
	for _, x := range g.adj[a] {
		if x.to == b {
			return x.metres
		}
	}
	return math.Inf(1)
}

// reachable reports whether a path joins a and b.
func (g *worldGraph) reachable(a, b int32) bool { return g.comp[a] == g.comp[b] }

// tree returns the shortest-path tree from src, from the cache when it can.
func (g *worldGraph) tree(src int32) *pathTree {
	if t, ok := g.trees[src]; ok {
		return t
	}
	t := g.dijkstra(src)
	if g.cached+len(g.zones) <= maxCachedPaths {
		g.trees[src] = t
		g.cached += len(g.zones)
	}
	return t
}

// dijkstra computes the shortest paths from src. Of two equally short
// paths, the one whose last step comes from the lower zone index wins, so
// that the paths are the same in every run.
func (g *worldGraph) dijkstra(src int32) *pathTree {
	n := len(g.zones)
	t := &pathTree{dist: make([]float64, n), prev: make([]int32, n)}
	for i := range n {
		t.dist[i] = math.Inf(1)
		t.prev[i] = -1
	}
	t.dist[src] = 0
	done := make([]bool, n)
	q := distHeap{{0, src}}
	for len(q) > 0 {
		it := q.pop()
		if done[it.zone] {
			continue
		}
		done[it.zone] = true
		for _, a := range g.adj[it.zone] {
			d := it.dist + a.metres
			if d < t.dist[a.to] || d == t.dist[a.to] && !done[a.to] && it.zone < t.prev[a.to] {
				t.dist[a.to] = d
				t.prev[a.to] = it.zone
				q.push(distItem{d, a.to})
			}
		}
	}
	return t
}

// path returns the zones of the shortest path from src to dst, both
// included, or nil when there is none.
func (g *worldGraph) path(src, dst int32) []int32 {
	t := g.tree(src)
	if math.IsInf(t.dist[dst], 1) {
		return nil
	}
	var p []int32
	for z := dst; z >= 0; z = t.prev[z] {
		p = append(p, z)
	}
	slices.Reverse(p)
	return p
}

// distance returns the length of the shortest path from src to dst, +Inf
// when there is none.
func (g *worldGraph) distance(src, dst int32) float64 { return g.tree(src).dist[dst] }

// ShortestPath returns the zone ids of the shortest walk from one zone of w
// to another, both included, and its length in metres; ok is false when a
// zone is unknown or no walkway joins them. It is the path the simulator's
// devices walk along, for tests and tools: each call builds the graph.
func (w *World) ShortestPath(from, to string) (zones []string, metres float64, ok bool) {
	g := newWorldGraph(w)
	a, okA := g.index[from]
	b, okB := g.index[to]
	if !okA || !okB {
		return nil, 0, false
	}
	p := g.path(a, b)
	if p == nil {
		return nil, 0, false
	}
	for _, z := range p {
		zones = append(zones, g.zones[z].id)
	}
	return zones, g.distance(a, b), true
}

type distItem struct {
	dist float64
	zone int32
}

// distHeap is a binary min-heap of distItem by distance, then zone.
type distHeap []distItem

func (h distItem) less(o distItem) bool {
	return h.dist < o.dist || h.dist == o.dist && h.zone < o.zone
}

func (h *distHeap) push(it distItem) {
	*h = append(*h, it)
	q := *h
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if !q[i].less(q[p]) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

func (h *distHeap) pop() distItem {
	q := *h
	top := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q = q[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(q) && q[l].less(q[m]) {
			m = l
		}
		if r < len(q) && q[r].less(q[m]) {
			m = r
		}
		if m == i {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	return top
}
