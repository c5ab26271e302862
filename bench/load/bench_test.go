package load

import (
	"testing"
)

// BenchmarkHTTP1 measures the HTTP/1.1 client against serve.HTTP on loopback, both in
// this process: ns/op is the cost of a request to the generator and the server
// together; the generator's own share is what the CPU profile shows.
func BenchmarkHTTP1(b *testing.B) {
	benchHTTP(b, HTTPOptions{Connections: 10})
}

func BenchmarkH2C(b *testing.B) {
	benchHTTP(b, HTTPOptions{Connections: 10, Proto: ProtoH2C})
}

func benchHTTP(b *testing.B, o HTTPOptions) {
	_, base := httpBackend(b)
	o.URL = base + "/"
	o.Requests = uint64(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	r, err := HTTP(b.Context(), o)
	if err != nil {
		b.Fatal(err)
	}
	if r.Ops != uint64(b.N) || len(r.Errors) > 0 {
		b.Fatalf("%d of %d requests, errors %v", r.Ops, b.N, r.Errors)
	}
	b.ReportMetric(r.Rate, "req/s")
}
