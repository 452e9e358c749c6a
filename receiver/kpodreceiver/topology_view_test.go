package kpodreceiver

import (
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"go.opentelemetry.io/collector/confmap"

	"github.com/kpod-project/kpod/internal/topology"
)

// TestTopologyViewOptIn: the JSON view listens only when collectors.topology.view.enabled is
// set, by default on localhost only, and a configured endpoint is used as given.
func TestTopologyViewOptIn(t *testing.T) {
	for _, tc := range []struct {
		name, want string
	}{
		{"defaults", ""},          // no topology section
		{"topology_view_off", ""}, // an endpoint alone does not turn it on
		{"topology_view", DefaultViewEndpoint},
	} {
		cfg, err := loadConfig(t, tc.name)
		if err != nil {
			t.Fatal(err)
		}
		if err := confmap.Validate(cfg); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := viewListen(cfg.Collectors["topology"]); got != tc.want {
			t.Errorf("%s: the view listens on %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := viewListen(CollectorConfig{View: &ViewConfig{Enabled: true, Endpoint: "0.0.0.0:9465"}}); got != "0.0.0.0:9465" {
		t.Errorf("an explicit endpoint: %q", got)
	}
	if DefaultViewEndpoint != "localhost:9465" {
		t.Errorf("default endpoint %q", DefaultViewEndpoint)
	}

	// The default host binds loopback addresses only: served there, and nothing listens on
	// the port at any other address of this machine.
	host, _, _ := net.SplitHostPort(DefaultViewEndpoint)
	s, err := topology.Serve(net.JoinHostPort(host, "0"), "node-1", time.Unix(0, 0), func() (*topology.Graph, *topology.Graph) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ap, err := netip.ParseAddrPort(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if !ap.Addr().IsLoopback() {
		t.Fatalf("the default endpoint listens on %s, not a loopback address", s.Addr())
	}
	resp, err := http.Get("http://" + s.Addr() + topology.ViewPaths[1])
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: %d", topology.ViewPaths[1], resp.StatusCode)
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	others := 0
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil || p.Addr().IsLoopback() || p.Addr().IsLinkLocalUnicast() {
			continue
		}
		others++
		c, err := net.DialTimeout("tcp", netip.AddrPortFrom(p.Addr(), ap.Port()).String(), 2*time.Second)
		if err == nil {
			c.Close()
			t.Errorf("the view answers on %s", p.Addr())
		}
	}
	t.Logf("view on %s; refused on the %d other addresses of this machine", s.Addr(), others)
}
