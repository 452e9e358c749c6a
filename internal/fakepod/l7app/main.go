// Command kpod-l7app is the real servers and clients of the l7 tests that Debian does not
// ship, written on Go's own implementations (net/http, ...): one subcommand per role, each
// in the file of its protocol. Every server and client prints what it served or sent, the
// independent count the tests compare kpod's with:
//
//	count <method> <status> <n>
//
// A server prints "ready" once it listens and its counts when it gets SIGTERM; SIGUSR1 makes it
// print its counts so far, followed by "counted", and go on serving.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"
)

// commands are the subcommands, registered by the protocol files.
var commands = map[string]func(args []string) error{}

func main() {
	if len(os.Args) < 2 || commands[os.Args[1]] == nil {
		var names []string
		for n := range commands {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "usage: kpod-l7app %v ARGS...\n", names)
		os.Exit(2)
	}
	if err := commands[os.Args[1]](os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "kpod-l7app:", err)
		os.Exit(1)
	}
}

// counts are requests by method and status, safe for concurrent handlers.
type counts struct {
	mu sync.Mutex
	m  map[[2]string]int
}

func (c *counts) add(method, status string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[[2]string]int{}
	}
	c.m[[2]string{method, status}]++
}

func (c *counts) print() {
	c.mu.Lock()
	defer c.mu.Unlock()
	var keys [][2]string
	for k := range c.m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+" "+keys[i][1] < keys[j][0]+" "+keys[j][1] })
	for _, k := range keys {
		fmt.Printf("count %s %s %d\n", k[0], k[1], c.m[k])
	}
}

// serve announces that the server listens, waits for SIGTERM, stops it and prints counts;
// on SIGUSR1 it prints the counts so far and "counted".
func serve(c *counts, stop func()) {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGUSR1)
	fmt.Println("ready")
	for s := range term {
		if s == syscall.SIGUSR1 {
			c.print()
			fmt.Println("counted")
			continue
		}
		break
	}
	stop()
	c.print()
}
