// Package bench holds kpod's benchmarks: `make bench` runs them and writes BENCHMARKS.md.
// Everything else in this directory is behind the `bench` build tag, so `go test ./...` and
// `go vet ./...` never build or run it. See README.md here.
package bench
