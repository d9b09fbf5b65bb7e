package server

import (
	"fmt"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/medfleet/medfleet/inventory"
)

// httpHandler serves /healthz, when metrics is not nil /metrics, with
// http.pprof /debug/pprof/, and the locate page with its API.
//
// /healthz answers 200 while etcd answers, 503 while it does not (the
// replica then still serves devices and reads, from memory), with one
// "name value" line each: the state, devices, whether this replica leads
// the controllers, etcd's state and whether writes are accepted.
func (s *Server) httpHandler(store *storeHealth, inv *inventory.Inventory, metrics http.Handler, web *webAPI) http.Handler {
	mux := http.NewServeMux()
	web.register(mux)
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	if s.cfg.HTTP.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index) // and the named profiles under it
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		since, cause := store.unreachable()
		state, etcd, writes := "ok", "ok", "accepted"
		if !since.IsZero() {
			w.WriteHeader(http.StatusServiceUnavailable)
			state, writes = "degraded", "refused"
			etcd = fmt.Sprintf("unreachable since %s: %v", since.UTC().Format(time.RFC3339), cause)
		}
		fmt.Fprintf(w, "%s\ndevices %d\nleader %t\netcd %s\nwrites %s\n", state, inv.Len(), s.leading.Load(), etcd, writes)
	})
	return mux
}
