package audit

import (
	"context"
	"sync"
	"testing"

	"github.com/medfleet/medfleet/internal/etcdtest"
)

// BenchmarkAppend is the audit log's throughput under load: each op is a
// burst of concurrent appends, as from as many gRPC calls, group-committed
// to a real etcd.
func BenchmarkAppend(b *testing.B) {
	const callers = 64
	e := etcdtest.Start(b, "")
	l := start(b, e.Client)
	b.ReportAllocs()
	for b.Loop() {
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				if err := l.Append(context.Background(), record("users/alice", i)); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	}
	b.ReportMetric(float64(b.N*callers)/b.Elapsed().Seconds(), "records/s")
}
