package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/medfleet/medfleet/inventory"
)

// httpHandler serves /healthz (200 when etcd answers, 503 when it does not),
// when metrics is not nil /metrics, and the locate page with its API.
func (s *Server) httpHandler(store *etcdStore, inv *inventory.Inventory, metrics http.Handler, web *webAPI) http.Handler {
	mux := http.NewServeMux()
	web.register(mux)
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if _, err := store.client.Get(ctx, "/medfleet/v1/", clientv3.WithCountOnly()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "etcd: %v\n", err)
			return
		}
		fmt.Fprintf(w, "ok\ndevices %d\n", inv.Len())
	})
	return mux
}
