//go:build bench

package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/kpod-project/kpod/internal/window"
	"github.com/kpod-project/kpod/receiver/kpodreceiver"
)

// kpodRun is the kpod receiver running in this process, created through its factory with a
// real configuration: the families are loaded and attached by the receiver's own start code
// (profile, or profile "custom" with one collector enabled), exactly as in otelcol-kpod.
type kpodRun struct {
	rcv receiver.Metrics

	mu        sync.Mutex
	cycles    []float64            // kpod.collection.cycle.duration of each scrape, seconds
	collector map[string][]float64 // kpod.collector.duration per collector, seconds
	points    []int                // data points per scrape
	cycleSeen chan struct{}
}

type kpodOptions struct {
	Profile    string   // minimal, standard, comprehensive, or custom with Collectors
	Collectors []string // enabled on top of the profile
	Interval   time.Duration
	Delay      time.Duration
	// ExactSoftirqs: the softirqs family times every soft IRQ (latency_sample 1, no windows).
	ExactSoftirqs bool
}

// windowed is the latency sample the families that time in windows (syscall's enter
// program, softirqs' two programs) run them with in this config (their default), and which
// of them are in it; 0 when none is.
func (o kpodOptions) windowed() (uint32, []string) {
	var fams []string
	for _, f := range windowedFamilies {
		if o.has(f) && !(f == "softirqs" && o.ExactSoftirqs) {
			fams = append(fams, f)
		}
	}
	if len(fams) == 0 {
		return 0, nil
	}
	return window.DefaultSample, fams
}

func (o kpodOptions) has(family string) bool {
	return slices.Contains(o.Collectors, family) || kpodreceiver.InProfile(family, o.Profile)
}

func benchLogger() *zap.Logger {
	enc := zap.NewDevelopmentEncoderConfig()
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(zapcore.AddSync(logSink{})), zap.WarnLevel)
	return zap.New(core)
}

// logSink sends the receiver's warnings to the bench log, each message once.
type logSink struct{}

var seenLogs sync.Map

func (logSink) Write(p []byte) (int, error) {
	msg := string(p)
	if f := strings.SplitN(msg, "\t", 3); len(f) == 3 {
		msg = f[2] // without the time stamp
	}
	if _, dup := seenLogs.LoadOrStore(msg, true); !dup {
		logf("kpod: %s (logged once)", msg)
	}
	return len(p), nil
}

func startKpod(o kpodOptions) (*kpodRun, error) {
	f := kpodreceiver.NewFactory()
	cfg := f.CreateDefaultConfig().(*kpodreceiver.Config)
	cfg.Profile = o.Profile
	cfg.NodeName = "kpod-bench"
	if o.Interval > 0 {
		cfg.CollectionInterval = o.Interval
	}
	cfg.InitialDelay = o.Delay
	on := true
	cfg.Collectors = map[string]kpodreceiver.CollectorConfig{}
	for _, c := range o.Collectors {
		cfg.Collectors[c] = kpodreceiver.CollectorConfig{Enabled: &on}
	}
	for _, f := range windowedFamilies {
		if !o.has(f) {
			continue
		}
		// The family's timing programs are attached in latency windows only; the benchmark
		// adopts them attached (every event timed) and runs the same windows itself where the
		// config has them (windowed, adopt.go), so that they are part of the adopted config
		// whenever a window is open.
		fc := cfg.Collectors[f]
		fc.LatencySample = 1
		cfg.Collectors[f] = fc
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	k := &kpodRun{collector: map[string][]float64{}, cycleSeen: make(chan struct{}, 1000)}
	next, err := consumer.NewMetrics(k.consume)
	if err != nil {
		return nil, err
	}
	set := receivertest.NewNopSettings(f.Type())
	set.Logger = benchLogger()
	rcv, err := f.CreateMetrics(context.Background(), set, cfg, next)
	if err != nil {
		return nil, err
	}
	if err := rcv.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		return nil, fmt.Errorf("starting kpod: %w", err)
	}
	k.rcv = rcv
	return k, nil
}

func (k *kpodRun) stop() error {
	return k.rcv.Shutdown(context.Background())
}

// consume keeps kpod's self-monitoring of each scrape and drops the rest.
func (k *kpodRun) consume(_ context.Context, md pmetric.Metrics) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	got := false
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for l := 0; l < ms.Len(); l++ {
				m := ms.At(l)
				switch m.Name() {
				case "kpod.collection.cycle.duration":
					k.cycles = append(k.cycles, m.Gauge().DataPoints().At(0).DoubleValue())
					got = true
				case "kpod.collector.duration":
					dps := m.Gauge().DataPoints()
					for d := 0; d < dps.Len(); d++ {
						c, _ := dps.At(d).Attributes().Get("collector")
						k.collector[c.Str()] = append(k.collector[c.Str()], dps.At(d).DoubleValue())
					}
				}
			}
		}
	}
	if got {
		k.points = append(k.points, md.DataPointCount())
		k.cycleSeen <- struct{}{}
	}
	return nil
}

// waitCycles waits until n more scrapes have been delivered.
func (k *kpodRun) waitCycles(n int, timeout time.Duration) error {
	deadline := time.After(timeout)
	for i := 0; i < n; i++ {
		select {
		case <-k.cycleSeen:
		case <-deadline:
			return fmt.Errorf("only %d of %d kpod collection cycles within %v", i, n, timeout)
		}
	}
	return nil
}

// snapshot returns copies of what was seen so far.
func (k *kpodRun) snapshot() (cycles []float64, collector map[string][]float64, points []int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	collector = map[string][]float64{}
	for c, v := range k.collector {
		collector[c] = append([]float64(nil), v...)
	}
	return append([]float64(nil), k.cycles...), collector, append([]int(nil), k.points...)
}
