// Package semconvtest is an empty stand-in for the contrib test helper of the same name,
// so that `go mod tidy` in the ocb output (_build/) can resolve an import made only by a
// dependency's tests. See go.mod and builder-config.yaml.
package semconvtest
