package facility

import "math"

// graph is the walking graph over zones, by zone index. Connections are
// stored as adjacency lists; the implicit connections between the zones of
// one room are not: a room's zones are contiguous in document order, so
// each zone keeps the span of its room and Walk measures the centre
// distances as it goes. A room of k zones would otherwise cost k² edges.
type graph struct {
	cx, cy []float64 // zone centres, metres
	room   []span    // zone -> the zones of its room
	start  []int32   // zone i's edges are edges[start[i]:start[i+1]]
	edges  []edge
}

type span struct{ lo, hi int32 }

type edge struct {
	to   int32
	cost float64
}

// newGraph builds the graph of zones connected by conns, each undirected.
func newGraph(zones []Zone, rooms []span, conns []connection) graph {
	n := len(zones)
	g := graph{
		cx:    make([]float64, n),
		cy:    make([]float64, n),
		room:  make([]span, n),
		start: make([]int32, n+1),
		edges: make([]edge, 2*len(conns)),
	}
	for i, z := range zones {
		g.cx[i], g.cy[i] = z.Centre()
	}
	for _, r := range rooms {
		for i := r.lo; i < r.hi; i++ {
			g.room[i] = r
		}
	}
	for _, c := range conns {
		g.start[c.from+1]++
		g.start[c.to+1]++
	}
	for i := range n {
		g.start[i+1] += g.start[i]
	}
	next := make([]int32, n)
	copy(next, g.start[:n])
	for _, c := range conns {
		g.edges[next[c.from]] = edge{c.to, c.cost}
		next[c.from]++
		g.edges[next[c.to]] = edge{c.from, c.cost}
		next[c.to]++
	}
	return g
}

// centreDistance returns the straight-line distance between the centres of
// zones a and b.
func (g *graph) centreDistance(a, b int32) float64 {
	return distance(g.cx[a], g.cy[a], g.cx[b], g.cy[b])
}

// centreDistance returns the straight-line distance between the centres of
// two zones: the cost of a connection that gives none.
func centreDistance(a, b Zone) float64 {
	ax, ay := a.Centre()
	bx, by := b.Centre()
	return distance(ax, ay, bx, by)
}

func distance(x1, y1, x2, y2 float64) float64 {
	dx, dy := x1-x2, y1-y2
	return math.Sqrt(dx*dx + dy*dy)
}

// Walk visits the zones reachable from zone from in increasing walking
// cost, calling yield with each zone's id and its cost in metres, from
// itself at 0, until yield returns false. Zones at the same cost come in
// document order. An unknown zone visits nothing. Walk does the work of
// each step only when asked for it, so a caller that stops after a few
// zones pays for a few zones.
func (f *Facility) Walk(from string, yield func(zone string, metres float64) bool) {
	src, ok := f.zoneIndex[from]
	if !ok {
		return
	}
	f.walk(src, func(v int32, d float64) bool { return yield(f.zones[v].ID, d) })
}

// Distance returns the walking cost between two zones; ok is false when
// either is unknown or to cannot be reached from from.
func (f *Facility) Distance(from, to string) (metres float64, ok bool) {
	src, ok1 := f.zoneIndex[from]
	dst, ok2 := f.zoneIndex[to]
	if !ok1 || !ok2 {
		return 0, false
	}
	f.walk(src, func(v int32, d float64) bool {
		if v == dst {
			metres, ok = d, true
			return false
		}
		return true
	})
	return metres, ok
}

// walk is Dijkstra's algorithm from src over f.graph.
func (f *Facility) walk(src int32, yield func(v int32, d float64) bool) {
	w, _ := f.walks.Get().(*walker)
	if w == nil {
		w = newWalker(len(f.zones))
	}
	defer f.walks.Put(w)
	w.reset()
	w.improve(src, 0)
	g := &f.graph
	for {
		v, d, ok := w.pop()
		if !ok || !yield(v, d) {
			return
		}
		// Relax v's neighbours only now that the caller wants more.
		for _, e := range g.edges[g.start[v]:g.start[v+1]] {
			w.improve(e.to, d+e.cost)
		}
		r := g.room[v]
		for u := r.lo; u < r.hi; u++ {
			if u != v {
				w.improve(u, d+g.centreDistance(v, u))
			}
		}
	}
}

// walker is the scratch state of one walk, pooled per Facility. A zone's
// dist is valid only when its seen mark is the current generation, so a
// walk starts without clearing anything.
type walker struct {
	gen  uint32
	seen []uint32 // generation in which dist was set
	done []uint32 // generation in which the zone was visited
	dist []float64
	heap []item // min-heap by (d, v), with stale entries skipped on pop
}

type item struct {
	d float64
	v int32
}

func newWalker(n int) *walker {
	return &walker{seen: make([]uint32, n), done: make([]uint32, n), dist: make([]float64, n)}
}

func (w *walker) reset() {
	w.gen++
	if w.gen == 0 { // wrapped: the marks of 2³² walks ago would look current
		clear(w.seen)
		clear(w.done)
		w.gen = 1
	}
	w.heap = w.heap[:0]
}

// improve records that v can be reached at cost d, if that is better than
// what is known.
func (w *walker) improve(v int32, d float64) {
	if w.done[v] == w.gen || (w.seen[v] == w.gen && w.dist[v] <= d) {
		return
	}
	w.seen[v], w.dist[v] = w.gen, d
	w.push(item{d, v})
}

// pop returns the nearest zone not visited yet and marks it visited.
func (w *walker) pop() (int32, float64, bool) {
	for len(w.heap) > 0 {
		it := w.heap[0]
		last := len(w.heap) - 1
		w.heap[0] = w.heap[last]
		w.heap = w.heap[:last]
		w.down(0)
		if w.done[it.v] == w.gen || it.d > w.dist[it.v] {
			continue // stale: v was improved or visited since
		}
		w.done[it.v] = w.gen
		return it.v, it.d, true
	}
	return 0, 0, false
}

func (a item) less(b item) bool { return a.d < b.d || (a.d == b.d && a.v < b.v) }

func (w *walker) push(it item) {
	w.heap = append(w.heap, it)
	h := w.heap
	i := len(h) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if !h[i].less(h[parent]) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func (w *walker) down(i int) {
	h := w.heap
	for {
		least := i
		if l := 2*i + 1; l < len(h) && h[l].less(h[least]) {
			least = l
		}
		if r := 2*i + 2; r < len(h) && h[r].less(h[least]) {
			least = r
		}
		if least == i {
			return
		}
		h[i], h[least] = h[least], h[i]
		i = least
	}
}

// Edge is a walkway between two zones, with its walking cost.
type Edge struct {
	From, To string
	Metres   float64
}

// Edges lists the walking graph: every connection of the document, once,
// and each zone of a room joined to the room's first zone (the implicit
// connections within a room, which Walk measures as it goes).
func (f *Facility) Edges() []Edge {
	g := &f.graph
	var out []Edge
	for i := range f.zones {
		for _, e := range g.edges[g.start[i]:g.start[i+1]] {
			if int(e.to) > i {
				out = append(out, Edge{f.zones[i].ID, f.zones[e.to].ID, e.cost})
			}
		}
		if r := g.room[i]; int32(i) > r.lo {
			out = append(out, Edge{f.zones[r.lo].ID, f.zones[i].ID, math.Hypot(g.cx[i]-g.cx[r.lo], g.cy[i]-g.cy[r.lo])})
		}
	}
	return out
}
