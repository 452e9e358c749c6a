package topology

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
)

// ctTuple is a connection as the client's socket knows it: its own address and port, the
// Service's address and port (before the node's NAT), and UDP or TCP.
type ctTuple struct {
	udp                    bool
	local, service         netip.Addr // local: the zero Addr when the socket is not bound to one
	localPort, servicePort uint16
}

// ctTable maps connections to a Service address to the backend the node's NAT sent them to:
// the source of the conntrack entry's reply direction.
type ctTable struct {
	exact map[ctTuple]netip.Addr
	// anyLocal is the same by the tuple without its local address, for sockets not bound to
	// one; the zero Addr where two entries disagree.
	anyLocal map[ctTuple]netip.Addr
}

func (t *ctTable) lookup(k ctTuple) (netip.Addr, bool) {
	if k.local.IsValid() {
		a, ok := t.exact[k]
		return a, ok
	}
	a, ok := t.anyLocal[k]
	return a, ok && a.IsValid()
}

// maxCTErrors is how many malformed lines a read names in its error (it counts all of them).
const maxCTErrors = 3

// parseConntrack reads the kernel's conntrack table as /proc/net/nf_conntrack prints it, one
// entry per line:
//
//	ipv4 2 tcp 6 117 TIME_WAIT src=10.0.0.5 dst=10.96.0.10 sport=40312 dport=80 src=10.0.1.7 dst=10.0.0.5 sport=8080 dport=40312 [ASSURED] mark=0 use=1
//
// the original direction's tuple first, then the reply's. It keeps the TCP and UDP entries
// whose original destination is in services and whose reply comes from another address (NAT
// happened). Malformed lines are skipped and counted in the error; the others are still used.
func parseConntrack(r io.Reader, services map[netip.Addr]bool) (*ctTable, error) {
	t := &ctTable{exact: map[ctTuple]netip.Addr{}, anyLocal: map[ctTuple]netip.Addr{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	var errs []error
	bad := 0
	for n := 1; sc.Scan(); n++ {
		k, backend, err := parseCTLine(sc.Bytes(), services)
		if err != nil {
			if bad++; bad <= maxCTErrors {
				errs = append(errs, fmt.Errorf("line %d: %w", n, err))
			}
			continue
		}
		if !backend.IsValid() {
			continue
		}
		t.exact[k] = backend
		any := k
		any.local = netip.Addr{}
		if old, ok := t.anyLocal[any]; ok && old != backend {
			backend = netip.Addr{}
		}
		t.anyLocal[any] = backend
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	if bad > maxCTErrors {
		errs = append(errs, fmt.Errorf("%d more malformed lines", bad-maxCTErrors))
	}
	if len(errs) > 0 {
		return t, fmt.Errorf("conntrack table: %w", errors.Join(errs...))
	}
	return t, nil
}

// parseCTLine parses one line; a valid backend only for a NATed TCP or UDP entry to one of
// services (other entries are no error).
func parseCTLine(line []byte, services map[netip.Addr]bool) (ctTuple, netip.Addr, error) {
	f := bytes.Fields(line)
	if len(f) < 4 {
		return ctTuple{}, netip.Addr{}, errors.New("fewer than 4 fields")
	}
	var k ctTuple
	switch string(f[2]) {
	case "tcp":
	case "udp":
		k.udp = true
	default:
		return k, netip.Addr{}, nil // other protocols: no edges
	}
	// The first src/dst/sport/dport are the original direction's, the second the reply's.
	var addr [2][2]netip.Addr // [direction][src, dst]
	var port [2][2]uint16
	var seen [2][4]bool
	for _, kv := range f[3:] {
		key, val, ok := bytes.Cut(kv, []byte("="))
		if !ok {
			continue
		}
		i := 0
		switch string(key) {
		case "src":
		case "dst":
			i = 1
		case "sport":
			i = 2
		case "dport":
			i = 3
		default:
			continue
		}
		d := 0
		if seen[0][i] {
			d = 1
		}
		if seen[d][i] {
			continue // a third tuple: none is printed
		}
		seen[d][i] = true
		if i < 2 {
			a, err := netip.ParseAddr(string(val))
			if err != nil {
				return k, netip.Addr{}, fmt.Errorf("%s=%q: not an address", key, val)
			}
			addr[d][i] = a.Unmap()
		} else {
			p, err := strconv.ParseUint(string(val), 10, 16)
			if err != nil {
				return k, netip.Addr{}, fmt.Errorf("%s=%q: not a port", key, val)
			}
			port[d][i-2] = uint16(p)
		}
	}
	if seen != [2][4]bool{{true, true, true, true}, {true, true, true, true}} {
		return k, netip.Addr{}, errors.New("not two tuples of src, dst, sport and dport")
	}
	k.local, k.service, k.localPort, k.servicePort = addr[0][0], addr[0][1], port[0][0], port[0][1]
	backend := addr[1][0]
	if !services[k.service] || backend == k.service {
		return k, netip.Addr{}, nil
	}
	return k, backend, nil
}
