//go:build bench

package bench

import (
	"context"
	"fmt"
	"strings"

	"github.com/kpod-project/kpod/internal/l7"
	"github.com/kpod-project/kpod/internal/podid"
)

// l7Check is one count of the l7 exactness check: what the family counted for one container,
// protocol, role and method during one workload, against what the workload did.
type l7Check struct {
	Workload string
	Key      string // protocol/role/method/status
	Want     uint64
	Got      uint64
	Error    string
}

// checkL7 loads the l7 family (internal/l7.Start, as the receiver does) and runs the l7
// group's workloads once with known sizes: kbench http (ops × rounds GETs, each answered 200;
// client and server in container bench) and pipelined redis-benchmark SET and GET of n
// requests each (client in s.client, redis-server in server). Each request must be counted
// exactly once on each end, in the container that made it: the l7 group measures the cost
// of a family that parses these workloads, not of one that skips them.
func checkL7(s *suite, server *benchContainer, ops, rounds, n int) []l7Check {
	src, err := l7.Start(l7.Options{})
	if err != nil {
		return []l7Check{{Workload: "load", Error: err.Error()}}
	}
	defer src.Close()
	live := map[uint64]bool{s.bench.CgroupID: true, s.client.CgroupID: true, server.CgroupID: true}
	read := func() (map[uint64]l7.Stats, error) {
		return src.Collect(context.Background(), &podid.Index{Live: live})
	}
	count := func(v map[uint64]l7.Stats, cg uint64, key l7.Key) uint64 {
		return v[cg].Requests[key].Count
	}
	var out []l7Check
	type want struct {
		cg  uint64
		key l7.Key
		n   uint64
	}
	measure := func(workload string, run func() error, wants []want) {
		before, err := read()
		if err == nil {
			err = run()
		}
		var after map[uint64]l7.Stats
		if err == nil {
			after, err = read()
		}
		for _, w := range wants {
			c := l7Check{Workload: workload, Key: strings.Join([]string{w.key.Protocol, w.key.Role, w.key.Method, w.key.Status}, " "), Want: w.n}
			if err != nil {
				c.Error = err.Error()
			} else {
				c.Got = count(after, w.cg, w.key) - count(before, w.cg, w.key)
			}
			out = append(out, c)
		}
	}
	total := uint64(ops * rounds)
	measure(fmt.Sprintf("kbench http %d %d", ops, rounds), func() error {
		_, err := s.kbench1([]string{"http", fmt.Sprint(ops), fmt.Sprint(rounds)}, "KBENCH_CPU=1")
		return err
	}, []want{{s.bench.CgroupID, l7.Key{Protocol: "http", Role: "client", Method: "GET", Status: "2xx"}, total},
		{s.bench.CgroupID, l7.Key{Protocol: "http", Role: "server", Method: "GET", Status: "2xx"}, total}})
	measure(fmt.Sprintf("redis-benchmark -t set, then -t get, -n %d -c 50 -P %d", n, redisPipeline), func() error {
		return s.runRedis(sample{}, "redisp", n, redisPipeline)
	}, []want{
		{s.client.CgroupID, l7.Key{Protocol: "redis", Role: "client", Method: "SET", Status: "ok"}, uint64(n)},
		{server.CgroupID, l7.Key{Protocol: "redis", Role: "server", Method: "SET", Status: "ok"}, uint64(n)},
		{s.client.CgroupID, l7.Key{Protocol: "redis", Role: "client", Method: "GET", Status: "ok"}, uint64(n)},
		{server.CgroupID, l7.Key{Protocol: "redis", Role: "server", Method: "GET", Status: "ok"}, uint64(n)},
	})
	return out
}

// l7Exact: every count of the check was exact.
func l7Exact(cs []l7Check) bool {
	for _, c := range cs {
		if c.Error != "" || c.Got != c.Want {
			return false
		}
	}
	return len(cs) > 0
}
