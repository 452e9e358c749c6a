package kpodreceiver

import (
	"context"
	"slices"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/scraper"
	"go.opentelemetry.io/collector/scraper/scraperhelper"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/receiver/kpodreceiver/internal/metadata"
)

// NewFactory returns the factory of the kpod receiver.
func NewFactory() receiver.Factory {
	return receiver.NewFactory(metadata.Type, createDefaultConfig,
		receiver.WithMetrics(createMetricsReceiver, metadata.MetricsStability))
}

func createDefaultConfig() component.Config {
	cc := scraperhelper.NewDefaultControllerConfig()
	cc.CollectionInterval = 30 * time.Second
	cc.InitialDelay = time.Second
	cc.Timeout = 20 * time.Second
	return &Config{
		ControllerConfig:     cc,
		MetricsBuilderConfig: metadata.NewDefaultMetricsBuilderConfig(),
		Histograms:           metadata.DefaultHistogramsConfig(),
		Profile:              ProfileStandard,
		ProcRoot:             "/proc",
		Kubernetes:           KubernetesConfig{AuthType: "serviceAccount", SyncTimeout: 30 * time.Second},
		Filters:              FilterConfig{ExcludeNamespaces: slices.Clone(defaultExcludeNamespaces)},
		BPFPreallocCgroups:   bpfload.DefaultPreallocCgroups,
	}
}

func createMetricsReceiver(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Metrics) (receiver.Metrics, error) {
	c := cfg.(*Config)
	s := newScraper(c, set)
	sc, err := scraper.NewMetrics(s.scrape, scraper.WithStart(s.start), scraper.WithShutdown(s.shutdown))
	if err != nil {
		return nil, err
	}
	return scraperhelper.NewMetricsController(&c.ControllerConfig, set, next, scraperhelper.AddMetricsScraper(metadata.Type, sc))
}
