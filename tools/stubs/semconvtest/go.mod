// Stand-in for github.com/open-telemetry/opentelemetry-collector-contrib/pkg/semconvtest.
// Only the TESTS of k8sattributesprocessor import that package; `go mod tidy` (run by ocb)
// still resolves it, and this Go module mirror answers 403 for every version's zip. Nothing
// in otelcol-kpod links it. builder-config.yaml replaces the real module with this directory.
module github.com/open-telemetry/opentelemetry-collector-contrib/pkg/semconvtest

go 1.25.0
