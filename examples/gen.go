// Package examples holds kpod's deployment examples; it has no code. The files derived from
// them (the PrometheusRule and ConfigMap of kubernetes/, the rules and dashboard of the
// charts/kpod chart) are written by ./gen, run by `make generate` (go generate ./...) and
// checked by `make check-generate`.
package examples

//go:generate go run ./gen -root ..
