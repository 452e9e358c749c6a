package topology

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/kpod-project/kpod/internal/cgroupfs"
)

// procAddrs reads the addresses of the network namespace of the process at procDir (the
// host's /proc/<pid>) from its net/fib_trie (IPv4: the /32 host LOCAL routes the kernel adds
// for each address) and net/if_inet6, without entering the namespace. Loopback addresses are
// left out, as the namespace's own interface addresses are when kpod enters it.
func procAddrs(procDir string) ([]netip.Addr, error) {
	seen := map[netip.Addr]bool{}
	var out []netip.Addr
	add := func(a netip.Addr) {
		if a.IsLoopback() || seen[a] {
			return
		}
		seen[a] = true
		out = append(out, a)
	}
	trie, err := cgroupfs.ReadFile(filepath.Join(procDir, "net", "fib_trie"))
	if err != nil {
		return nil, err
	}
	v4, err := parseFibTrie(trie)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(procDir, "net", "fib_trie"), err)
	}
	for _, a := range v4 {
		add(a)
	}
	// No if_inet6 without IPv6 (ipv6.disable=1): no IPv6 addresses.
	if b, err := cgroupfs.ReadFile(filepath.Join(procDir, "net", "if_inet6")); err == nil {
		v6, err := parseIfInet6(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(procDir, "net", "if_inet6"), err)
		}
		for _, a := range v6 {
			add(a)
		}
	}
	return out, nil
}

// parseFibTrie returns the leaves of /proc/net/fib_trie that carry a "/32 host LOCAL" route.
func parseFibTrie(b []byte) ([]netip.Addr, error) {
	var out []netip.Addr
	var leaf netip.Addr
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "|-- "):
			a, err := netip.ParseAddr(strings.TrimPrefix(line, "|-- "))
			if err != nil || !a.Is4() {
				return nil, fmt.Errorf("line %d: %q is not an IPv4 leaf", n, line)
			}
			leaf = a
		case strings.HasPrefix(line, "/32 host LOCAL"):
			if !leaf.IsValid() {
				return nil, fmt.Errorf("line %d: a route before any leaf", n)
			}
			out = append(out, leaf)
		}
	}
	return out, sc.Err()
}

// parseIfInet6 returns the addresses of /proc/net/if_inet6 (32 hex digits, then index,
// prefix length, scope, flags and the interface's name).
func parseIfInet6(b []byte) ([]netip.Addr, error) {
	var out []netip.Addr
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		raw, err := hex.DecodeString(f[0])
		if err != nil || len(raw) != 16 || len(f) != 6 {
			return nil, fmt.Errorf("line %d: %q is not an if_inet6 entry", n, sc.Text())
		}
		out = append(out, netip.AddrFrom16([16]byte(raw)))
	}
	return out, sc.Err()
}
