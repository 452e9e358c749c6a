package testenv

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// ReadOTLPMetrics decodes an OTLP/HTTP metrics export as the collector's otlp_http exporter
// sends it: POST /v1/metrics, protobuf, gzip-compressed or not.
func ReadOTLPMetrics(r *http.Request) (pmetric.Metrics, error) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/metrics" {
		return pmetric.Metrics{}, fmt.Errorf("%s %s: want POST /v1/metrics", r.Method, r.URL.Path)
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		z, err := gzip.NewReader(r.Body)
		if err != nil {
			return pmetric.Metrics{}, err
		}
		body = z
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		return pmetric.Metrics{}, err
	}
	req := pmetricotlp.NewExportRequest()
	if err := req.UnmarshalProto(raw); err != nil {
		return pmetric.Metrics{}, fmt.Errorf("not an OTLP metrics request (%s): %v", r.Header.Get("Content-Type"), err)
	}
	return req.Metrics(), nil
}

// WriteOTLPResponse answers an export: accepted in full.
func WriteOTLPResponse(w http.ResponseWriter) {
	body, _ := pmetricotlp.NewExportResponse().MarshalProto()
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(body)
}
